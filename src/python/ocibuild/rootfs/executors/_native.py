"""The system calls Python 3.9's os module lacks (unshare, mount), through libc."""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def bind(source: str, target: str) -> None:
    _check(_libc.mount(source.encode(), target.encode(), None, MS_BIND | MS_REC, None),
           f"bind {source}")


def make_private(path: str) -> None:
    _check(_libc.mount(None, path.encode(), None, MS_REC | MS_PRIVATE, None), "make private")


def write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def bind_host_mounts(root: str) -> None:
    """The host's /dev, /proc and /sys where the image has those directories, as Docker
    mounts its own there. Best effort: a kernel or profile refusing one leaves it empty."""
    for name in ("dev", "proc", "sys"):
        target = os.path.join(root, name)
        if os.path.isdir(target) and not os.path.islink(target):
            try:
                bind("/" + name, target)
            except OSError:
                continue
