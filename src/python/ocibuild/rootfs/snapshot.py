"""What a RUN step's tree holds at one moment: every path's image metadata and a change stamp.

Taking one costs an lstat a path: a file counts as unchanged when its inode, size, mtime,
ctime and link count are all the same later (any write, chmod, chown, link or rename moves
ctime). The kernel's file clock is coarse (a few ms; a second or two on some filesystems),
so a file changed within the same tick as its last change could keep its stamp: like git's
"racily clean" index entries, such a file gets a content hash, compared later. Which files
those are, the filesystem's own clock says (`_clock`): a probe file's ctime, set after the
walk, is where the next change of any file lands at the earliest; a file whose ctime is
older cannot keep its stamp. The probe waits a few ticks for the clock to pass the newest
ctime of the tree (a tree just unpacked is all "now"), so usually nothing is hashed; on a
filesystem with a clock too coarse to wait for, the files of the current tick are.

Never followed: symlinks. Never listed: the contents of dev/, proc/ and sys/ (the executor
mounts or binds the host's there, and Docker never layers them either) and the executor's
own RUN_DIR. Names starting with ".wh." are refused: in a layer they would delete files.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.layer.entries import DIR, FILE, SYMLINK
from ocibuild.rootfs.birth import birth_ns
from ocibuild.rootfs.ledger import Ledger, Meta
from ocibuild.rootfs.paths import NOT_LISTED, RUN_DIR, WHITEOUT
from ocibuild.untrusted import os_reason

RACY_NS = 2_000_000_000  # the window assumed when the clock cannot be probed
SETTLE_S = 0.05  # how long to wait for the filesystem clock to move on
CLOCK_PROBE = RUN_DIR + ".clock"  # in the root, removed before the snapshot is returned
RACY_MAX_BYTES = 256 << 20  # hashing more to save writing it is not worth it


@dataclass(frozen=True)
class Node:
    meta: Meta
    ino: int
    size: int
    mtime: int  # whole seconds
    stamp: Tuple[int, int, int, int]  # mtime_ns, ctime_ns, size, nlink
    link_target: Optional[str] = None
    digest: Optional[str] = None  # racy files only
    birth_ns: int = 0  # directories only (birth.py)


@dataclass(frozen=True)
class Snapshot:
    nodes: Dict[str, Node]  # by relative image path; "" is not listed
    taken_ns: int


def content_digest(full_path: str) -> str:
    """The SHA-256 of a racy file; a file over RACY_MAX_BYTES (a step's `truncate -s 1T`)
    is not read: it gets a token no other digest equals, so it counts as changed. Opened
    without following a link nor waiting on a FIFO (the path was a regular file when listed)."""
    fd = os.open(full_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > RACY_MAX_BYTES:
            return f"unhashed:{time.time_ns()}"
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _utf8(path: str) -> None:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise OciBuildError(f"the RUN step left /{shown}, whose name is not valid UTF-8, which "
                            "a layer's tar headers need; rename or delete it in the step") from None


def _node(path: str, full: str, st: os.stat_result, ledger: Ledger) -> Node:
    meta = ledger.resolve(path, st, full)
    link = None
    if meta.kind == SYMLINK:
        link = os.readlink(full)
        _utf8(link)
    return Node(meta, st.st_ino, st.st_size if meta.kind == FILE else 0, int(st.st_mtime),
                (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_nlink), link, None,
                birth_ns(full) if meta.kind == DIR else 0)


def _clock(root: str, newest_ns: int) -> Optional[int]:
    """The ctime the filesystem of `root` gives a change now, waited for (up to SETTLE_S)
    to pass `newest_ns`; None when no probe can be written there."""
    probe = os.path.join(root, CLOCK_PROBE)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError:
        return None
    try:
        deadline = time.monotonic() + SETTLE_S
        while True:
            os.utime(fd)  # a change: ctime from the same clock as the step's changes
            now = os.fstat(fd).st_ctime_ns
            if now > newest_ns or time.monotonic() >= deadline:
                return now
            time.sleep(0.001)
    except OSError:
        return None
    finally:
        os.close(fd)
        try:
            os.unlink(probe)
        except FileNotFoundError:
            pass


def racy(nodes: Dict[str, Node], clock_ns: Optional[int], taken_ns: int) -> List[str]:
    """The files a change from now on could leave with the same stamp: changed at or after
    `clock_ns` (the filesystem's now), or within RACY_NS of `taken_ns` when it is unknown."""
    oldest = taken_ns - RACY_NS if clock_ns is None else clock_ns
    return [path for path, node in nodes.items()
            if node.meta.kind == FILE and node.stamp[1] >= oldest]


def snapshot(root: str, ledger: Ledger, *, before: bool = True) -> Snapshot:
    """`before`: the tree a step is about to change, racy files hashed; a snapshot only
    compared with an earlier one needs no hash (diff.py hashes lazily where stamps agree)."""
    taken_ns = time.time_ns()
    nodes: Dict[str, Node] = {}
    stack = [("", root)]
    try:
        while stack:
            prefix, directory = stack.pop()
            with os.scandir(directory) as listing:
                for item in listing:
                    path = prefix + item.name
                    if not prefix and item.name == RUN_DIR:
                        continue
                    _utf8(path)
                    if item.name.startswith(WHITEOUT):
                        raise OciBuildError(
                            f"the RUN step left /{path}: a name starting with '.wh.' is a "
                            "deletion marker in a layer; rename or delete it in the step")
                    st = item.stat(follow_symlinks=False)
                    if stat.S_ISSOCK(st.st_mode):
                        continue  # as Docker: a socket a step left is never layered
                    nodes[path] = _node(path, item.path, st, ledger)
                    if stat.S_ISDIR(st.st_mode) and not (not prefix and item.name in NOT_LISTED):
                        stack.append((path + "/", item.path))
    except OSError as err:
        where = err.filename if isinstance(err.filename, str) else root
        raise OciBuildError(f"cannot read the RUN step's tree at {where!r}: "
                            f"{os_reason(err)}") from None
    if before:
        newest = max((n.stamp[1] for n in nodes.values()), default=0)
        for path in racy(nodes, _clock(root, newest), taken_ns):
            nodes[path] = replace(nodes[path],
                                  digest=content_digest(os.path.join(root, path)))
    return Snapshot(nodes, taken_ns)
