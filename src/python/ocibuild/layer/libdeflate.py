"""gzip members from libdeflate, the copy bundled in the `deflate` wheel that the lockfile pins.

Why libdeflate: its bytes are a function of (input, level, libdeflate version) only. Its
compressor has no run-time CPU dispatch (in 1.24 only CRC-32, Adler-32 and the decompressor
pick SIMD code by CPU, and a CRC is the same number on any path), no threads, no clock; so
a layer has the same digest on every machine, unlike gzip from the system zlib (distros ship
zlib or zlib-ng, whose output also differs between x86-64 and aarch64). It is also the
fastest at a given size here (docs/performance.md). It has no preset dictionary, so each
block becomes a gzip member of its own.

The wheel's Python API holds the GIL while compressing (deflate 0.8.1, the last release for
Python 3.9), which would serialize pgzip's threads. Its extension module exports libdeflate's
C API, though, so this calls it through ctypes, which drops the GIL around each call, and
keeps one compressor per thread and level. Where the symbols cannot be found it falls back
to `deflate.gzip_compress`: the same library, so the same bytes, only without parallelism.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Callable, Dict, Optional

from ocibuild.errors import OciBuildError

LEVELS = range(0, 13)  # libdeflate's: 0 stores, 12 is its slowest


def _load():
    try:
        import deflate
    except ImportError:
        raise OciBuildError("gzip layers need the Python package deflate (libdeflate), which "
                            "the ocibuild lockfile pins; install deflate==0.8.1, or choose the "
                            'system zlib with "gzip_engine": "zlib"') from None
    return deflate


def version() -> str:
    # The module's own attribute, not importlib.metadata: every layer process asks, and
    # importing importlib.metadata costs it ~20 ms.
    return f"deflate {getattr(_load(), '__version__', '?')}"


def _c_library() -> Optional[ctypes.CDLL]:
    deflate = _load()
    module = getattr(deflate, "_deflate", None)
    path = getattr(module, "__file__", None)
    if not path:
        return None
    try:
        lib = ctypes.CDLL(path)  # CDLL, not PyDLL: calls release the GIL
        lib.libdeflate_alloc_compressor.argtypes = [ctypes.c_int]
        lib.libdeflate_alloc_compressor.restype = ctypes.c_void_p
        lib.libdeflate_free_compressor.argtypes = [ctypes.c_void_p]
        lib.libdeflate_free_compressor.restype = None
        lib.libdeflate_gzip_compress_bound.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.libdeflate_gzip_compress_bound.restype = ctypes.c_size_t
        lib.libdeflate_gzip_compress.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                 ctypes.c_size_t, ctypes.c_void_p,
                                                 ctypes.c_size_t]
        lib.libdeflate_gzip_compress.restype = ctypes.c_size_t
    except (OSError, AttributeError):
        return None
    return lib


class _Compressor:
    """One libdeflate compressor (not thread-safe: one per thread), freed with this object."""

    def __init__(self, lib: ctypes.CDLL, level: int) -> None:
        self._lib = lib
        self._handle = lib.libdeflate_alloc_compressor(level)
        if not self._handle:
            raise MemoryError("libdeflate_alloc_compressor")

    def gzip(self, data: bytes) -> bytes:
        bound = self._lib.libdeflate_gzip_compress_bound(self._handle, len(data))
        out = ctypes.create_string_buffer(bound)
        size = self._lib.libdeflate_gzip_compress(self._handle, data, len(data), out, bound)
        if not size:  # only when `out` is too small, which the bound rules out
            raise RuntimeError("libdeflate_gzip_compress: output larger than its bound")
        return out.raw[:size]

    def __del__(self) -> None:
        if getattr(self, "_handle", None):
            self._lib.libdeflate_free_compressor(self._handle)
            self._handle = None


_lib_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_lib_loaded = False
_per_thread = threading.local()


def _library() -> Optional[ctypes.CDLL]:
    global _lib, _lib_loaded
    with _lib_lock:
        if not _lib_loaded:
            _lib, _lib_loaded = _c_library(), True
    return _lib


def gzip_compressor(level: int) -> Callable[[bytes], bytes]:
    """A function from bytes to one complete gzip member (mtime 0, no name, OS 'unknown')."""
    if level not in LEVELS:
        raise OciBuildError(f"libdeflate level {level!r}: must be 0 to 12")
    lib = _library()
    if lib is None:
        deflate = _load()
        return lambda data: bytes(deflate.gzip_compress(data, level))

    def compress(data: bytes) -> bytes:
        compressors: Dict[int, _Compressor] = getattr(_per_thread, "compressors", None) or {}
        if not compressors:
            _per_thread.compressors = compressors
        compressor = compressors.get(level)
        if compressor is None:
            compressor = compressors[level] = _Compressor(lib, level)
        return compressor.gzip(data)

    return compress


def uses_c_api() -> bool:
    """Whether compression runs without the GIL (for tests and benchmarks)."""
    return _library() is not None
