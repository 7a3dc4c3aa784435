"""What fakeroot's saved table becomes in the ledger after a step (`Fakeroot.finish`).

faked answers for an inode it first hears of (a mkdir, a chmod of a new file) with owner 0:0:
it assumes everyone is root. The kernel gives a new inode to the step's user, and a non-root
USER cannot chown it to root, so a step run as USER app (2001:2000) makes app's files, as
docker's build does (tests/e2e/dockerfile_debian_test.py, the useradd case). The table here is
written as faked writes it; the daemon is a process of the test's own, stopped by finish.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ocibuild.layer.entries import DIR, FILE
from ocibuild.rootfs.fakeroot import Fakeroot
from ocibuild.rootfs.ledger import Ledger, Meta, Record

APP = (2001, 2000)


def _finish(tmp_path: Path, user, loaded, saved, ledger: Ledger):
    root = tmp_path / "root"
    work = tmp_path / "work"
    work.mkdir()
    fake = Fakeroot(str(root), ledger, str(work), user)
    fake._loaded = loaded
    fake._save = str(work / "faked.save")
    lines = [f"dev={st.st_dev:x},ino={st.st_ino},mode={mode:o},uid={uid},gid={gid},"
             f"nlink={st.st_nlink},rdev=0\n" for st, mode, uid, gid in saved]
    (work / "faked.save").write_text("".join(lines))
    daemon = subprocess.Popen(["sleep", "60"])
    fake.pid = daemon.pid
    try:
        fresh = fake.finish()
    finally:
        daemon.kill()
        daemon.wait()
    return fresh


def _tree(tmp_path: Path):
    root = tmp_path / "root"
    (root / "home").mkdir(parents=True)
    (root / "home" / "made-dir").mkdir()
    (root / "home" / "new-file").write_text("x")
    (root / "home" / "kept").write_text("k")
    return {name: os.lstat(root / "home" / name) for name in ("made-dir", "new-file", "kept")}


def _key(st):
    return (st.st_dev, st.st_ino)


def test_what_a_user_step_makes_is_the_users_not_fakeds_root(tmp_path) -> None:
    st = _tree(tmp_path)
    ledger = Ledger(real=False)
    ledger.record("home/kept", Meta(FILE, 0o644, 0, 0), st["kept"])
    loaded = {_key(st["kept"]): (0o100644, 0, 0, 0)}
    fresh = _finish(tmp_path, APP, loaded, [
        (st["made-dir"], 0o40700, 0, 0),   # mkdir -m 700: new to faked
        (st["new-file"], 0o100600, 0, 0),  # echo > f && chmod 600 f
        (st["kept"], 0o100600, 0, 0),      # chmod of a file root owned before the step
    ], ledger)
    assert {p: ledger.records[p].meta for p in ("home/made-dir", "home/new-file", "home/kept")} \
        == {"home/made-dir": Meta(DIR, 0o700, *APP), "home/new-file": Meta(FILE, 0o600, *APP),
            "home/kept": Meta(FILE, 0o600, 0, 0)}
    assert fresh == {"home/made-dir", "home/new-file"}


def test_a_deleted_files_inode_number_reused_is_a_new_file(tmp_path) -> None:
    """`rm old && echo x > new && chmod 600 new` as USER, where the filesystem gives `new`
    the inode number `old` had (ext4 often does): loaded into faked under `old`'s owner,
    but no path the inode has now was recorded with it."""
    st = _tree(tmp_path)
    ledger = Ledger(real=False)
    ledger.records["home/old"] = Record(Meta(FILE, 0o644, 0, 0), st["new-file"].st_ino, 0o644)
    loaded = {_key(st["new-file"]): (0o100644, 0, 0, 0)}
    fresh = _finish(tmp_path, APP, loaded, [(st["new-file"], 0o100600, 0, 0)], ledger)
    assert ledger.records["home/new-file"].meta == Meta(FILE, 0o600, *APP)
    assert fresh == {"home/new-file"}


def test_a_root_step_keeps_fakeds_owners(tmp_path) -> None:
    st = _tree(tmp_path)
    ledger = Ledger(real=False)
    fresh = _finish(tmp_path, (0, 0), {}, [(st["made-dir"], 0o40755, 0, 0),
                                           (st["new-file"], 0o100644, 7, 7)], ledger)
    assert ledger.records["home/made-dir"].meta == Meta(DIR, 0o755, 0, 0)
    assert ledger.records["home/new-file"].meta == Meta(FILE, 0o644, 7, 7)
    assert fresh == {"home/made-dir", "home/new-file"}


def test_a_table_still_being_written_is_never_read(tmp_path, monkeypatch) -> None:
    """faked slow to exit (a loaded machine): the step fails rather than reading half a table
    and losing the owners not yet written."""
    import pytest

    from ocibuild.errors import OciBuildError
    from ocibuild.rootfs import fakeroot

    st = _tree(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    save = work / "faked.save"
    first = (f"dev={st['kept'].st_dev:x},ino={st['kept'].st_ino},mode=100644,uid=0,gid=42,"
             "nlink=1,rdev=0\n")
    later = (f"dev={st['new-file'].st_dev:x},ino={st['new-file'].st_ino},mode=100640,uid=0,"
             "gid=42,nlink=1,rdev=0\n")
    monkeypatch.setattr(fakeroot, "FAKED_EXIT_SECONDS", 2, raising=False)
    # As faked does: SIGTERM starts the write, the rest comes later (12 s: past the old wait).
    writer = subprocess.Popen(["sh", "-c", f"trap 'printf %s \"{first}\" > {save}; sleep 12; "
                                           f"printf %s \"{later}\" >> {save}; exit 0' TERM; "
                                           f"touch {work}/ready; while :; do sleep 0.1; done"])
    import time

    fake = Fakeroot(str(tmp_path / "root"), Ledger(real=False), str(work), (0, 0))
    fake._loaded, fake._save, fake.pid = {}, str(save), writer.pid
    try:
        while not (work / "ready").exists():  # the trap is set
            time.sleep(0.01)
        with pytest.raises(OciBuildError) as err:
            fake.finish()
        assert str(err.value) == (
            f"fakeroot's daemon (pid {writer.pid}) did not exit within 2 s of the RUN step's "
            "end; its table of owners may be half written, so the step fails (a machine this "
            "loaded: retry)")
    finally:
        writer.kill()
        writer.wait()


def _ipc(kind: str) -> dict:
    """key -> (perms, uid) of the SysV IPC objects of `kind` (msg, sem) on this machine."""
    with open(f"/proc/sysvipc/{kind}") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    uid_at = 7 if kind == "msg" else 4
    return {int(r[0]): (r[2], int(r[uid_at])) for r in rows}


def test_fakeds_channel_is_the_build_users_alone_and_gone_after_the_step(tmp_path) -> None:
    """What a step's owners are is what faked is told: its message queues and semaphore are
    mode 0600, the build user's (faked-tcp, a loopback port any local user could write owners
    into, is never used), and none is left behind once the step's table is read."""
    import shutil

    import pytest

    if shutil.which("faked-sysv") is None:
        pytest.skip("fakeroot is not installed")
    _tree(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    fake = Fakeroot(str(tmp_path / "root"), Ledger(real=False), str(work), (0, 0))
    fake.start()
    try:
        key = int(fake.key)
        env = fake.env()
        assert "FAKEROOT_TCP_PORT" not in env and env["FAKEROOTKEY"] == fake.key
        me = os.getuid()
        assert {k: v for k, v in _ipc("msg").items() if k in (key, key + 1)} == \
            {key: ("600", me), key + 1: ("600", me)}
        assert {k: v for k, v in _ipc("sem").items() if k == key + 2} == {key + 2: ("600", me)}
    finally:
        fake.finish()
    assert not {key, key + 1} & set(_ipc("msg")) and key + 2 not in _ipc("sem")
