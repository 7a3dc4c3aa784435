"""A base image's layers unpacked by a child process while the build goes on, for a stage
whose RUN steps are certain to run.

Why: a cold build pulls the base, models it (every header of every layer, ocibuild.dockerfile
.fstree), builds the COPY layers before the first RUN, and only then needs the base on disk
for that RUN: bench/dockerfile_bench.py (b)'s Debian base is 0.4 s of modelling and 0.8 s of
unpacking, one after the other on one CPU. A forked child unpacks while the parent models;
a thread would not do (the unpacker's thousands of short system calls would each wait for
the modelling thread to give up the interpreter lock).

The child is a fork running `ocibuild.rootfs.unpack` and nothing else: same code, same
bounds, same ledger, which it hands back as JSON (`Ledger.to_json`: data, never a pickle)
in a file beside the tree. Whatever goes wrong in the
child (a damaged layer, a full disk, a kill) is not reported from there: `take` gives None,
and the caller unpacks in-process as without this module, so the error, if any, is the one
that unpacking reports. The child dies with its parent (PR_SET_PDEATHSIG) and `cancel` kills
and removes what it did, so a build that fails or never runs a step leaves nothing running.
No fork while this process has other threads (bar cancelled timers, given 0.1 s to end): a
child of a threaded process may inherit a lock held by a thread that does not exist in it.
"""

from __future__ import annotations

import os
import json
import signal
import sys
import threading
from typing import List, Optional, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.ledger import Ledger
from ocibuild.rootfs.paths import remove_tree

Blobs = List[Tuple[str, str]]  # (blob path, media type), lowest layer first
PR_SET_PDEATHSIG = 1
TIMER_END_S = 0.1


class UnpackAhead:
    def __init__(self, layers: Blobs, root: str) -> None:
        self.layers, self.root = list(layers), root
        self._result = root + ".ledger"
        self.pid = 0
        self.taken = False
        if not _alone():
            return
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError:  # a pids or memory limit: the step's own unpack will do
            return
        if pid == 0:  # the child: never returns
            _child(self.layers, root, self._result, parent)
        self.pid = pid

    def take(self, layers: Blobs) -> Optional[Ledger]:
        """The ledger of `root` holding exactly `layers`, once the child is done; None (and
        nothing left on disk) when it was not started, failed, or unpacked other layers."""
        if not self.pid or list(layers) != self.layers:
            self.cancel()
            return None
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): no status
            status = -1
        self.pid = 0
        try:
            if status != 0:
                raise ValueError("the child failed")
            with open(self._result, "rb") as f:
                ledger = Ledger.from_json(json.load(f))
            os.unlink(self._result)
        except (OSError, ValueError, KeyError, TypeError, OciBuildError):
            self.cancel()
            return None
        self.taken = True
        return ledger

    def cancel(self) -> None:
        """Unless taken: the child killed, what it made removed."""
        if self.taken:
            return
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0
        for path in (self._result, self._result + ".tmp"):
            try:
                os.unlink(path)
            except OSError:
                pass  # never made (or gone): nothing of it is read
        if os.path.lexists(self.root):
            remove_tree(self.root)  # a kill can come between a mkdir and its chmod


def _alone() -> bool:
    """No other thread runs: a cancelled timer (the registry client's deadline watchdogs,
    ocibuild.registry.deadline) is given a moment to end."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer) and thread.finished.is_set():
            thread.join(TIMER_END_S)
    return threading.active_count() == 1


def _child(layers: Blobs, root: str, result: str, parent: int) -> None:
    code = 1
    try:
        _die_with_parent(parent)
        from ocibuild.rootfs.unpack import unpack

        ledger = unpack(layers, root)
        with open(result + ".tmp", "w") as f:
            json.dump(ledger.to_json(), f)
        os.rename(result + ".tmp", result)
        code = 0
    except BaseException:  # noqa: B036 - reported by the parent's own unpack, if at all
        pass
    finally:
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (ImportError, OSError, AttributeError):  # no ctypes, or no prctl:
        pass  # cancel() still kills it; only a parent killed hard leaves it running
    if os.getppid() != parent:
        os._exit(1)  # the parent died before prctl took
