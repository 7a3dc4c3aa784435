"""No process of a RUN step outlives it.

A step's command may leave processes behind (`daemon &`, `setsid sh -c ... &`, a double
fork). Still running while the build snapshots the tree, diffs it, and applies the next COPY
layers to it, such a process could swap a checked directory for a symlink to a host path
between our check and our write, keep a file growing while we hash it, or make the build wait
forever (proot waits for every process it traces). So, while a step runs, this process is a
child subreaper (prctl PR_SET_CHILD_SUBREAPER): every orphan of the step becomes our child
rather than init's, wherever it moved (new session, new process group). When the step's
command has exited, every descendant is killed (SIGKILL, repeated until none is left, as
their own children come back to us) and reaped, before anything reads the tree.

Under proot the command is proot's first child; proot returns its exit status once every
other traced process is gone, so those are killed first and proot is left to exit.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import Dict, Iterable, Set

from ocibuild.errors import OciBuildError

PR_SET_CHILD_SUBREAPER = 36
STOP_SECONDS = 10.0
QUIET_READINGS = 3
_libc = ctypes.CDLL(None, use_errno=True)


def subreaper(on: bool) -> None:
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OciBuildError(f"cannot keep track of the RUN step's processes "
                            f"(prctl PR_SET_CHILD_SUBREAPER: {os.strerror(err)})")


def _parents() -> Dict[int, int]:
    """pid -> parent pid of every process this one can see."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            found[int(name)] = int(fields[1])
    return found


def descendants(pid: int) -> Set[int]:
    parents = _parents()
    children: Dict[int, Set[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, set()).add(child)
    out: Set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] != b"Z"


def _reap(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue  # not ours (yet): a descendant of a process still dying


def stop_all(keep: Iterable[int] = (), deadline: float = STOP_SECONDS) -> None:
    """Kill every descendant of this process but `keep` (those alive before the step), until
    none is left."""
    me, spare = os.getpid(), set(keep)
    end = time.monotonic() + deadline
    quiet = 0
    while True:
        left = descendants(me) - spare
        if not left:
            # /proc is read one process at a time: one whose parent exited during the read
            # is missed (its parent's entry gone), and comes back to us a moment later. So
            # only a few empty readings in a row mean none is left.
            quiet += 1
            if quiet >= QUIET_READINGS:
                return
            time.sleep(0.002)
            continue
        quiet = 0
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        _reap(left)
        if time.monotonic() > end:
            raise OciBuildError(f"the RUN step left {len(left)} processes that could not be "
                                f"stopped within {deadline:.0f} s; the tree is not read")
        time.sleep(0.005)


def children(pid: int) -> Set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(c) for c in f.read().split()}
    except OSError:  # a kernel without CONFIG_PROC_CHILDREN
        return {c for c, p in _parents().items() if p == pid}


class ProotCommand:
    """Tells when the step's command, proot's only child (orphans come to us, the
    subreaper), has exited, cheaply enough to ask every few milliseconds."""

    def __init__(self, proot: int, keep: Set[int]) -> None:
        self.proot, self.keep, self.leader = proot, keep, 0

    def done(self) -> bool:
        if not self.leader:
            kids = sorted(children(self.proot))
            if kids:
                self.leader = kids[0]
            else:  # not started yet, or already gone: then something else of it runs
                return bool(descendants(os.getpid()) - self.keep - {self.proot})
        return not alive(self.leader)
