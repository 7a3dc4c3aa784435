"""One pass over a layer's tar stream: diff_id, compression, digest and size together.

    tar bytes -> sha256 (diff_id) -> compressor -> sha256 + count (digest, size) -> file

Nothing is buffered beyond a few compression blocks, so memory stays constant whatever the
layer's size. Both compressors use every core and are set up so their bytes depend on the
input alone, not on the number of threads: gzip is `pgzip` (fixed 1 MiB blocks, no clock, no
file name in the header; libdeflate by default, so the bytes do not depend on the machine
either, or the system zlib when asked for with engine "zlib"); zstd's multi-threaded mode
cuts fixed 4 MiB jobs, whatever the thread count, and runs without a content-size field
(unknown while streaming anyway) and with a fixed checksum setting. The compressed bytes also depend on the libdeflate, zlib and libzstd builds
(deflate and zstandard are pinned in the tool's lockfile; `compressor_version()` names all
three, and the layer rule puts it in each layer process's cache key); the diff_id, which the
config records, depends on none of them.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Deque, Optional, Union

from ocibuild import mediatypes
from ocibuild.digest import HashingWriter
from ocibuild.errors import OciBuildError
from ocibuild.layer import libdeflate
from ocibuild.layer.pgzip import ENGINES, LEVELS, LIBDEFLATE, ParallelGzipWriter

GZIP, ZSTD, NONE = "gzip", "zstd", "none"
COMPRESSIONS = (GZIP, ZSTD, NONE)
MEDIA_TYPES = {GZIP: mediatypes.OCI_LAYER_GZIP, ZSTD: mediatypes.OCI_LAYER_ZSTD,
               NONE: mediatypes.OCI_LAYER}
# gzip 4 (libdeflate's scale, 0-12): 2% smaller than `pigz -4` and umoci's layers in half
# zlib's CPU; libdeflate 6 is smaller than `pigz -6` in a third of its CPU
# (docs/performance.md). With the zlib engine, 4 is zlib's. zstd 3 is zstd's default (and
# what containerd and buildkit use).
DEFAULT_LEVEL = {GZIP: 4, ZSTD: 3}
ZSTD_JOB = 4 << 20


def compressor_version() -> str:
    """What decides the compressed bytes besides the input: for cache keys."""
    try:
        import zstandard

        version = ".".join(str(n) for n in getattr(zstandard, "ZSTD_VERSION", ()))
        zstd = (f"zstd {version or '?'} (zstandard {zstandard.__version__}), jobs of "
                f"{ZSTD_JOB >> 20} MiB")
    except ImportError:
        zstd = "zstd unavailable"
    try:
        gzip = libdeflate.version()
    except OciBuildError:
        gzip = "deflate unavailable"
    return f"pgzip 3 {gzip}, zlib {zlib.ZLIB_RUNTIME_VERSION}; {zstd}"


_LEVELS = {ZSTD: range(1, 23)}


def check_engine(engine: object) -> str:
    if engine is None:
        return LIBDEFLATE
    if engine not in ENGINES:
        raise OciBuildError(f"gzip engine {engine!r}: must be libdeflate (the default: the same "
                            'bytes on every machine) or zlib (the system zlib), e.g. "zlib"')
    return str(engine)


def check_compression(name: object) -> str:
    if name not in COMPRESSIONS:
        raise OciBuildError(f'compression {name!r}: must be gzip, zstd or none, e.g. "gzip"')
    return str(name)


def check_level(compression: str, level: Optional[int],
                engine: str = LIBDEFLATE) -> Optional[int]:
    """The level to use: the default when None; an error when out of range for `compression`."""
    if level is None:
        return DEFAULT_LEVEL.get(compression)
    if compression == NONE:
        raise OciBuildError(f"compression level {level!r}: 'none' takes no level; "
                            "drop the level or use gzip or zstd")
    allowed = LEVELS[engine] if compression == GZIP else _LEVELS[compression]
    if isinstance(level, bool) or not isinstance(level, int) or level not in allowed:
        which = f"gzip ({engine})" if compression == GZIP else compression
        raise OciBuildError(
            f"compression level {level!r}: {which} takes {allowed.start} to "
            f"{allowed.stop - 1}, e.g. {DEFAULT_LEVEL[compression]}"
        )
    return level


def _zstd_writer(sink: HashingWriter, level: int, threads: Optional[int]):
    try:
        import zstandard  # imported only when asked for: gzip layers need no dependency
    except ImportError:
        raise OciBuildError("compression 'zstd' needs the Python package zstandard; install "
                            "it or use gzip") from None
    # threads=-1: one worker per core. The job size is fixed (never derived from the thread
    # count), so the frame is the same for any number of threads. 4 MiB rather than level 3's
    # default of 4 windows (8 MiB): each worker holds about two jobs, and a 1 GiB layer then
    # stays under 100 MB of RSS, for 1% more bytes and no loss of speed (docs/performance.md).
    params = zstandard.ZstdCompressionParameters.from_level(
        level, threads=threads or -1, job_size=ZSTD_JOB, write_checksum=False,
        write_content_size=False)
    compressor = zstandard.ZstdCompressor(compression_params=params)
    return compressor.stream_writer(sink, closefd=False)


class _HashAhead:
    """Passes writes on to `sink` while counting them and hashing them on a thread of its own
    (hashlib drops the GIL), so the diff_id's SHA-256 runs beside the tar writer instead of
    between its reads. Small writes are gathered first; at most 4 chunks wait for the hash."""

    _GATHER = 256 << 10

    def __init__(self, sink: Optional[BinaryIO]) -> None:
        self._sink = sink
        self._sha = hashlib.sha256()
        self._small = bytearray()
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: Deque[Future] = deque()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if len(data) < self._GATHER or self._small:
            self._small += data
            if len(self._small) >= self._GATHER:
                self._hash_small()
        else:
            self._hash(data if isinstance(data, bytes) else bytes(data))
        if self._sink is not None:
            self._sink.write(data)
        return len(data)

    def write_chunk(self, chunk: memoryview) -> None:
        """A write whose buffer the caller hands over (never to change it again): it is
        hashed where it is, not copied first."""
        self._hash_small()
        self.size += len(chunk)
        self._hash(chunk)
        if self._sink is not None:
            self._sink.write(chunk)

    def _hash_small(self) -> None:
        """Hash the gathered small writes, if any (before anything written after them)."""
        if self._small:
            self._hash(bytes(self._small))
            self._small.clear()

    def _hash(self, chunk: Union[bytes, memoryview]) -> None:
        self._pending.append(self._pool.submit(self._sha.update, chunk))
        while len(self._pending) > 4:
            self._pending.popleft().result()

    def detach(self) -> None:
        self._sink = None

    def finish(self) -> None:
        self._hash_small()
        while self._pending:
            self._pending.popleft().result()
        self._pool.shutdown(wait=True)

    @property
    def digest(self) -> str:
        self.finish()
        return "sha256:" + self._sha.hexdigest()


class LayerWriter:
    """A file-like sink for tar bytes; after `close()`, read diff_id, digest and size."""

    def __init__(self, out: BinaryIO, compression: str = GZIP, level: Optional[int] = None,
                 threads: Optional[int] = None, engine: Optional[str] = None):
        self.compression = check_compression(compression)
        self.media_type = MEDIA_TYPES[self.compression]
        engine = check_engine(engine)
        if engine != LIBDEFLATE and self.compression != GZIP:
            raise OciBuildError(f"gzip engine {engine!r}: only for gzip layers, not "
                                f"{self.compression}; drop the engine")
        level = check_level(self.compression, level, engine)
        self._compressed: Union[HashingWriter, _HashAhead]
        if self.compression == NONE:  # one stream: hash it once, for diff_id and digest alike
            self._compressed = self._sink = self._uncompressed = _HashAhead(out)
            return
        self._compressed = HashingWriter(out)
        if self.compression == GZIP:
            self._sink = ParallelGzipWriter(self._compressed, level, threads, engine)
        else:
            self._sink = _zstd_writer(self._compressed, level, threads)
        self._uncompressed = _HashAhead(self._sink)

    def write(self, data: bytes) -> int:
        return self._uncompressed.write(data)

    def write_chunk(self, chunk: memoryview) -> None:
        """`write` of a buffer the caller will not change again (the tar writer's chunks)."""
        self._uncompressed.write_chunk(chunk)

    def flush(self) -> None:
        """A no-op: flushing a compressor mid-stream would change its output."""

    def close(self) -> None:
        self._uncompressed.finish()
        if self._sink is not self._compressed:
            self._sink.close()

    def abort(self) -> None:
        """After a failure: finish the compressor into nothing. Left to the garbage collector,
        a gzip stream would write its trailer to the already closed output (Python >= 3.12)."""
        self._compressed.detach()
        self._uncompressed.finish()
        if isinstance(self._sink, ParallelGzipWriter):
            self._sink.abort()
        else:
            self.close()

    @property
    def diff_id(self) -> str:
        return self._uncompressed.digest

    @property
    def digest(self) -> str:
        return self._compressed.digest

    @property
    def size(self) -> int:
        return self._compressed.size
