"""A directory's birth time (statx), to tell "deleted and made again" from "kept".

The inode number alone cannot tell: ext4 and others hand a freed inode to the next file made,
so `rm -rf d && mkdir d` usually gives d its old number back. Python before 3.12 has no
statx, hence ctypes. 0 when the kernel, libc or filesystem cannot say; the diff then falls
back to the inode, and at worst writes a whiteout per deleted child instead of an opaque
marker: the same tree either way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Optional

_AT_FDCWD = -100
_AT_SYMLINK_NOFOLLOW = 0x100
_STATX_BTIME = 0x800
_BTIME_OFFSET = 80  # struct statx: stx_btime {s64 tv_sec; u32 tv_nsec; s32 reserved}
_libc: Optional[ctypes.CDLL] = None
_missing = False


def _statx():
    global _libc, _missing
    if _libc is None and not _missing:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            _libc.statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                                    ctypes.c_void_p]
        except (OSError, AttributeError):  # not glibc >= 2.28
            _missing = True
    return None if _missing else _libc.statx


def birth_ns(path: str) -> int:
    statx = _statx()
    if statx is None:
        return 0
    buf = ctypes.create_string_buffer(256)
    if statx(_AT_FDCWD, os.fsencode(path), _AT_SYMLINK_NOFOLLOW, _STATX_BTIME, buf) != 0:
        return 0
    mask = int.from_bytes(buf.raw[0:4], "little")
    if not mask & _STATX_BTIME:
        return 0
    sec = int.from_bytes(buf.raw[_BTIME_OFFSET:_BTIME_OFFSET + 8], "little", signed=True)
    nsec = int.from_bytes(buf.raw[_BTIME_OFFSET + 8:_BTIME_OFFSET + 12], "little")
    return sec * 1_000_000_000 + nsec
