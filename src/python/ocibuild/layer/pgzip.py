"""Deterministic parallel gzip: the same bytes on 1 core or 64, in constant memory.

The input is cut into fixed 1 MiB blocks, each compressed on its own on a thread pool (both
engines release the GIL). Block boundaries depend on the input alone, never on the number of
threads, so neither do the bytes. At most `2 * threads + 1` blocks are held at a time.

Two engines:

* `libdeflate` (the default; see `ocibuild.layer.libdeflate`): each block becomes a complete
  gzip member (header with no name and mtime 0, deflate data, CRC-32, size), and the layer is
  the members one after another, which RFC 1952 allows and every gzip reader reads as one
  stream (Go's compress/gzip as used by containerd, docker, podman, skopeo and umoci; Python's
  gzip; GNU gzip; pigz). 18 bytes of framing per MiB. Same bytes on every machine.
* `zlib` (the Python's own zlib): each block is deflated with the 32 KiB of input before it
  as the preset dictionary, as pigz does; a block ends with a sync flush (byte-aligned, not
  final), the last with the final flush, and the raw deflate streams are concatenated into
  one gzip member. Its bytes depend on the zlib build (zlib, zlib-ng, Apple's) and CPU.

A block that does not compress (zipped wheels in a PEX's `.deps/`, jars, images, random
data) is stored, as zstd does with its raw blocks: deflating it would cost as much CPU as
text for less than 1% of its size. The test looks at the block alone: eight 4 KiB samples
spread over it, deflated at level 1 together by the block's own engine (so the decision, too,
is the same on every machine for libdeflate); if they shrink by less than 1%, the block is
written as stored deflate blocks (level 0). Blocks of mixed content compress as usual; one
whose compressible part all samples miss is stored, which costs at most that part's saving.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Callable, Deque, Optional

from ocibuild.layer import libdeflate

BLOCK = 1 << 20
WINDOW = 32 << 10
# ID1 ID2, deflate, no flags, mtime 0, no extra flags, OS "unknown" (what Python's gzip writes).
_HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"


LIBDEFLATE, ZLIB = "libdeflate", "zlib"
ENGINES = (LIBDEFLATE, ZLIB)
LEVELS = {LIBDEFLATE: libdeflate.LEVELS, ZLIB: range(0, 10)}

_SAMPLES, _SAMPLE = 8, 4 << 10
_STORE_ABOVE = 0.99  # samples' deflated/original ratio from which a block is stored


def _samples(data: bytes) -> Optional[bytes]:
    if len(data) < _SAMPLES * _SAMPLE * 2:
        return None
    step = len(data) // _SAMPLES
    return b"".join(data[i * step:i * step + _SAMPLE] for i in range(_SAMPLES))


def _incompressible(data: bytes) -> bool:
    samples = _samples(data)
    return samples is not None and len(zlib.compress(samples, 1)) >= _STORE_ABOVE * len(samples)


def _member_maker(level: int) -> Callable[[bytes], bytes]:
    """libdeflate: a block -> one gzip member; stored when the block does not compress."""
    compress, sample, store = (libdeflate.gzip_compressor(level), libdeflate.gzip_compressor(1),
                               libdeflate.gzip_compressor(0))

    def member(data: bytes) -> bytes:
        samples = _samples(data) if level else None
        # 18 bytes of gzip framing on 32 KiB of samples: 0.05%, well inside the 1% margin.
        if samples is not None and len(sample(samples)) >= _STORE_ABOVE * len(samples):
            return store(data)
        return compress(data)

    return member


def _deflate(data: bytes, dictionary: bytes, level: int, last: bool) -> bytes:
    if level and _incompressible(data):
        level = 0
    if dictionary and level:
        c = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY,
                             dictionary)
    else:
        c = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY)
    return c.compress(data) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


class ParallelGzipWriter:
    """A write-only file: gzip of everything written, to `out`, after `close()`."""

    def __init__(self, out: BinaryIO, level: int = 4, threads: Optional[int] = None,
                 engine: str = LIBDEFLATE) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}")
        self._out = out
        self._level = level
        self._member = _member_maker(level) if engine == LIBDEFLATE else None
        self._threads = threads or default_threads()
        self._pool = ThreadPoolExecutor(max_workers=self._threads) if self._threads > 1 else None
        self._pending: Deque[Future] = deque()
        self._buffer = bytearray()
        self._previous_tail = b""
        self._crc = 0
        self._size = 0
        self._closed = False
        if self._member is None:
            out.write(_HEADER)

    def write(self, data: bytes) -> int:
        if self._member is None:  # libdeflate's members carry their own CRC and size
            self._crc = zlib.crc32(data, self._crc)
            self._size += len(data)
        self._buffer += data
        while len(self._buffer) > BLOCK:  # keep at least one byte back: the last block is final
            with memoryview(self._buffer) as view:
                block = view[:BLOCK].tobytes()  # one copy; deleting from the front is O(1)
            del self._buffer[:BLOCK]
            self._submit(block, last=False)
        return len(data)

    def _submit(self, block: bytes, last: bool) -> None:
        if self._member is not None:
            job, args = self._member, (block,)
        else:
            dictionary, self._previous_tail = self._previous_tail, block[-WINDOW:]
            job, args = _deflate, (block, dictionary, self._level, last)
        if self._pool is None:
            self._out.write(job(*args))
            return
        self._pending.append(self._pool.submit(job, *args))
        while len(self._pending) > 2 * self._threads:
            self._out.write(self._pending.popleft().result())

    def flush(self) -> None:
        """A no-op: a flush would add a block boundary that depends on the caller."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._submit(bytes(self._buffer), last=True)
            while self._pending:
                self._out.write(self._pending.popleft().result())
            if self._member is None:
                self._out.write(struct.pack("<II", self._crc & 0xFFFFFFFF,
                                            self._size & 0xFFFFFFFF))
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop without writing anything more."""
        self._closed = True
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
