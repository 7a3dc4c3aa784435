"""A hostile base layer, or a tree a RUN step wrote, against the code that runs outside the
step's confinement: unpack (layers applied to a real directory) must never read or write
outside the tree, whatever the members say (docs/security.md, "Dockerfile builds")."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.ledger import Ledger
from ocibuild.rootfs.unpack import unpack
from tests.core.rootfs_unpack_test import TAR, make_layer as _layer

def _state(directory):
    """Every path under `directory` with its kind and content, links not followed."""
    found = {}
    for parent, dirs, files in os.walk(directory):
        for name in dirs + files:
            full = os.path.join(parent, name)
            rel = os.path.relpath(full, directory)
            if os.path.islink(full):
                found[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                found[rel] = ("dir",)
            else:
                with open(full, "rb") as f:
                    found[rel] = ("file", hashlib.sha256(f.read()).hexdigest())
    return found


# The work directory as a build has it: the tree among its siblings (other stages' trees,
# layers), a host directory beside it.
def _work():
    top = tempfile.mkdtemp(prefix="secdf-")
    os.makedirs(os.path.join(top, "OUTSIDE", "sub"))
    with open(os.path.join(top, "OUTSIDE", "victim"), "wb") as f:
        f.write(b"safe")
    os.makedirs(os.path.join(top, "work", "sibling"))
    with open(os.path.join(top, "work", "sibling", "layer"), "wb") as f:
        f.write(b"other stage")
    return top


@pytest.mark.parametrize("name", [".wh...", "a/.wh...", ".wh.", ".wh..", "a/.wh.", "a/.wh..",
                                  "a/b/.wh...", "./.wh...", "/.wh..."])
def test_a_whiteout_naming_no_file_is_refused_and_deletes_nothing(tmp_path, name):
    # `.wh...` names '..': applied, it deleted everything beside the tree (the root's parent).
    top = _work()
    try:
        root = os.path.join(top, "work", "r")
        low = _layer(tmp_path / "1.tar", [("a", tarfile.DIRTYPE, b""),
                                          ("a/b", tarfile.DIRTYPE, b""),
                                          ("a/keep", tarfile.REGTYPE, b"k")])
        up = _layer(tmp_path / "2.tar", [(name, tarfile.REGTYPE, b"")])
        unpack([low], root, Ledger(real=False))
        before = _state(top)
        with pytest.raises(OciBuildError) as err:
            unpack([up], root, Ledger(real=False))
        shown = name[2:] if name.startswith("./") else name.lstrip("/")
        assert f"the whiteout {shown!r} names" in str(err.value)
        assert "not a file; the layer is malformed or hostile" in str(err.value)
        assert _state(top) == before
    finally:
        shutil.rmtree(top)


NAMES = ["a", "b", "a/b", "a/c", "..", "../OUTSIDE", "a/..", "a/../..", ".", ".wh.", ".wh..",
         ".wh...", ".wh.a", "a/.wh.b", "a/.wh...", ".wh..wh..opq", "a/.wh..wh..opq", "b/x",
         "a/b/x", "x" * 300, ("d/" * 40) + "deep"]
TARGETS = ["/", "..", "../..", "../OUTSIDE", "../../OUTSIDE", "a", "a/..", "b/../..",
           "@OUTSIDE", "@OUTSIDE/victim", "../OUTSIDE/victim", "/etc/passwd", "/proc/self/root"]
KINDS = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
         tarfile.CHRTYPE]
member = st.tuples(st.sampled_from(NAMES), st.sampled_from(KINDS), st.sampled_from(TARGETS))
COUNT = {"cases": 0}


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(member, min_size=1, max_size=6), min_size=1, max_size=3))
def test_no_layer_stack_reads_or_writes_outside_the_tree(stack):
    """Generated stacks of the members that aim outside: `..`, absolute and climbing symlinks
    (to the host's OUTSIDE by its real path too), then files, whiteouts, opaque markers and
    hard links through them, FIFOs and devices, names too long for the disk."""
    COUNT["cases"] += 1
    top = _work()
    try:
        outside = os.path.join(top, "OUTSIDE")
        layers_dir = os.path.join(top, "blobs")
        os.mkdir(layers_dir)
        from pathlib import Path

        blobs = []
        for i, members in enumerate(stack):
            links = (tarfile.SYMTYPE, tarfile.LNKTYPE)
            real = [(n, k, (t.replace("@OUTSIDE", outside) if k in links else b"pwned"))
                    for n, k, t in members]
            blobs.append(_layer(Path(layers_dir) / f"{i}.tar", real))
        before = {k: v for k, v in _state(top).items() if not k.startswith("blobs")}
        try:
            unpack(blobs, os.path.join(top, "work", "r"), Ledger(real=False))
        except OciBuildError:
            pass
        after = {k: v for k, v in _state(top).items()
                 if not k.startswith("blobs") and not k.startswith("work/r/") and k != "work/r"}
        assert after == before
    finally:
        shutil.rmtree(top, ignore_errors=True)


# -- a RUN step's processes ------------------------------------------------------------------

# Each left-behind process first waits until the step's command (`$main`) is gone, then 4 s
# more, then writes. Counting from the command's start instead failed on a CI machine whose
# disk was busy: the command's own `echo` to its log was throttled for about 4 s, so the
# command ended just as the others woke. What the reaper does after the command has exited
# reads /proc only, never the disk.
_AFTER_MAIN = "while kill -0 $main 2>/dev/null; do sleep 0.05; done; sleep 4"
_WRITE = "while :; do echo x >> /{}; sleep 0.05; done"
LEFT_BEHIND = ("main=$$; "
               f"({_AFTER_MAIN}; {_WRITE.format('late')}) & "
               f"(setsid sh -c \"{_AFTER_MAIN}; {_WRITE.format('late2')}\" &) ; "
               f"(sh -c \"(trap '' TERM HUP; {_AFTER_MAIN}; echo x > /late3; sleep 1000) &\" &) ; "
               "echo started")


@pytest.mark.parametrize("where", ["pod", "user", "root"])
def test_no_process_of_a_step_outlives_it(where):
    """A step leaving processes behind (in its group, in a session of their own, double
    forked, ignoring SIGTERM, running forever): each was still writing into the tree after
    the snapshot (and proot waited for them forever). Now none outlives the command. They
    wait 4 s after the command is gone before writing, so a slow machine still kills them
    before that."""
    import time

    from tests.core.rootfs_base import busybox_layers, world_dir
    from tests.core.rootfs_run_test import SOURCE_ROOT, entries, pod

    work = world_dir(tempfile.mkdtemp(prefix="secdf-run-"))
    try:
        shutil.copytree(os.path.join(SOURCE_ROOT, "ocibuild"), work / "src" / "ocibuild",
                        ignore=shutil.ignore_patterns("__pycache__"))
        os.chmod(work / "src", 0o755)
        started = time.monotonic()
        result = pod(work, busybox_layers(work), [{"argv": ["/bin/sh", "-c", LEFT_BEHIND]},
                                                  {"argv": ["/bin/sh", "-c", "sleep 5"]}],
                     where)
        took = time.monotonic() - started
        assert "error" not in result, result["error"]
        assert [s["result"]["exit_code"] for s in result["steps"]] == [0, 0]
        assert took < 60, took
        assert entries(result, 0) == {}  # nothing written by the step's command itself
        assert entries(result, 1) == {}  # nor by what it left, during the next step
        time.sleep(5)
        tree = next(p for p in work.iterdir() if p.name.startswith("run-")) / "root"
        assert sorted(os.listdir(tree)) == ["bin", "dev", "etc", "proc", "root", "sys", "tmp"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_layer_bomb_is_refused_before_it_fills_the_disk(tmp_path):
    """A 200 KiB gzip layer holding a 200 MiB file of zeros (a 1 TiB one is as small, per
    its ratio): it was written out whole. Now refused before the member's first byte."""
    import gzip

    class Zeros(io.RawIOBase):
        def __init__(self, n):
            self.left = n

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    blob = tmp_path / "bomb.tar.gz"
    with gzip.open(blob, "wb", compresslevel=9) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 200 << 20
        tar.addfile(info, io.BufferedReader(Zeros(info.size)))
    assert blob.stat().st_size < 1 << 20
    root = tmp_path / "r"
    with pytest.raises(OciBuildError) as err:
        unpack([(str(blob), TAR + "+gzip")], str(root), Ledger(real=False))
    assert str(err.value) == (
        f"layer {str(blob)!r} ({TAR}+gzip): 'zeros' declares 209715200 bytes, which would take "
        f"layer {str(blob)!r} ({TAR}+gzip) to 209715200 before any of it is written, past its "
        "67108864-byte bound (gzip: at most 100x its "
        f"{blob.stat().st_size} bytes, at least 64 MiB, at most 64 GiB); refusing it as a "
        "decompression bomb. If it is genuine, unpack it yourself and use the directory")
    assert not (root / "zeros").exists()


def test_a_huge_libc_in_the_image_is_not_read_into_memory(tmp_path):
    """Which libc the image has is read from its libc.so.6: a sparse 16 GiB one was read whole
    into memory (f.read()). Now at most 64 MiB are scanned, a chunk at a time."""
    import subprocess
    import sys

    from ocibuild.rootfs import fakeroot

    root = tmp_path / "r"
    triplet = fakeroot._TRIPLETS.get(os.uname().machine, "")
    libc = root / "usr" / "lib" / triplet / "libc.so.6"
    libc.parent.mkdir(parents=True)
    with open(libc, "wb") as f:
        f.truncate(16 << 30)
    host = tmp_path / "host-lib.so"
    host.write_bytes(b"\0GLIBC_2.17\0GLIBC_2.34\0")
    code = ("import resource, sys; from ocibuild.rootfs import fakeroot; "
            f"print(fakeroot.guest_can_load({str(root)!r}, {str(host)!r}), "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    answer, max_rss_kib = out.stdout.split()
    assert answer == "False"
    assert int(max_rss_kib) < 200 << 10, max_rss_kib


@pytest.mark.parametrize("argv,env,what", [
    (["/bin/sh", "-c", "a\0b"], {}, "its command holds a NUL byte"),
    (["/bin/true"], {"X": "a\0b"}, "the environment variable 'X' holds a NUL byte"),
    (["/bin/true"], {"X=Y": "1"}, "the environment variable 'X=Y' holds a NUL byte or"),
])
def test_a_command_or_env_no_process_can_take_is_one_error(argv, env, what):
    """A hostile base's config (JSON may hold \\u0000) gives a step's Shell or Env a NUL:
    it was a ValueError traceback out of subprocess."""
    from ocibuild.rootfs.executors import Step
    from ocibuild.rootfs.executors._spawn import spawn

    step = Step("/", argv, env, "/", (0, 0), tempfile.gettempdir())
    with pytest.raises(OciBuildError) as err:
        spawn(step, argv, env)
    assert what in str(err.value)


def test_a_working_directory_no_directory_can_have_is_one_error(tmp_path):
    """A base config's WorkingDir may hold \\u0000: it was blamed on the command under proot
    and an "Exception occurred in preexec_fn" as root."""
    from ocibuild import rootfs

    with pytest.raises(OciBuildError) as err:
        rootfs.run(str(tmp_path), ["/bin/true"], {}, ledger=Ledger(real=os.geteuid() == 0),
                   cwd="/a\0b")
    assert str(err.value).startswith("RUN step: the working directory '/a\\x00b' holds a NUL "
                                     "byte, which no directory's name can")


def test_an_opaque_marker_under_a_link_lists_no_host_directory(tmp_path, monkeypatch):
    """`etc -> HOST_DIR`, then `etc/sub/.wh..wh..opq`: the host directory's names were listed
    (nothing was deleted: each removal walks its parents). Now it is not even listed."""
    host = tmp_path / "host"
    (host / "sub").mkdir(parents=True)
    (host / "sub" / "private-name").write_text("x")
    layer = _layer(tmp_path / "l.tar", [("etc", tarfile.SYMTYPE, str(host)),
                                        ("etc/sub/.wh..wh..opq", tarfile.REGTYPE, b"")])
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p=".": listed.append(str(p)) or real_listdir(p))
    unpack([layer], str(tmp_path / "r"), Ledger(real=False))
    assert not any(str(host) in p or p.endswith("etc/sub") for p in listed), listed
    assert sorted(real_listdir(host / "sub")) == ["private-name"]
