"""What the image says about each path of a RUN step's tree, where the disk cannot say it.

A build without privilege cannot chown, cannot mknod and should not leave set-id files owned
by the build user on the host, so the tree on disk is a stand-in: files owned by the build
user, modes kept usable for it (owner rw, directories owner rwx, no set-id bits), devices
and FIFOs as empty regular files. The ledger keeps the truth for each path: kind, mode,
owner, device numbers, xattrs, as the layers said (`unpack`) or as a RUN step set them
through fakeroot (`executors`).

A record names the inode it describes and the permission bits it left on disk, so a change
the ledger did not see is noticed rather than papered over: a path whose inode differs (the
file was deleted and made again) is a new file; permission bits that differ were changed by
the step (a static binary's chmod), and the disk's bits win.

As root (`real=True`) the tree holds real owners, modes and devices, and the ledger is empty:
the disk is the truth.
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Set, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.layer.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK

SPECIAL = (CHARDEV, BLOCKDEV, FIFO)  # kept on disk as empty regular files when not root
# Docker keeps only this xattr when it makes a layer from a tree (moby pkg/archive).
KEPT_XATTRS = ("security.capability",)
_FORMAT = 1


@dataclass(frozen=True)
class Meta:
    """A path as the image records it."""
    kind: str  # entries.py names: FILE, DIR, SYMLINK, CHARDEV, BLOCKDEV, FIFO
    mode: int  # permission bits, set-id and sticky bits included
    uid: int = 0
    gid: int = 0
    device: Tuple[int, int] = (0, 0)
    xattrs: Tuple[Tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Record:
    meta: Meta
    ino: int  # the inode described; another inode at the path makes the record stale
    disk_mode: int  # permission bits left on disk when recorded


def disk_kind(st_mode: int) -> str:
    for test, kind in ((stat.S_ISREG, FILE), (stat.S_ISDIR, DIR), (stat.S_ISLNK, SYMLINK),
                       (stat.S_ISCHR, CHARDEV), (stat.S_ISBLK, BLOCKDEV), (stat.S_ISFIFO, FIFO)):
        if test(st_mode):
            return kind
    raise OciBuildError("a socket cannot be stored in a layer")


def usable_mode(kind: str, mode: int) -> int:
    """The bits left on disk without privilege: owner may read, write (and enter) it; never a
    set-id bit on a file the build user owns on the host."""
    if kind == DIR:
        return (mode & 0o1777) | 0o700
    return (mode & 0o777) | 0o600


class Ledger:
    def __init__(self, real: bool, records: Optional[Dict[str, Record]] = None) -> None:
        self.real = real
        self.records: Dict[str, Record] = dict(records or {})
        # A hard link made in a step has no record of its own: its inode's other path does.
        self._by_ino: Dict[int, Set[str]] = {}
        for path, r in self.records.items():
            self._by_ino.setdefault(r.ino, set()).add(path)

    def record(self, path: str, meta: Meta, st: os.stat_result) -> None:
        if not self.real:
            self.records[path] = Record(meta, st.st_ino, stat.S_IMODE(st.st_mode))
            self._by_ino.setdefault(st.st_ino, set()).add(path)

    def prune(self, live: Dict[str, int]) -> None:
        """Only records of paths the tree holds (`live`: path -> inode number now): a deleted
        path's record would otherwise still name its inode number, which the filesystem
        hands to the next file made, and `current` would give that file the old owner.
        What a walk never lists (the contents of dev/, proc/, sys/) is kept as it is."""
        from ocibuild.rootfs.paths import NOT_LISTED

        for path in [p for p, r in self.records.items() if live.get(p) != r.ino
                     and not ("/" in p and p.split("/", 1)[0] in NOT_LISTED)]:
            del self.records[path]
        self._by_ino = {}
        for path, r in self.records.items():
            self._by_ino.setdefault(r.ino, set()).add(path)

    def forget(self, path: str) -> None:
        """`path` and everything under it."""
        self.records.pop(path, None)
        prefix = path + "/"
        for other in [p for p in self.records if p.startswith(prefix)]:
            del self.records[other]

    def resolve(self, path: str, st: os.stat_result, full_path: str) -> Meta:
        """`path` (relative to the root) as the image records it; `st` its lstat now."""
        kind = disk_kind(st.st_mode)
        bits = stat.S_IMODE(st.st_mode)
        if self.real:
            device = (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in (CHARDEV, BLOCKDEV) \
                else (0, 0)
            return Meta(kind, bits, st.st_uid, st.st_gid, device, _disk_xattrs(full_path, kind))
        record = self.current(path, st)
        if record is None:
            return Meta(kind, bits)
        meta = record.meta
        if kind == FILE and meta.kind in SPECIAL and st.st_size == 0:
            kind = meta.kind
        elif kind != meta.kind:
            return Meta(kind, bits)
        mode = meta.mode if bits == record.disk_mode else bits
        return replace(meta, kind=kind, mode=mode)

    def adopt(self, root: str, uid: int, gid: int, fresh: Set[str] = frozenset()) -> None:
        """After a step: what it made and nothing recorded is `uid:gid`'s (the step's user),
        with the disk's mode, so a later step under another USER does not change its owner;
        and the disk is a usable stand-in again (`_restore_stand_in`).

        A set-group-id directory gives what is made in it its group (and a directory its
        set-gid bit), as the kernel does: on disk, without privilege, that directory has no
        set-gid bit to act on. `fresh`: paths recorded during the step for new inodes
        (fakeroot), whose group is the user's unless set otherwise, and a directory's mode
        the one asked for (so a `chmod g-s` on it in the same step is not seen)."""
        if self.real:
            return
        from ocibuild.rootfs.paths import walk

        seen: Dict[str, Tuple[os.stat_result, Meta]] = {}
        live: Dict[str, int] = {}
        for path, st in walk(root):
            live[path] = st.st_ino
            full = os.path.join(root, path)
            parent = seen.get(os.path.dirname(path))
            inherit = parent is not None and parent[1].kind == DIR and \
                parent[1].mode & stat.S_ISGID
            record = self.current(path, st, root)
            if record is not None and path not in self.records:
                # A new hard link: a record of its own, which outlives the other path's.
                self.records[path] = record
                self._by_ino.setdefault(st.st_ino, set()).add(path)
            if record is None:
                kind = disk_kind(st.st_mode)
                mode = stat.S_IMODE(st.st_mode)
                meta = Meta(kind, mode, uid, gid)
                if inherit:
                    meta = replace(meta, gid=parent[1].gid,
                                   mode=mode | stat.S_ISGID if kind == DIR else mode)
                self.record(path, meta, st)
            elif inherit and path in fresh and record.meta.gid == gid:
                # fakeroot's mkdir records the mode asked for; the kernel adds set-gid.
                mode = record.meta.mode | stat.S_ISGID if record.meta.kind == DIR \
                    else record.meta.mode
                self.record(path, replace(record.meta, gid=parent[1].gid, mode=mode), st)
            meta = self.resolve(path, st, full)
            if meta.kind != SYMLINK:
                self._restore_stand_in(full, st, meta)
            if stat.S_ISDIR(st.st_mode):
                seen[path] = (st, meta)
        self.prune(live)

    def _restore_stand_in(self, full: str, st: os.stat_result, meta: Meta) -> None:
        """Back to the usable, set-id-free bits on disk, the truth kept in the ledger: a step's
        `chmod 000` (read by no later snapshot) or `chmod u+s` by a static binary (a set-uid
        file of the build user's on the host) does not outlast the step on disk."""
        usable = usable_mode(disk_kind(st.st_mode), meta.mode)
        if stat.S_IMODE(st.st_mode) == usable:
            return
        os.chmod(full, usable)
        for path in self._by_ino.get(st.st_ino, set()):
            record = self.records.get(path)
            if record is not None and record.ino == st.st_ino:
                self.records[path] = Record(meta, st.st_ino, usable)

    def current(self, path: str, st: os.stat_result,
                root: Optional[str] = None) -> Optional[Record]:
        """`path`'s record; for a path not recorded, that of a hard link recorded under
        another path: one still linked (`st_nlink > 1`), or, given `root`, one whose other
        path the step removed (`ln /etc/shadow /a && rm /etc/shadow`: /a keeps its owner)."""
        record = self.records.get(path)
        if record is not None and record.ino == st.st_ino:
            return record
        for other_path in sorted(self._by_ino.get(st.st_ino, ())):
            other = self.records.get(other_path)
            if other is None or other.ino != st.st_ino or other_path == path:
                continue
            if st.st_nlink > 1 or (root is not None and _gone(root, other_path, st.st_ino)):
                return other
        return None

    def to_json(self) -> dict:
        rows: List[list] = []
        for path in sorted(self.records):
            r = self.records[path]
            m = r.meta
            rows.append([path, m.kind, m.mode, m.uid, m.gid, list(m.device),
                         [[k, base64.b64encode(v).decode()] for k, v in m.xattrs],
                         r.ino, r.disk_mode])
        return {"format": _FORMAT, "real": self.real, "records": rows}

    @classmethod
    def from_json(cls, data: dict) -> "Ledger":
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise OciBuildError(f"ledger: format {data.get('format') if isinstance(data, dict) else data!r} "
                                f"is not {_FORMAT}; unpack the base again")
        records = {}
        for path, kind, mode, uid, gid, device, xattrs, ino, disk_mode in data["records"]:
            meta = Meta(kind, mode, uid, gid, (device[0], device[1]),
                        tuple((k, base64.b64decode(v)) for k, v in xattrs))
            records[path] = Record(meta, ino, disk_mode)
        return cls(bool(data["real"]), records)


def _disk_xattrs(full_path: str, kind: str) -> Tuple[Tuple[str, bytes], ...]:
    if kind not in (FILE, DIR):
        return ()
    found = []
    for name in KEPT_XATTRS:
        try:
            found.append((name, os.getxattr(full_path, name, follow_symlinks=False)))
        except OSError:  # absent, or a filesystem without xattrs
            continue
    return tuple(found)


def _gone(root: str, path: str, ino: int) -> bool:
    """`path` no longer names inode `ino` in the tree (the step removed or replaced it)."""
    try:
        return os.lstat(os.path.join(root, path)).st_ino != ino
    except OSError:
        return True
