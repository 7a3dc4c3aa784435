"""unpack_ahead: a base unpacked by a forked child gives the tree and ledger unpack gives
in-process; a child that fails, unpacks other layers, or is not wanted leaves nothing behind
(no process, no file); none is forked beside other threads; it dies with its parent."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.ledger import Ledger
from ocibuild.rootfs.unpack import unpack
from ocibuild.rootfs import unpack_ahead
from ocibuild.rootfs.unpack_ahead import UnpackAhead
from tests.core.rootfs_unpack_test import make_layer

D, F, L = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE


@pytest.fixture(autouse=True)
def _alone(request, monkeypatch):
    """This file may share a pytest process with modules whose fixtures left threads running
    (a server), which would keep every child from starting: the tests of a child take the
    process as alone; the two of the rule itself use the real one."""
    if request.node.name.startswith(("test_no_fork_beside", "test_a_cancelled_timer")):
        return
    monkeypatch.setattr(unpack_ahead, "_alone", lambda: True)


def _layers(tmp_path):
    low = make_layer(tmp_path / "1.tar", [("etc", D, b""), ("etc/passwd", F, b"root:x:0:0::/:/bin/sh\n"),
                                          ("bin", D, b""), ("bin/sh", F, b"#!"), ("sh", L, "bin/sh"),
                                          ("gone", F, b"x")])
    up = make_layer(tmp_path / "2.tar", [(".wh.gone", F, b""), ("etc/new", F, b"n" * 70000)])
    return [low, up]


def _tree(root):
    out = {}
    for path, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(path, name)
            st = os.lstat(full)
            body = os.readlink(full) if os.path.islink(full) else \
                (open(full, "rb").read() if os.path.isfile(full) else b"")
            mtime = None if os.path.isdir(full) else st.st_mtime  # a directory's: its last write
            out[os.path.relpath(full, root)] = (st.st_mode, st.st_size, mtime, body)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_child_unpacks_what_unpack_does(tmp_path):
    layers = _layers(tmp_path)
    ahead = UnpackAhead(layers, str(tmp_path / "ahead"))
    assert ahead.pid
    ledger = ahead.take(layers)
    here = unpack(layers, str(tmp_path / "here"))
    assert isinstance(ledger, Ledger) and ledger.real == here.real
    assert {p: (r.meta, r.disk_mode) for p, r in ledger.records.items()} == \
        {p: (r.meta, r.disk_mode) for p, r in here.records.items()}
    assert _tree(tmp_path / "ahead") == _tree(tmp_path / "here")
    assert sorted(os.listdir(tmp_path)) == ["1.tar", "2.tar", "ahead", "here"]  # no ledger file
    ahead.cancel()  # taken: the tree is the stage's now, and stays
    assert os.path.isdir(tmp_path / "ahead" / "etc")


def test_other_layers_are_not_taken_and_nothing_is_left(tmp_path):
    layers = _layers(tmp_path)
    ahead = UnpackAhead(layers, str(tmp_path / "ahead"))
    assert ahead.take(layers[:1]) is None
    assert not _alive(ahead.pid or 0)
    assert sorted(os.listdir(tmp_path)) == ["1.tar", "2.tar"]


def test_a_damaged_layer_gives_none_and_unpack_then_says_why(tmp_path):
    layers = _layers(tmp_path)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 60)
    blobs = [layers[0], (str(bad), "application/vnd.oci.image.layer.v1.tar+gzip")]
    ahead = UnpackAhead(blobs, str(tmp_path / "ahead"))
    assert ahead.take(blobs) is None
    assert sorted(os.listdir(tmp_path)) == ["1.tar", "2.tar", "bad.tar.gz"]
    with pytest.raises(OciBuildError, match="bad.tar.gz"):
        unpack(blobs, str(tmp_path / "here"))


def test_cancel_stops_a_child_at_work_and_removes_its_tree(tmp_path):
    fifo = tmp_path / "blob"
    os.mkfifo(fifo)  # the child blocks opening it: a child still at work
    layers = _layers(tmp_path)
    ahead = UnpackAhead([layers[0], (str(fifo), layers[0][1])], str(tmp_path / "ahead"))
    pid = ahead.pid
    deadline = time.monotonic() + 10
    while not (tmp_path / "ahead" / "etc" / "passwd").exists():  # the first layer is done
        assert time.monotonic() < deadline
        time.sleep(0.01)
    ahead.cancel()
    assert not _alive(pid)
    assert sorted(os.listdir(tmp_path)) == ["1.tar", "2.tar", "blob"]


def test_no_fork_beside_another_thread(tmp_path):
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        layers = _layers(tmp_path)
        ahead = UnpackAhead(layers, str(tmp_path / "ahead"))
    finally:
        stop.set()
        other.join()
    assert ahead.pid == 0
    assert ahead.take(layers) is None  # the caller unpacks in-process
    assert not (tmp_path / "ahead").exists()


def test_the_child_dies_with_its_parent(tmp_path):
    fifo = tmp_path / "blob"
    os.mkfifo(fifo)
    script = ("import os, sys; from ocibuild.rootfs.unpack_ahead import UnpackAhead; "
              "a = UnpackAhead([(sys.argv[1], 'application/vnd.oci.image.layer.v1.tar')], "
              "sys.argv[2]); print(a.pid, flush=True); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", script, str(fifo), str(tmp_path / "ahead")],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    pid = int(out.stdout)
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.01)


def test_a_cancelled_timer_does_not_keep_the_child_from_starting(tmp_path):
    if threading.active_count() > 1:
        pytest.skip("threads of another module's fixtures run in this process")
    timer = threading.Timer(60, lambda: None)  # as a registry request's deadline watchdog
    timer.start()
    timer.cancel()
    layers = _layers(tmp_path)
    ahead = UnpackAhead(layers, str(tmp_path / "ahead"))
    assert ahead.pid and not timer.is_alive()
    assert ahead.take(layers) is not None


def test_a_child_reaped_by_someone_else_is_not_taken(tmp_path):
    layers = _layers(tmp_path)
    ahead = UnpackAhead(layers, str(tmp_path / "ahead"))
    os.waitpid(ahead.pid, 0)  # as SIGCHLD set to SIG_IGN would: no status left for take
    assert ahead.take(layers) is None
    assert sorted(os.listdir(tmp_path)) == ["1.tar", "2.tar"]


def test_a_fork_refused_is_no_child_and_no_error(tmp_path, monkeypatch):
    def refused():
        raise BlockingIOError(11, "Resource temporarily unavailable")  # a pids limit's EAGAIN

    monkeypatch.setattr(os, "fork", refused)
    layers = _layers(tmp_path)
    ahead = UnpackAhead(layers, str(tmp_path / "ahead"))
    assert ahead.pid == 0 and ahead.take(layers) is None
