"""Start the command, wait with a deadline, and leave no process of it behind: on exit, on
timeout, on any error (reaper.py says why and how)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable, Dict, FrozenSet, Optional, Sequence, Set

from ocibuild.errors import OciBuildError
from ocibuild.rootfs import reaper
from ocibuild.rootfs.executors import Step


def spawn(step: Step, argv: Sequence[str], env: Dict[str, str],
          preexec: Optional[Callable[[], None]] = None, cwd: Optional[str] = None,
          traced: bool = False) -> int:
    """`traced`: argv is proot, whose first child is the step's command."""
    _passable(step, argv, env)
    if step.cpus is not None:
        preexec = _on_cpus(step.cpus, preexec)
    before = reaper.descendants(os.getpid())
    reaper.subreaper(True)
    try:
        try:
            proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=step.stdout, stderr=step.stderr, preexec_fn=preexec,
                                    start_new_session=True, close_fds=True)
        except (OSError, subprocess.SubprocessError) as err:
            raise OciBuildError(f"cannot start the RUN step {list(step.argv)!r}: {err}") from None
        try:
            return _wait(proc, step, traced, before)
        except BaseException:
            _kill(proc)
            raise
        finally:
            reaper.stop_all(before)
    finally:
        reaper.subreaper(False)


def _on_cpus(cpus: FrozenSet[int], then: Optional[Callable[[], None]]) -> Callable[[], None]:
    """Set in the child before anything else, so proot, the command and all they start
    inherit it."""
    def pin() -> None:
        os.sched_setaffinity(0, cpus)
        if then is not None:
            then()
    return pin


def _passable(step: Step, argv: Sequence[str], env: Dict[str, str]) -> None:
    """What no process can be given (a base config's Env or Shell may hold a NUL, JSON
    allows it) is one error, not the ValueError exec's wrapper raises."""
    for word in argv:
        if "\0" in word:
            raise OciBuildError(f"the RUN step {list(step.argv)!r}: its command holds a NUL "
                                "byte, which no program can be given; fix the SHELL or the "
                                "command (or the base image's Shell)")
    for key, value in env.items():
        if "\0" in key or "\0" in value or "=" in key:
            raise OciBuildError(f"the RUN step {list(step.argv)!r}: the environment variable "
                                f"{key!r} holds a NUL byte or its name an '=', which no "
                                "program can be given; fix the ENV (or the base image's Env)")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.kill()
    proc.wait()


def _wait(proc: subprocess.Popen, step: Step, traced: bool, before: Set[int]) -> int:
    end = None if step.timeout is None else time.monotonic() + step.timeout
    command = reaper.ProotCommand(proc.pid, before)
    while True:
        left = None if end is None else end - time.monotonic()
        if left is not None and left <= 0:
            raise OciBuildError(f"the RUN step {list(step.argv)!r} ran longer than "
                                f"{step.timeout} s and was stopped") from None
        if not traced:
            try:
                return proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                continue
        try:
            return proc.wait(timeout=0.01 if left is None else min(0.01, left))
        except subprocess.TimeoutExpired:
            pass
        if command.done():
            # The command is done: proot waits for what it left, so that goes first.
            reaper.stop_all(before | {proc.pid})
            try:
                return proc.wait(timeout=reaper.STOP_SECONDS)
            except subprocess.TimeoutExpired:
                raise OciBuildError("proot did not exit after the RUN step's command "
                                    "did") from None
