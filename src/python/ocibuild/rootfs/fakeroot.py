"""Ownership, modes and devices a RUN step sets without privilege, kept by fakeroot's daemon.

`faked` keeps a table of inode -> (mode, uid, gid, rdev); `libfakeroot`, preloaded into the
step's dynamically linked programs, turns their chown, chmod, mknod and stat calls into
questions to it. We load the table from the ledger before the step (so `ls -l`, `stat` and
dpkg see the image's owners and devices, not the build user) and read it back after, into
the ledger, for every path of each inode the step changed.

What it cannot see: statically linked programs (busybox-static, Go binaries) call the kernel
directly; their chown and mknod change nothing here (under proot -0 they "succeed"), their
chmod is seen on disk (ledger.py). The library must be loadable by the image's libc: it is
the host's, built for glibc, so images without glibc, or with an older one, run without it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from typing import AbstractSet, Dict, List, Optional, Set, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.layer.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK
from ocibuild.rootfs.ledger import Ledger, Meta, disk_kind
from ocibuild.rootfs.paths import walk

_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu/libfakeroot", "/usr/lib/aarch64-linux-gnu/libfakeroot",
             "/usr/lib/libfakeroot", "/usr/lib64/libfakeroot")
LIB_NAME = "libfakeroot-sysv.so"
_LIBC_PLACES = ("usr/lib/{t}/libc.so.6", "lib/{t}/libc.so.6", "usr/lib64/libc.so.6",
                "lib64/libc.so.6")
_TRIPLETS = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}
_GLIBC = re.compile(rb"GLIBC_2\.(\d+)")
_MAX_LIBC = 64 << 20  # glibc's libc.so.6 is about 2 MiB
_S_IF = {FILE: stat.S_IFREG, DIR: stat.S_IFDIR, SYMLINK: stat.S_IFLNK, CHARDEV: stat.S_IFCHR,
         BLOCKDEV: stat.S_IFBLK, FIFO: stat.S_IFIFO}
Key = Tuple[int, int]  # (st_dev, st_ino)
FAKED_EXIT_SECONDS = 300


def host_library() -> Optional[str]:
    for directory in _LIB_DIRS:
        path = os.path.join(directory, LIB_NAME)
        if os.path.isfile(path):
            return path
    return None


def _newest_glibc(path: str) -> int:
    """Scanned a chunk at a time, at most _MAX_LIBC bytes: the image's "libc" may be a sparse
    file of 100 GiB (it was read whole into memory)."""
    newest, tail, done = -1, b"", 0
    with open(path, "rb") as f:
        while done < _MAX_LIBC:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            done += len(chunk)
            data = tail + chunk
            newest = max([newest, *(int(m) for m in _GLIBC.findall(data))])
            tail = data[-16:]
    return newest


def guest_can_load(root: str, library: str) -> bool:
    """The image has a glibc at least as new as the one the host's library needs.

    Read from the files (with the image's own relative links resolved under the root), never
    by running anything: an older glibc fails every program the library is preloaded into."""
    triplet = _TRIPLETS.get(os.uname().machine, "")
    for place in _LIBC_PLACES:
        candidate = os.path.realpath(os.path.join(root, place.format(t=triplet)))
        if candidate.startswith(os.path.realpath(root) + os.sep) and os.path.isfile(candidate):
            return _newest_glibc(candidate) >= _newest_glibc(library)
    return False


def _line(st: os.stat_result, meta: Meta) -> str:
    rdev = os.makedev(*meta.device) if meta.kind in (CHARDEV, BLOCKDEV) else 0
    return (f"dev={st.st_dev:x},ino={st.st_ino},mode={_S_IF[meta.kind] | meta.mode:o},"
            f"uid={meta.uid},gid={meta.gid},nlink={st.st_nlink},rdev={rdev}\n")


def _parse(text: str) -> Dict[Key, Tuple[int, int, int, int]]:
    table = {}
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.strip().split(",") if "=" in part)
        try:
            key = (int(fields["dev"], 16), int(fields["ino"]))
            table[key] = (int(fields["mode"], 8), int(fields["uid"]), int(fields["gid"]),
                          int(fields["rdev"]))
        except (KeyError, ValueError):
            continue  # a line faked did not write: ignore rather than guess
    return table


def _inodes(root: str) -> Dict[Key, List[Tuple[str, os.stat_result]]]:
    found: Dict[Key, List[Tuple[str, os.stat_result]]] = {}
    for path, st in walk(root):
        found.setdefault((st.st_dev, st.st_ino), []).append((path, st))
    return found


@dataclass
class Fakeroot:
    """One faked daemon for one step: `start`, run the step with `env()`, then `finish`."""
    root: str
    ledger: Ledger
    work: str  # a private directory for the load and save files
    user: Tuple[int, int]
    held: AbstractSet[Key] = frozenset()  # the inodes held for the step (pins.py)
    key: str = ""
    pid: int = 0

    def start(self) -> None:
        faked = shutil.which("faked-sysv") or shutil.which("faked")
        if faked is None:
            raise OciBuildError("fakeroot's faked-sysv is not installed; install the fakeroot "
                                "package, or build as root")
        # Walked, never looked up by path: a symlink a step left in a parent is not followed.
        lines = [_line(st, self.ledger.resolve(path, st, os.path.join(self.root, path)))
                 for path, st in walk(self.root) if self.ledger.current(path, st) is not None]
        self._loaded = _parse("".join(lines))
        load = os.path.join(self.work, "faked.load")
        with open(load, "w") as f:
            f.writelines(lines)
        self._save = os.path.join(self.work, "faked.save")
        with open(load) as stdin:
            out = subprocess.run([faked, "--load", "--save-file", self._save], stdin=stdin,
                                 capture_output=True, text=True, check=False)
        if out.returncode != 0 or ":" not in out.stdout:
            raise OciBuildError(f"fakeroot's daemon did not start: {out.stderr.strip()[:500]}")
        self.key, pid = out.stdout.strip().split(":", 1)
        self.pid = int(pid)

    def env(self) -> Dict[str, str]:
        uid, gid = self.user
        # LD_PRELOAD is the executor's: its path differs. FAKEROOTDONTTRYCHOWN: in a user
        # namespace the real chown to an unmapped id fails with EINVAL, which libfakeroot
        # passes on (it forgives only EPERM); the disk's owner does not matter anyway.
        env = {"FAKEROOTKEY": self.key, "FAKEROOTDONTTRYCHOWN": "1"}
        for name in ("UID", "EUID", "SUID", "FUID"):
            env["FAKEROOT" + name] = str(uid)
        for name in ("GID", "EGID", "SGID", "FGID"):
            env["FAKEROOT" + name] = str(gid)
        return env

    def finish(self) -> Set[str]:
        """Stop faked (it writes its table as it exits) and fold what changed into the ledger;
        the paths of inodes the step made (for Ledger.adopt)."""
        fresh: Set[str] = set()
        if not self.pid:
            return fresh
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        # faked writes its table as it exits: read before it is gone and the table may be
        # half written, and every owner it did not reach yet silently lost (seen on a loaded
        # machine with the old 10 s wait). So wait long, and fail rather than read early.
        deadline = time.monotonic() + FAKED_EXIT_SECONDS
        while os.path.exists(f"/proc/{self.pid}") and not _zombie(self.pid):
            if time.monotonic() > deadline:
                raise OciBuildError(
                    f"fakeroot's daemon (pid {self.pid}) did not exit within "
                    f"{FAKED_EXIT_SECONDS} s of the RUN step's end; its table of owners may "
                    "be half written, so the step fails (a machine this loaded: retry)")
            time.sleep(0.01)
        self.pid = 0
        try:
            with open(self._save) as f:
                table = _parse(f.read())
        except FileNotFoundError:
            raise OciBuildError("fakeroot's daemon exited without saving what the RUN step "
                                "changed; ownership would be lost, so the step fails") from None
        for key, paths in _inodes(self.root).items():
            if key not in table:
                continue
            made = self._made(key, paths)
            if not made and self._loaded.get(key) == table[key]:
                continue  # the ledger knows more: xattrs, the bits a static chmod left
            mode, uid, gid, rdev = table[key]
            if made:
                # faked owns an inode it first hears of (a mkdir, a chmod of a new file) by
                # 0:0; the kernel gives it the step's user, who cannot chown it to root.
                uid, gid = uid or self.user[0], gid or self.user[1]
            for path, st in paths:
                kind = _faked_kind(mode, st)
                old = self.ledger.records.get(path)
                xattrs = old.meta.xattrs if old is not None and old.ino == st.st_ino else ()
                device = (os.major(rdev), os.minor(rdev)) if kind in (CHARDEV, BLOCKDEV) else (0, 0)
                self.ledger.record(path, Meta(kind, stat.S_IMODE(mode), uid, gid, device, xattrs),
                                   st)
                if made:
                    fresh.add(path)
        return fresh

    def _made(self, key: Key, paths: List[Tuple[str, os.stat_result]]) -> bool:
        """The inode is not one the tree had when the step started. A held one (pins.py) is
        the same file, wherever it is now (`mv`); one not held may be a deleted file's
        number reused, unless a path still names it in the ledger."""
        if key not in self._loaded:
            return True
        if key in self.held:
            return False
        return not any((r := self.ledger.records.get(path)) is not None and r.ino == st.st_ino
                       for path, st in paths)


def _zombie(pid: int) -> bool:
    """Exited, not yet reaped (faked is not our child: someone else reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _faked_kind(mode: int, st: os.stat_result) -> str:
    """faked's kind, except where the disk disagrees other than by a device stand-in."""
    kind = disk_kind(stat.S_IFMT(mode) | 0) if stat.S_IFMT(mode) else disk_kind(st.st_mode)
    on_disk = disk_kind(st.st_mode)
    if on_disk == FILE and kind in (CHARDEV, BLOCKDEV, FIFO) and st.st_size == 0:
        return kind
    return on_disk
