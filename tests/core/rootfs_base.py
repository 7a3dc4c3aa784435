"""Base images for RUN-step tests, without internet: layer files in a world-readable directory
(the steps run as an unprivileged user).

* `busybox_layers`: busybox-static with its applets: a shell and tools, all one static binary.
* `debian_layers`: Debian trixie's libc6, dpkg, tar and python3-minimal from the packages
  tests/fetch-example-debs caches, laid out by the project's own Debian assembly
  (ocibuild.debian.layers: root, packages and config layers), plus a tools layer with
  busybox-static as /bin/sh and the few programs dpkg wants that the set lacks, and dpkg's
  own database files: a small image where `dpkg -i` and python3 run.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path
from typing import List, Sequence, Tuple

import pytest

from ocibuild.debian.layers import write_config_layer, write_packages_layer, write_root_layer

TAR = "application/vnd.oci.image.layer.v1.tar"
DEBIAN_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / \
    "pants-oci-tests" / "debian"
PACKAGES = ("libc6", "gcc-14-base", "libgcc-s1", "dpkg", "tar", "libacl1", "libbz2-1.0",
            "liblzma5", "libmd0", "libselinux1", "libpcre2-8-0", "libzstd1", "zlib1g",
            "python3-minimal", "python3.13-minimal", "libpython3.13-minimal", "libexpat1")
BUSYBOX = "/bin/busybox"


def _tar(path: Path, members: List[Tuple[tarfile.TarInfo, bytes]]) -> Tuple[str, str]:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return (str(path), TAR)


def _info(name: str, kind=tarfile.REGTYPE, mode=0o644, link="") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 1
    return info


def _busybox_members(bindir: str, applets: List[str]) -> List[Tuple[tarfile.TarInfo, bytes]]:
    with open(BUSYBOX, "rb") as f:
        members = [(_info(f"{bindir}/busybox", mode=0o755), f.read())]
    members += [(_info(f"{bindir}/{a}", tarfile.SYMTYPE, 0o777, "busybox"), b"")
                for a in applets]
    return members


def world_dir(base: str) -> Path:
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def busybox_layers(dest: Path) -> List[Tuple[str, str]]:
    if not os.path.isfile(BUSYBOX):
        pytest.fail("missing busybox-static: run tests/install-test-tools")
    applets = os.popen(f"{BUSYBOX} --list").read().split()
    members = [(_info(d, tarfile.DIRTYPE, 0o755), b"") for d in ("bin", "etc", "dev", "proc", "sys")]
    members += [(_info("tmp", tarfile.DIRTYPE, 0o1777), b""), (_info("root", tarfile.DIRTYPE, 0o700), b"")]
    members += _busybox_members("bin", [a for a in applets if a != "busybox"])
    members += [(_info("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n"),
                (_info("etc/group"), b"root:x:0:\n")]
    return [_tar(dest / "busybox.tar", members)]


def _debs() -> List[str]:
    found = {}
    for deb in DEBIAN_CACHE.glob("pool/**/*_amd64.deb"):
        found.setdefault(deb.name.split("_")[0], str(deb))
    missing = [p for p in PACKAGES if p not in found]
    if missing:
        pytest.fail(f"missing cached Debian packages {missing}: run tests/fetch-example-debs")
    return [found[p] for p in PACKAGES]


def debian_layers(dest: Path) -> List[Tuple[str, str]]:
    if os.uname().machine != "x86_64":
        pytest.skip("the cached Debian packages for RUN tests are amd64")
    debs = _debs()
    layers = []
    for name, write in (("root", lambda out: write_root_layer(out)),
                        ("packages", lambda out: write_packages_layer(debs, out)),
                        ("config", lambda out: write_config_layer(out))):
        with open(dest / f"{name}.tar", "wb") as out:
            write(out)
        layers.append((str(dest / f"{name}.tar"), TAR))
    # dpkg's database, a shell and what dpkg looks for on PATH (ldconfig is libc-bin's).
    tools = [(_info(d, tarfile.DIRTYPE, 0o755), b"")
             for d in ("dev", "proc", "sys", "usr/local", "usr/local/bin", "var/lib/dpkg/info",
                       "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/log")]
    tools += [(_info("var/lib/dpkg/status"), b""), (_info("var/lib/dpkg/available"), b"")]
    tools += _busybox_members("usr/local/bin", ["sh", "rm", "ls", "cat", "chown", "chmod",
                                                "mknod", "stat", "mkdir", "id", "touch", "ln",
                                                "adduser", "addgroup", "env", "diff"])
    tools += [(_info("usr/bin/sh", tarfile.SYMTYPE, 0o777, "/usr/local/bin/busybox"), b""),
              (_info("usr/local/sbin", tarfile.DIRTYPE, 0o755), b""),
              (_info("usr/local/sbin/ldconfig", mode=0o755), b"#!/bin/sh\nexit 0\n")]
    layers.append(_tar(dest / "tools.tar", tools))
    return layers


FULL_LOCK = Path(__file__).resolve().parent / "rootfs_debian.lock.json"


def _status(debs: List[str]) -> bytes:
    """/var/lib/dpkg/status for packages laid out without dpkg: each control paragraph,
    marked installed, so dpkg and apt know what the image holds."""
    from ocibuild.debian.layers import _control

    paragraphs = []
    for deb in debs:
        _, paragraph, _ = _control(deb)
        lines = paragraph.strip("\n").split("\n")
        lines.insert(1, "Status: install ok installed")
        paragraphs.append("\n".join(lines) + "\n")
    return "\n".join(sorted(paragraphs)).encode()


def debian_full_layers(dest: Path, extra: Sequence[dict] = ()) -> List[Tuple[str, str]]:
    """Debian trixie with apt, passwd (useradd), coreutils, dash and python3-minimal, from
    tests/core/rootfs_debian.lock.json (fetched by tests/fetch-example-debs), and the
    `extra` packages (entries of another such lockfile, e.g. rootfs_debian_python.lock.json)."""
    import json

    if os.uname().machine != "x86_64":
        pytest.skip("the RUN tests' Debian lockfile is amd64")
    lock = json.loads(FULL_LOCK.read_text())
    debs = [str(DEBIAN_CACHE / p["filename"]) for p in [*lock["packages"]["amd64"], *extra]]
    missing = [d for d in debs if not os.path.isfile(d)]
    if missing:
        pytest.fail(f"missing cached Debian packages ({len(missing)}, e.g. {missing[0]}): "
                    "run tests/fetch-example-debs")
    layers = []
    for name, write in (("root", lambda out: write_root_layer(out)),
                        ("packages", lambda out: write_packages_layer(debs, out)),
                        ("config", lambda out: write_config_layer(out, debs=debs,
                                                                  suite="trixie"))):
        with open(dest / f"full-{name}.tar", "wb") as out:
            write(out)
        layers.append((str(dest / f"full-{name}.tar"), TAR))
    dirs = ("dev", "proc", "sys", "var/lib/dpkg/info", "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial",
            "var/log/apt", "etc/apt/sources.list.d", "etc/apt/keyrings")
    tools = [(_info(d, tarfile.DIRTYPE, 0o755), b"") for d in dirs]
    tools += [(_info("var/lib/dpkg/status"), _status(debs)),
              (_info("var/lib/dpkg/available"), b""),
              (_info("etc/shadow", mode=0o640), b"root:*:19000:0:99999:7:::\n"),
              (_info("etc/gshadow", mode=0o640), b"root:*::\n")]
    for info, _ in tools:
        if info.name in ("etc/shadow", "etc/gshadow"):
            info.gid = 42  # shadow, as Debian ships it
    layers.append(_tar(dest / "full-tools.tar", tools))
    return layers
