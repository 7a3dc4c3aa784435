"""Maintainer-script effects in the config layer: alternatives, tzdata, os-release, CA bundle."""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
from pathlib import Path
from typing import Optional, Sequence

import pytest

from ocibuild.debian import effects, layers
from ocibuild.errors import OciBuildError
from tests.fixtures.debian_repo import TarSpec, ar_archive, tar_bytes

EDITOR_POSTINST = """#!/bin/sh
set -e
case "$1" in
    configure)
	update-alternatives --install /usr/bin/editor editor /usr/bin/{name} {priority} \\
		--slave /usr/share/man/man1/editor.1.gz editor.1.gz \\
			/usr/share/man/man1/{name}.1.gz \\
		--slave /usr/bin/view view /usr/bin/{name}-view
    ;;
esac
"""


def _deb(tmp: Path, package: str, data: Sequence[TarSpec], postinst: Optional[str] = None) -> str:
    """A .deb with `data` (leading ./ as dpkg-deb writes) and, if given, a postinst."""
    control = f"Package: {package}\nVersion: 1\nArchitecture: all\nDescription: x\n"
    members = [("dir", "./", ""), ("file", "./control", control)]
    if postinst is not None:
        members.append(("file", "./postinst", postinst))
    path = tmp / f"{package}_1_all.deb"
    path.write_bytes(ar_archive([
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", gzip.compress(tar_bytes(members), mtime=0)),
        ("data.tar.xz", lzma.compress(tar_bytes([("dir", "./", "")] + list(data))))]))
    return str(path)


def _config(debs: Sequence[str], suite: Optional[str] = None) -> dict:
    buffer = io.BytesIO()
    layers.write_config_layer(buffer, debs=debs, suite=suite)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        return {m.name: (m, tar.extractfile(m).read() if m.isfile() else m.linkname)
                for m in tar}


def _links(config: dict) -> dict:
    return {name: value for name, (m, value) in config.items() if m.issym()}


def _editor(tmp: Path, name: str, priority: int, view: bool = True) -> str:
    files = [("dir", "./usr/", ""), ("dir", "./usr/bin/", ""), ("file", f"./usr/bin/{name}", "x"),
             ("dir", "./usr/share/", ""), ("dir", "./usr/share/man/", ""),
             ("dir", "./usr/share/man/man1/", ""), ("file", f"./usr/share/man/man1/{name}.1.gz", "x")]
    if view:
        files.append(("file", f"./usr/bin/{name}-view", "x"))
    return _deb(tmp, name, files, EDITOR_POSTINST.format(name=name, priority=priority))


def test_highest_priority_alternative_wins_with_its_slaves(tmp_path: Path) -> None:
    debs = [_editor(tmp_path, "nano", 40, view=False), _editor(tmp_path, "vim", 30)]
    links = _links(_config(debs))
    # nano wins (40 > 30); its `view` slave's path does not exist, so dpkg makes no view link.
    assert links == {
        "usr/bin/editor": "/etc/alternatives/editor",
        "etc/alternatives/editor": "/usr/bin/nano",
        "usr/share/man/man1/editor.1.gz": "/etc/alternatives/editor.1.gz",
        "etc/alternatives/editor.1.gz": "/usr/share/man/man1/nano.1.gz",
    }
    debs = [_editor(tmp_path, "nano", 20, view=False), _editor(tmp_path, "vim", 30)]
    assert _links(_config(debs))["usr/bin/view"] == "/etc/alternatives/view"
    assert _links(_config(debs))["etc/alternatives/view"] == "/usr/bin/vim-view"


def test_tar_rmt_alternative_and_merged_usr(tmp_path: Path) -> None:
    """tar's own postinst (bookworm), with the link given under /sbin."""
    postinst = ("#!/bin/sh\nset -e\ncase \"$1\" in\n    configure)\n"
                "\tupdate-alternatives --install /sbin/rmt rmt /usr/sbin/rmt-tar 50 \\\n"
                "\t\t--slave /usr/share/man/man8/rmt.8.gz rmt.8.gz \\\n"
                "\t\t\t/usr/share/man/man8/rmt-tar.8.gz \n    ;;\nesac\n")
    deb = _deb(tmp_path, "tar", [("dir", "./usr/", ""), ("dir", "./usr/sbin/", ""),
                                 ("file", "./usr/sbin/rmt-tar", "x"),
                                 ("file", "./usr/share/man/man8/rmt-tar.8.gz", "x")], postinst)
    config = _config([deb])
    assert _links(config)["usr/sbin/rmt"] == "/etc/alternatives/rmt"
    assert _links(config)["etc/alternatives/rmt"] == "/usr/sbin/rmt-tar"
    assert _links(config)["etc/alternatives/rmt.8.gz"] == "/usr/share/man/man8/rmt-tar.8.gz"
    # Directories the packages ship keep their metadata; others are root 0755.
    assert config["usr/sbin"][0].mode == 0o755 and config["etc/alternatives"][0].mode == 0o755


def test_alternatives_inside_shell_constructs(tmp_path: Path) -> None:
    postinst = ("if which update-alternatives >/dev/null 2>&1; then "
                "/usr/bin/update-alternatives --quiet --install /usr/bin/pager pager "
                "/usr/bin/more 50 || true; fi  # a comment --install /x y /z 1\n")
    deb = _deb(tmp_path, "more", [("file", "./usr/bin/more", "x")], postinst)
    assert _links(_config([deb])) == {"usr/bin/pager": "/etc/alternatives/pager",
                                      "etc/alternatives/pager": "/usr/bin/more"}


def test_alternatives_dpkg_would_not_make_are_not_made(tmp_path: Path) -> None:
    postinst = ("update-alternatives --install /usr/bin/a a /usr/bin/a-$VERSION 10\n"
                "update-alternatives --install /usr/bin/b b /usr/bin/missing 10\n"
                "update-alternatives --altdir /x --install /usr/bin/c c /usr/bin/c1 10\n"
                "update-alternatives --install /usr/bin/d d /usr/bin/d1 10\n"
                "update-alternatives --remove e /usr/bin/e1\n")
    deb = _deb(tmp_path, "p", [("file", "./usr/bin/c1", "x"), ("file", "./usr/bin/d1", "x"),
                               ("file", "./usr/bin/d", "a real file, not replaced")], postinst)
    assert _links(_config([deb])) == {}


@pytest.mark.parametrize("command,error", [
    ("--install /usr/bin/../../../etc/x x /usr/bin/t 1", "has a `..` component"),
    ("--install usr/bin/x x /usr/bin/t 1", "is not an absolute path"),
    ("--install /usr/bin/x ../x /usr/bin/t 1", "is not a plain name"),
    ("--install /usr/bin/x x/y /usr/bin/t 1", "is not a plain name"),
    ("--install /usr/bin/x x /usr/bin/t high", "is not a whole number"),
    ("--install /usr/bin/x x /usr/bin/t", "--install needs LINK NAME PATH PRIORITY"),
    ("--install /usr/bin/x x /usr/bin/t 1 --slave /usr/bin/y", "--slave needs LINK NAME PATH"),
    ("--install /evil/passwd x /usr/bin/t 1", "lies under /evil, which a package ships as a symlink"),
])
def test_hostile_alternatives_are_refused(tmp_path: Path, command: str, error: str) -> None:
    deb = _deb(tmp_path, "hostile", [("file", "./usr/bin/t", "x"), ("symlink", "./evil", "/etc")],
               f"#!/bin/sh\nupdate-alternatives {command}\n")
    with pytest.raises(OciBuildError, match=error) as raised:
        _config([deb])
    assert deb in str(raised.value)


def test_tzdata_localtime_and_timezone(tmp_path: Path) -> None:
    zoneinfo = [("file", "./usr/share/zoneinfo/Etc/UTC", "TZif")]
    writes = _deb(tmp_path, "tzdata", zoneinfo,
                  '#!/bin/sh\necho "$TIMEZONE" > "$DPKG_ROOT/etc/timezone"\n')
    config = _config([writes])
    assert _links(config)["etc/localtime"] == "/usr/share/zoneinfo/Etc/UTC"
    assert config["etc/timezone"][1] == b"Etc/UTC\n"
    (tmp_path / "later").mkdir()
    no_timezone = _deb(tmp_path / "later", "tzdata", zoneinfo, "#!/bin/sh\nrm -f /etc/timezone\n")
    config = _config([no_timezone])
    assert _links(config)["etc/localtime"] == "/usr/share/zoneinfo/Etc/UTC"
    assert "etc/timezone" not in config
    # trixie's postinst only updates an /etc/timezone that is already there.
    (tmp_path / "trixie").mkdir()
    only_existing = _deb(tmp_path / "trixie", "tzdata", zoneinfo,
                         '#!/bin/sh\nif test -f "$DPKG_ROOT/etc/timezone"; then\n'
                         '\techo "$TIMEZONE" > "$DPKG_ROOT/etc/timezone"\nfi\n')
    assert "etc/timezone" not in _config([only_existing])


NETBASE_POSTINST = (
    "#!/bin/sh -e\n\ncreate_hosts_file() {\n  if [ -e /etc/hosts ]; then return 0; fi\n\n"
    "  cat > /etc/hosts <<-EOF\n\t127.0.0.1\tlocalhost\n"
    "\t::1\t\tlocalhost ip6-localhost ip6-loopback\n\nEOF\n}\n\n"
    "create_networks_file() {\n  if [ -e /etc/networks ]; then return 0; fi\n\n"
    "  cat > /etc/networks <<-EOF\n\tdefault\t\t0.0.0.0\n\nEOF\n}\n"
)


def test_netbase_hosts_and_networks_from_its_postinst(tmp_path: Path) -> None:
    """trixie's netbase writes /etc/hosts and /etc/networks in postinst instead of shipping
    them: the config layer writes what the here-document says, tabs stripped as `<<-` does."""
    netbase = _deb(tmp_path, "netbase", [("file", "./etc/protocols", "ip 0 IP\n")],
                   NETBASE_POSTINST)
    config = _config([netbase])
    assert config["etc/hosts"][1] == (
        b"127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n\n")
    assert config["etc/networks"][1] == b"default\t\t0.0.0.0\n\n"
    # Script text chooses no path: a here-document to anywhere else is ignored.
    (tmp_path / "other").mkdir()
    hostile = _deb(tmp_path / "other", "netbase", [("file", "./etc/protocols", "ip\n")],
                   "#!/bin/sh\ncat > /etc/shadow <<EOF\nroot::0:0\nEOF\n")
    config = _config([hostile])
    assert "etc/shadow" not in config and "etc/hosts" not in config


def test_os_release_from_the_suite_unless_base_files_ships_it(tmp_path: Path) -> None:
    lib = _deb(tmp_path, "libx", [("file", "./usr/lib/libx.so.1", "x")])
    config = _config([lib], suite="bookworm")
    assert _links(config)["etc/os-release"] == "../usr/lib/os-release"
    assert config["usr/lib/os-release"][1] == (
        b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        b'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
        b'HOME_URL="https://www.debian.org/"\nSUPPORT_URL="https://www.debian.org/support"\n'
        b'BUG_REPORT_URL="https://bugs.debian.org/"\n')
    assert b'PRETTY_NAME="Debian GNU/Linux"\n' in effects.os_release("sid")
    base_files = _deb(tmp_path, "base-files", [("file", "./usr/lib/os-release", "ID=debian\n"),
                                               ("symlink", "./etc/os-release", "../usr/lib/os-release")])
    config = _config([lib, base_files], suite="bookworm")
    assert "usr/lib/os-release" not in config and "etc/os-release" not in config
    with pytest.raises(OciBuildError, match="is not a Debian suite name"):
        _config([lib], suite="../../etc")


def test_config_files_never_go_through_a_package_symlink(tmp_path: Path) -> None:
    evil = _deb(tmp_path, "evil", [("symlink", "./etc/ssl", "/tmp")])
    ca = _deb(tmp_path, "ca-certificates", [("file", "./usr/share/ca-certificates/a/A.crt", "A")])
    with pytest.raises(OciBuildError, match="/etc/ssl/certs/ca-certificates.crt lies under "
                                            "/etc/ssl, which a package ships as a symlink"):
        _config([evil, ca])
    assert _config([ca])[layers.CA_BUNDLE][1] == b"A\n"
