"""A file a RUN step makes may get the inode number of one it deleted: the owner recorded for
the new file is its own, never the deleted one's, nor the build user's default.

ext4 hands a freed inode number to the next file made, so shadow's way of writing
/etc/gshadow (make `/etc/gshadow+`, fchown it to root:shadow, rename it over the old one)
gave the new gshadow the number /etc/shadow had before useradd replaced it, with the same
owner and mode: faked's table looked unchanged for that number, and the ledger, keying by
number, left /etc/gshadow 0:0 (seen in tests/e2e/dockerfile_debian_test.py's useradd case
under the pod). Each case here makes the filesystem reuse numbers many times over (deleting
a file, then making one, 200 times), under proot + fakeroot (the pod) and the user
namespace; a number reused once is enough to fail the old code.
"""

from __future__ import annotations

import os
import tarfile

import pytest

from tests.core.rootfs_base import _info, _tar, busybox_layers, debian_layers
from tests.core.rootfs_run_test import _mechanism_ok, entries, pod, work  # noqa: F401 (fixture)

N = 200
SHADOW = 42


def _base(work, name: str, members) -> list:
    return debian_layers(work) + [_tar(work / f"{name}.tar", members)]


def _shadowed(path: str, mode: int) -> tuple:
    """A root:shadow file of the base."""
    info = _info(path, mode=mode)
    info.gid = SHADOW
    return info, b"old\n"


def _shadow_files() -> list:
    """etc/pin/s{i} (deleted by the step) and etc/pin/g{i} (replaced), all root:shadow 0640."""
    return [(_info("etc/pin", tarfile.DIRTYPE, 0o755), b"")] + [
        _shadowed(f"etc/pin/{name}", 0o640) for i in range(N) for name in (f"s{i}", f"g{i}")]


# What shadow's commonio does to each file it writes: a new file, fchown'd and fchmod'd to
# the old one's owner and mode, renamed over it.
REPLACE = f"""
import os
for i in range({N}):
    os.unlink(f"/etc/pin/s{{i}}")
    fd = os.open(f"/etc/pin/g{{i}}+", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0)
    os.fchown(fd, 0, {SHADOW})
    os.fchmod(fd, 0o640)
    os.write(fd, b"new\\n")
    os.close(fd)
    os.rename(f"/etc/pin/g{{i}}+", f"/etc/pin/g{{i}}")
"""


@pytest.mark.parametrize("where", ["pod", "user"])
def test_a_file_renamed_over_another_keeps_the_owner_it_was_given(work, where):
    result = pod(work, _base(work, "pin", _shadow_files()), [
        {"argv": ["/usr/bin/python3", "-c", REPLACE]},
    ], where)
    assert "error" not in result, result["error"]
    _mechanism_ok(where, result)
    assert result["steps"][0]["result"]["exit_code"] == 0, result["logs"]
    layer = entries(result, 0)
    wrong = {p: e[:4] for p, e in layer.items()
             if p.startswith("etc/pin/g") and e[:4] != ("0", "0o640", 0, SHADOW)}
    assert wrong == {}
    assert sorted(p for p in layer if p.startswith("etc/pin/g")) == \
        sorted(f"etc/pin/g{i}" for i in range(N))
    assert sorted(p for p in layer if p.startswith("etc/pin/.wh.")) == \
        sorted(f"etc/pin/.wh.s{i}" for i in range(N))


def _root_files(mode: int) -> list:
    """srv/d (the user's to write in) holding root:shadow files f{i}."""
    return [(_info("srv", tarfile.DIRTYPE, 0o755), b""),
            (_info("srv/d", tarfile.DIRTYPE, 0o777), b"")] + [
        _shadowed(f"srv/d/f{i}", mode) for i in range(N)]


MAKE = f"""
import os
for i in range({N}):
    os.unlink(f"/srv/d/f{{i}}")
    with open(f"/srv/d/n{{i}}", "w") as f:
        f.write("mine\\n")
"""


@pytest.mark.parametrize("where", ["pod", "user"])
def test_a_file_made_where_one_was_deleted_is_the_step_users(work, where):
    """USER 1000 deletes root's files and makes its own: each new one is 1000's (as the kernel
    makes it), never root:shadow through the deleted file's number."""
    result = pod(work, _base(work, "users", _root_files(0o644)), [
        {"argv": ["/usr/bin/python3", "-c", MAKE], "user": [1000, 1000]},
    ], where)
    assert "error" not in result, result["error"]
    assert result["steps"][0]["result"]["exit_code"] == 0, result["logs"]
    layer = entries(result, 0)
    made = {p: e[:4] for p, e in layer.items() if p.startswith("srv/d/n")}
    assert made == {f"srv/d/n{i}": ("0", "0o644", 1000, 1000) for i in range(N)}


@pytest.mark.parametrize("where", ["pod", "user"])
def test_a_file_made_in_a_later_step_never_takes_a_deleted_files_owner(work, where):
    """The number freed in one step, taken in the next: the ledger keeps no record of a path
    that is gone for a new file to be matched with."""
    result = pod(work, _base(work, "later", _root_files(0o600)), [
        {"argv": ["/usr/bin/python3", "-c",
                  f"import os\nfor i in range({N}): os.unlink(f'/srv/d/f{{i}}')"]},
        {"argv": ["/usr/bin/python3", "-c",
                  f"for i in range({N}): open(f'/srv/d/n{{i}}', 'w').write('x')"],
         "user": [1000, 1000]},
    ], where)
    assert "error" not in result, result["error"]
    assert [s["result"]["exit_code"] for s in result["steps"]] == [0, 0], result["logs"]
    made = {p: e[:4] for p, e in entries(result, 1).items() if p.startswith("srv/d/n")}
    assert made == {f"srv/d/n{i}": ("0", "0o644", 1000, 1000) for i in range(N)}


def _busybox_base(work) -> list:
    return busybox_layers(work) + [_tar(work / "static.tar", _root_files(0o600))]


@pytest.mark.parametrize("where", ["pod", "user"])
def test_a_static_program_remaking_a_file_makes_a_new_file(work, where):
    """busybox-static deletes and makes each file again at the same path, unseen by fakeroot
    (and the image has no glibc to preload it into): the new file is root's, as the kernel
    makes it, not root:shadow through the old file's number."""
    result = pod(work, _busybox_base(work), [
        {"argv": ["/bin/sh", "-c", f"i=0; while [ $i -lt {N} ]; do rm /srv/d/f$i; "
                                   "echo new > /srv/d/f$i; i=$((i+1)); done"]},
    ], where)
    assert "error" not in result, result["error"]
    assert result["steps"][0]["result"]["exit_code"] == 0, result["logs"]
    remade = {p: e[:4] for p, e in entries(result, 0).items() if p.startswith("srv/d/f")}
    assert remade == {f"srv/d/f{i}": ("0", "0o644", 0, 0) for i in range(N)}


HELD = """
import os, resource, sys
from ocibuild.rootfs.pins import SPARE, Pins
open_now = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + SPARE + 100, open_now + SPARE + 100))
pins = Pins(sys.argv[1])
during = len(os.listdir("/proc/self/fd"))
pins.release()
print(pins.complete, len(pins.held), pins.inodes, during - open_now,
      len(os.listdir("/proc/self/fd")) - open_now)
"""


def test_a_hard_open_file_limit_below_the_tree_holds_part_and_says_so(tmp_path):
    """500 inodes, room for 100 descriptors beside the spare ones: 100 held, `complete`
    false (step.py reports it as lost), every descriptor closed on release."""
    import subprocess
    import sys

    root = tmp_path / "tree"
    root.mkdir()
    for i in range(500):
        (root / f"f{i}").write_text("x")
    path = os.pathsep.join(p for p in sys.path if p)  # this process's ocibuild, wherever
    out = subprocess.run([sys.executable, "-c", HELD, str(root)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": path}, check=True)
    assert out.stdout.split() == ["False", "100", "500", "100", "0"]
