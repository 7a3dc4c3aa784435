"""Start the command, wait with a deadline, and kill its whole process group on timeout."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Callable, Dict, Optional, Sequence

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.executors import Step


def spawn(step: Step, argv: Sequence[str], env: Dict[str, str],
          preexec: Optional[Callable[[], None]] = None, cwd: Optional[str] = None) -> int:
    try:
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=step.stdout, stderr=step.stderr, preexec_fn=preexec,
                                start_new_session=True, close_fds=True)
    except (OSError, subprocess.SubprocessError) as err:
        raise OciBuildError(f"cannot start the RUN step {list(step.argv)!r}: {err}") from None
    try:
        return proc.wait(timeout=step.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise OciBuildError(f"the RUN step {list(step.argv)!r} ran longer than "
                            f"{step.timeout} s and was stopped") from None
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
