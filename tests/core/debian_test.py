"""Debian packages without dpkg: versions, relations, resolution, .deb layers, a signed mirror."""

from __future__ import annotations

import dataclasses
import io
import lzma
import tarfile
from pathlib import Path

import pytest

from ocibuild.debian import layers
from ocibuild.debian.control import Relation, paragraphs, parse_relations
from ocibuild.debian.changes import diff, pending
from ocibuild.debian.fallback import check_template, fallback_urls
from ocibuild.debian.repository import Mirror, parse_release, snapshot_timestamp
from ocibuild.debian.resolve import Index, Package, resolve
from ocibuild.debian.version import compare
from ocibuild.errors import OciBuildError
from tests.fixtures.debian_repo import DebianRepo, make_deb


@pytest.mark.parametrize("a,b,expected", [
    ("1.0", "1.0", 0), ("1.0", "1.1", -1), ("1.10", "1.9", 1), ("1:0.1", "2.0", 1),
    ("1.0~rc1", "1.0", -1), ("1.0", "1.0+b1", -1), ("2.36-9+deb12u4", "2.36-9+deb12u10", -1),
    ("1.0-1", "1.0", 1), ("1.0a", "1.0", 1), ("1.0~", "1.0~~", 1), ("3.11.2-6+deb12u9", "3.11.2-6", 1),
])
def test_version_order(a: str, b: str, expected: int) -> None:
    assert compare(a, b) == expected
    assert compare(b, a) == -expected


def test_relations_and_paragraphs() -> None:
    assert parse_relations("libc6 (>= 2.34), python3:any | python3.11 [amd64], foo (<< 2~)") == [
        [Relation("libc6", ">=", "2.34")],
        [Relation("python3"), Relation("python3.11")],
        [Relation("foo", "<<", "2~")]]
    text = "Package: a\nDescription: x\n more\n\nPackage: b\n"
    assert list(paragraphs(text)) == [{"Package": "a", "Description": "x\nmore"}, {"Package": "b"}]


def _pkg(name: str, version: str = "1", depends: str = "", provides: str = "",
         pre_depends: str = "") -> Package:
    return Package(name, version, "amd64", f"pool/{name}.deb", 1, "0" * 64, depends,
                   pre_depends, provides)


INDEX = Index([
    _pkg("app", depends="libc (>= 2), mail-transport-agent | exim, python3 (>= 3.11) | python3.9"),
    _pkg("libc", "2.36", pre_depends="libgcc"), _pkg("libc", "1.0"), _pkg("libgcc"),
    _pkg("postfix", provides="mail-transport-agent"), _pkg("python3", "3.11.2"),
    _pkg("old", depends="libc (<< 2)"), _pkg("broken", depends="nothere | alsonothere"),
])


def test_resolve_closure_alternatives_and_virtuals() -> None:
    closure = resolve(INDEX, ["app"], "t")
    assert [(p.name, p.version) for p in closure] == [
        ("app", "1"), ("libc", "2.36"), ("libgcc", "1"), ("postfix", "1"), ("python3", "3.11.2")]


def test_resolve_errors_name_the_problem() -> None:
    with pytest.raises(OciBuildError, match="t: no package named nope, zzz"):
        resolve(INDEX, ["app", "nope", "zzz"], "t")
    with pytest.raises(OciBuildError, match=r"broken 1 depends on nothere \| alsonothere, which "
                                            "the suite cannot satisfy"):
        resolve(INDEX, ["broken"], "t")
    with pytest.raises(OciBuildError, match=r"old 1 depends on libc \(<< 2\), which the suite "
                                            r"cannot satisfy; libc 2.36 is already chosen"):
        resolve(INDEX, ["app", "old"], "t")


def _layer_entries(write) -> dict:
    buffer = io.BytesIO()
    write(buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        return {m.name: (m, tar.extractfile(m).read() if m.isfile() else None) for m in tar}


def test_package_layer_merged_usr_modes_and_dpkg_status(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "tool", "2.0-1", depends="libc",
                   files={"bin/tool": (b"#!/bin/sh\necho tool\n", 0o755),
                          "usr/share/doc/tool/copyright": b"(c)\n",
                          "lib/x86_64-linux-gnu/libtool.so.1": b"ELF"},
                   symlinks={"bin/t": "tool", "usr/bin/tool-abs": "/bin/tool"})
    entries = _layer_entries(lambda out: layers.write_package_layer(str(deb), out))
    assert "bin" not in entries and "bin/tool" not in entries and "lib" not in entries
    tool, content = entries["usr/bin/tool"]
    assert (tool.mode, tool.uid, tool.uname, content) == (0o755, 0, "root", b"#!/bin/sh\necho tool\n")
    assert entries["usr/bin/t"][0].linkname == "tool"
    assert entries["usr/bin/tool-abs"][0].linkname == "/bin/tool"  # resolves via /bin -> usr/bin
    assert "usr/lib/x86_64-linux-gnu/libtool.so.1" in entries
    status = entries["var/lib/dpkg/status.d/tool"][1].decode()
    assert "Package: tool\n" in status and "Version: 2.0-1\n" in status
    assert "usr/share/doc/tool/copyright" in entries["var/lib/dpkg/status.d/tool.md5sums"][1].decode()
    # Deterministic: the same .deb gives the same bytes.
    one, two = io.BytesIO(), io.BytesIO()
    layers.write_package_layer(str(deb), one)
    layers.write_package_layer(str(deb), two)
    assert one.getvalue() == two.getvalue()


def test_gzip_and_zstd_compressed_debs(tmp_path: Path) -> None:
    for compression in ("gzip", "zstd"):
        deb = make_deb(tmp_path, f"z{compression}", files={"etc/x": b"x"}, compression=compression)
        assert "etc/x" in _layer_entries(lambda out: layers.write_package_layer(str(deb), out))


def test_not_a_deb(tmp_path: Path) -> None:
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"not an archive")
    with pytest.raises(OciBuildError, match="is not a Debian package"):
        layers.write_package_layer(str(bad), io.BytesIO())


def test_root_and_config_layers(tmp_path: Path) -> None:
    root = _layer_entries(layers.write_root_layer)
    assert root["bin"][0].issym() and root["bin"][0].linkname == "usr/bin"
    assert root["tmp"][0].mode == 0o1777 and root["home/nonroot"][0].uid == 65532
    ca = make_deb(tmp_path, "ca-certificates", files={
        "usr/share/ca-certificates/mozilla/B.crt": b"-----B-----\n",
        "usr/share/ca-certificates/mozilla/A.crt": b"-----A-----"})
    config = _layer_entries(lambda out: layers.write_config_layer(out, str(ca)))
    assert config[layers.CA_BUNDLE][1] == b"-----A-----\n-----B-----\n"
    assert b"nonroot:x:65532:65532:" in config["etc/passwd"][1]


def _repo(tmp_path: Path) -> DebianRepo:
    repo = DebianRepo(tmp_path / "mirror")
    repo.add(make_deb(tmp_path, "app", depends="libfoo (>= 1.2)"))
    repo.add(make_deb(tmp_path, "libfoo", "1.2-3"))
    repo.publish()
    return repo


def test_signed_mirror_to_closure(tmp_path: Path) -> None:
    with _repo(tmp_path) as repo:
        mirror = Mirror(repo.url, repo.suite, str(tmp_path / "cache"), str(repo.keyring))
        release = mirror.release()
        assert release.signature == f"verified by gpgv with {repo.keyring} (key {repo.fingerprint})"
        closure = resolve(mirror.index(release, ["main"], "amd64"), ["app"], "t")
        assert [(p.name, p.version) for p in closure] == [("app", "1.0"), ("libfoo", "1.2-3")]
        assert closure[1].filename == "pool/main/libfoo_1.2-3_amd64.deb"


def test_bad_signature_and_tampered_index(tmp_path: Path) -> None:
    with _repo(tmp_path) as repo:
        other = DebianRepo(tmp_path / "other")
        other._sign_key()
        with pytest.raises(OciBuildError, match=r"is by a key that is not in .*other-keyring.gpg \(gpgv: NO_PUBKEY\)"):
            Mirror(repo.url, repo.suite, None, str(other.keyring)).release()
        mirror = Mirror(repo.url, repo.suite, None, str(repo.keyring))
        release = mirror.release()
        index = tmp_path / "mirror/debian/dists/testing/main/binary-amd64/Packages.xz"
        index.write_bytes(lzma.compress(b"Package: evil\n"))
        with pytest.raises(OciBuildError, match="does not match the SHA256 in InRelease"):
            mirror.packages(release, "main", "amd64")


# --- several suites, fallbacks, changes --------------------------------------------------------


def _in(suite: str, name: str, version: str) -> Package:
    return dataclasses.replace(_pkg(name, version), suite=suite, mirror=f"http://m/{suite}")


def test_the_highest_version_of_any_suite_wins_and_the_first_suite_of_equal_ones() -> None:
    index = Index([_in("trixie", "libssl", "3.5.1-1"), _in("trixie", "zlib", "1.3"),
                   _in("trixie-security", "libssl", "3.5.1-1+deb13u1"),
                   _in("trixie-updates", "zlib", "1.3"), _in("trixie-updates", "tzdata", "1~")])
    chosen = resolve(index, ["libssl", "zlib", "tzdata"], "t")
    assert [(p.name, p.version, p.suite) for p in chosen] == [
        ("libssl", "3.5.1-1+deb13u1", "trixie-security"), ("tzdata", "1~", "trixie-updates"),
        ("zlib", "1.3", "trixie")]
    assert chosen[0].to_lock() == {
        "name": "libssl", "version": "3.5.1-1+deb13u1", "architecture": "amd64",
        "filename": "pool/libssl.deb", "size": 1, "sha256": "0" * 64,
        "suite": "trixie-security", "url": "http://m/trixie-security/pool/libssl.deb"}


def test_snapshot_timestamp_of_a_release_date() -> None:
    assert snapshot_timestamp("Sat, 08 Nov 2025 10:32:11 UTC") == "20251108T103211Z"
    assert snapshot_timestamp("Sat, 08 Nov 2025 12:32:11 +0200") == "20251108T103211Z"
    assert snapshot_timestamp("") == snapshot_timestamp("yesterday") == ""
    release = parse_release("Suite: s\nDate: Sat, 08 Nov 2025 10:32:11 UTC\nSHA256:\n "
                            + "a" * 64 + " 1 main/binary-amd64/Packages\n", "s", "sig")
    assert (release.date, release.timestamp) == ("Sat, 08 Nov 2025 10:32:11 UTC", "20251108T103211Z")


def test_fallback_urls_fill_the_templates_in_order() -> None:
    source = {"suite": "trixie-security", "mirror": "http://deb.debian.org/debian-security/",
              "timestamp": "20251108T103211Z"}
    assert fallback_urls(["https://snapshot.debian.org/archive/{archive}/{timestamp}/",
                          "http://cache.internal/{suite}"], source, "pool/a.deb") == [
        "https://snapshot.debian.org/archive/debian-security/20251108T103211Z/pool/a.deb",
        "http://cache.internal/trixie-security/pool/a.deb"]
    # No recorded timestamp: the templates that need one are skipped.
    assert fallback_urls(["http://s/{timestamp}", "http://c"], {**source, "timestamp": ""},
                         "p.deb") == ["http://c/p.deb"]
    check_template("http://s/{archive}/{timestamp}", "w")
    with pytest.raises(OciBuildError) as err:
        check_template("http://s/{date}", "[oci].debian_fallback_mirrors")
    assert str(err.value) == ("[oci].debian_fallback_mirrors: the fallback mirror "
                              "'http://s/{date}' uses {date}; the placeholders are {archive}, "
                              "{suite}, {timestamp}, each bare (no format spec, conversion, "
                              "attribute or index)")
    for bad in ("ftp://s", "http://s/{", "http://s/{0}"):
        with pytest.raises(OciBuildError):
            check_template(bad, "w")


def _doc(**versions: str) -> dict:
    return {"packages": {"amd64": [{"name": n.replace("_", "-"), "version": v, "suite": "s"}
                                   for n, v in versions.items()]}}


def test_diff_of_two_lockfiles() -> None:
    old, new = _doc(a="1", b="2", c="3"), _doc(a="1.1", b="1", d="4")
    assert diff(old, new) == ["amd64: upgraded a 1 -> 1.1 (s)", "amd64: downgraded b 2 -> 1 (s)",
                              "amd64: removed c 3", "amd64: added d 4 (s)"]
    assert diff(None, _doc(a="1")) == ["amd64: added a 1 (s)"]
    assert diff(new, new) == []
    assert diff({"packages": "junk"}, _doc(a="1")) == ["amd64: added a 1 (s)"]


def test_pending_updates_of_a_lockfile() -> None:
    index = Index([_in("trixie", "a", "1"), _in("trixie-security", "a", "1+deb13u1"),
                   _in("trixie", "b", "2")])
    assert pending(_doc(a="1", b="2"), {"amd64": index}) == [
        "amd64: a 1 -> 1+deb13u1 (trixie-security)"]
    assert pending(_doc(a="1+deb13u1", b="2"), {"amd64": index}) == []
    assert pending(_doc(gone="1"), {"amd64": index}) == []
