"""Our Debian base's root filesystem against what apt + dpkg (mmdebstrap) make of the same .debs.

The example base (examples/python-base, whatever packages its lockfile names) is built with
`pants package`, and its layers are read with whiteouts into a tree (path -> kind, permission
bits, owner, link target). The reference is mmdebstrap installing exactly the locked .debs
with dpkg, maintainer scripts run (tests/fixtures/dpkg_reference.py). Every difference must
be on the allow-list below, with its reason; docs/debian.md ("Compared with dpkg") holds the
same list.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

from tests.e2e.repo import copy_repo, run_pants
from tests.fixtures.dpkg_reference import Entry, Tree, dpkg_reference, image_tree

HELLO = "examples.python-hello/image"
LOCK = "examples/python-base/python-base.lock.json"
DEBIAN_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pants-oci-tests/debian"

# (glob over the path, where it is: "ours" only, "dpkg" only, or "both" but different, why).
ALLOWED: List[Tuple[str, str, str]] = [
    # What pants-oci adds on purpose.
    ("etc/passwd", "ours", "users and groups: root, nobody, nonroot (65532) written by us; "
                           "base-passwd is not in the set, so dpkg makes none"),
    ("etc/group", "ours", "as etc/passwd"),
    ("etc/ssl/certs/ca-certificates.crt", "ours",
     "the CA bundle update-ca-certificates writes; the reference answers debconf with nothing, "
     "so it enables no certificate and writes none"),
    ("etc/os-release", "ours", "generated from the suite when base-files is not in the set"),
    ("usr/lib/os-release", "ours", "as etc/os-release"),
    ("home", "ours", "the root layer's /home/nonroot for the nonroot user (base-files would "
                     "ship /home)"),
    ("home/nonroot", "ours", "as home"),
    ("root", "ours", "the root layer's /root, 0700 (base-files would ship it)"),
    ("tmp", "ours", "the root layer's /tmp, 1777 (mmdebstrap makes it too; listed in case a "
                    "version does not)"),
    ("var/lib/dpkg/status.d", "ours", "one control paragraph per package, where distroless "
                                      "images keep it and scanners look"),
    ("var/lib/dpkg/status.d/*", "ours", "as var/lib/dpkg/status.d"),
    # dpkg's and apt's own state, and what mmdebstrap itself writes.
    ("var/lib/dpkg/*", "dpkg", "dpkg's database (status, info/, triggers/, alternatives/, "
                               "locks): no dpkg runs in the image"),
    ("var/lib/apt", "dpkg", "apt's state: apt is not used"),
    ("var/lib/apt/*", "dpkg", "as var/lib/apt"),
    ("var/cache/apt", "dpkg", "apt's cache: apt is not used"),
    ("var/cache/apt/*", "dpkg", "as var/cache/apt"),
    ("var/log", "dpkg", "dpkg's and apt's logs"),
    ("var/log/*", "dpkg", "as var/log"),
    ("etc/apt/*", "dpkg", "apt's configuration, written by mmdebstrap"),
    ("etc/fstab", "dpkg", "written by mmdebstrap, not by a package"),
    ("etc/hostname", "dpkg", "written by mmdebstrap, not by a package"),
    ("etc/resolv.conf", "dpkg", "written by mmdebstrap (a runtime mounts its own)"),
    ("usr/lib32", "dpkg", "empty directories the merged-/usr setup makes; our /lib32 and "
                          "/libx32 links point at nothing until a package ships files there"),
    ("usr/libx32", "dpkg", "as usr/lib32"),
    # Maintainer-script effects deliberately not reproduced (docs/debian.md says why).
    ("*/__pycache__", "dpkg", "py3compile byte-compiles Debian's Python modules in postinst; "
                              "Python compiles on import, into a writable PEX_ROOT or not at all"),
    ("*/__pycache__/*", "dpkg", "as __pycache__"),
    ("var/lib/python", "dpkg", "python3's postinst records installed versions for py3compile"),
    ("var/lib/python/*", "dpkg", "as var/lib/python"),
    ("usr/local", "dpkg", "python3.X-minimal's postinst makes /usr/local/lib/python3.X/"
                          "dist-packages for locally installed modules: none in an image"),
    ("usr/local/*", "dpkg", "as usr/local"),
    ("etc/inputrc", "dpkg", "readline-common's postinst copies its default; readline reads "
                            "/usr/share/readline/inputrc without it, and only interactively"),
    ("etc/ca-certificates.conf", "dpkg", "ca-certificates' postinst records the debconf answer; "
                                         "only update-ca-certificates reads it"),
    ("etc/ssl/certs/*", "dpkg", "update-ca-certificates' hash links (*.pem, *.0); OpenSSL uses "
                                "the bundle"),
    ("etc/ld.so.cache", "dpkg", "ldconfig's cache: the loader finds Debian's libraries without it"),
]


def _allowed(path: str, side: str) -> Optional[str]:
    return next((why for glob, where, why in ALLOWED
                 if where == side and fnmatch.fnmatchcase(path, glob)), None)


def _differences(ours: Tree, dpkg: Tree) -> List[str]:
    found = []
    for path in sorted(set(ours) | set(dpkg)):
        mine, theirs = ours.get(path), dpkg.get(path)
        if mine == theirs:
            continue
        side = "ours" if theirs is None else "dpkg" if mine is None else "both"
        if _allowed(path, side) is None:
            found.append(f"/{path}: ours {_show(mine)}, dpkg {_show(theirs)}")
    return found


def _show(entry: Optional[Entry]) -> str:
    return "absent" if entry is None else entry.describe()


def test_root_filesystem_matches_dpkg_but_for_the_allow_list(tmp_path: Path) -> None:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                          text=True).stdout.strip()
    if arch != "amd64":
        pytest.skip(f"the example image is linux/amd64 and this host is {arch}: mmdebstrap "
                    "would need an emulator to run its maintainer scripts")
    repo = copy_repo(tmp_path / "repo")
    run_pants(repo, "package", "examples/python-hello:image")
    meta = json.loads((repo / f"dist/{HELLO}.json").read_text())
    ours = image_tree(repo / f"dist/{HELLO}",
                      [layer["digest"] for layer in meta["layers"] if layer["from_base"]])

    lock = json.loads((repo / LOCK).read_text())
    packages = lock["packages"][arch]
    dpkg = dpkg_reference([DEBIAN_CACHE / p["filename"] for p in packages],
                          [p["name"] for p in packages],
                          lock["request"]["sources"][0]["suite"], arch)

    assert _differences(ours, dpkg) == []
    # The comparison is not vacuous: every package's files are there, the same in both.
    shared = set(ours) & set(dpkg)
    assert len(shared) > 1000 and "usr/bin/python3" in shared
    # What postinst scripts make and the config layer reproduces is the same as dpkg's.
    made = [p for p in dpkg if p.startswith("etc/alternatives/") and dpkg[p].kind == "l"]
    assert all(ours.get(p) == dpkg[p] for p in made)
    for path in ("etc/localtime", "etc/timezone"):
        assert ours.get(path) == dpkg.get(path)


def test_allow_list_is_in_the_docs() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs/debian.md").read_text()
    missing = [glob for glob, _, _ in ALLOWED if f"`{glob}`" not in docs]
    assert missing == []
