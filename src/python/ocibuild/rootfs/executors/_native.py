"""The system calls Python 3.9's os module lacks (unshare, mount), through libc, and the
mount-namespace set-up the root and userns mechanisms share."""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from typing import Sequence

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40

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


def read_only(target: str) -> None:
    """A bind mount made read-only: the remount keeps the source's other flags (a user
    namespace may only add restrictions, and this is one)."""
    _check(_libc.mount(None, target.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None),
           f"read-only {target}")


def make_private(path: str) -> None:
    _check(_libc.mount(None, path.encode(), None, MS_REC | MS_PRIVATE, None), "make private")


def write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def loopback_up() -> None:
    """A fresh network namespace has only `lo`, down: up it, as docker's --network=none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS,
                    struct.pack("16sH22x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING))


def bind_host_mounts(root: str) -> None:
    """The host's /dev, /proc and /sys where the image has those directories, as Docker
    mounts its own there. Best effort: a kernel or profile refusing one leaves it empty.
    /sys of the host's network namespace is still the host's: harmless for a build."""
    for name in ("dev", "proc", "sys"):
        target = os.path.join(root, name)
        if os.path.isdir(target) and not os.path.islink(target):
            try:
                bind("/" + name, target)
            except OSError:
                continue


def bind_step_mounts(root: str, mounts: Sequence) -> None:
    """RUN --mount's sources at their targets (step.py made each target, no symlink on the
    way), read-only where asked: enforced by the kernel here."""
    for m in mounts:
        target = os.path.join(root, m.target.lstrip("/"))
        bind(m.source, target)
        if m.readonly:
            read_only(target)


def fail(what: str, err: OSError) -> None:
    """Between fork and exec an exception loses its text (subprocess reports only "Exception
    occurred in preexec_fn"): say it on the step's stderr first."""
    os.write(2, f"ocibuild: {what}: {os.strerror(err.errno or 0)}\n".encode())
    raise err
