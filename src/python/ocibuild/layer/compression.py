"""One pass over a layer's tar stream: diff_id, compression, digest and size together.

    tar bytes -> sha256 (diff_id) -> compressor -> sha256 + count (digest, size) -> file

Nothing is buffered beyond a few compression blocks, so memory stays constant whatever the
layer's size. Both compressors use every core and are set up so their bytes depend on the
input alone, not on the number of threads: gzip is `pgzip` (fixed 1 MiB blocks, no clock, no
file name in the header); zstd's multi-threaded mode cuts jobs by size, not by thread count,
and runs without a content-size field (unknown while streaming anyway) and with a fixed
checksum setting. The compressed bytes also depend on the zlib and libzstd builds (zstandard
is pinned in the tool's lockfile; `compressor_version()` names both, and the layer rule puts
it in each layer process's cache key); the diff_id, which the config records, depends on
neither.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO, Optional

from ocibuild import mediatypes
from ocibuild.digest import HashingWriter
from ocibuild.errors import OciBuildError
from ocibuild.layer.pgzip import ParallelGzipWriter

GZIP, ZSTD, NONE = "gzip", "zstd", "none"
COMPRESSIONS = (GZIP, ZSTD, NONE)
MEDIA_TYPES = {GZIP: mediatypes.OCI_LAYER_GZIP, ZSTD: mediatypes.OCI_LAYER_ZSTD,
               NONE: mediatypes.OCI_LAYER}
# gzip 4: the ratio umoci's layers have (within 0.1%), at two thirds of level 6's time; level
# 6 saves ~4% more bytes for 1.5x the CPU (bench/peers_bench.py). zstd 3 is zstd's default
# (and what containerd and buildkit use).
DEFAULT_LEVEL = {GZIP: 4, ZSTD: 3}


def compressor_version() -> str:
    """What decides the compressed bytes besides the input: for cache keys."""
    try:
        import zstandard

        version = ".".join(str(n) for n in getattr(zstandard, "ZSTD_VERSION", ()))
        zstd = f"zstd {version or '?'} (zstandard {zstandard.__version__})"
    except ImportError:
        zstd = "zstd unavailable"
    return f"pgzip 2 zlib {zlib.ZLIB_RUNTIME_VERSION}; {zstd}"
_LEVELS = {GZIP: range(0, 10), ZSTD: range(1, 23)}


def check_compression(name: object) -> str:
    if name not in COMPRESSIONS:
        raise OciBuildError(f'compression {name!r}: must be gzip, zstd or none, e.g. "gzip"')
    return str(name)


def check_level(compression: str, level: Optional[int]) -> Optional[int]:
    """The level to use: the default when None; an error when out of range for `compression`."""
    if level is None:
        return DEFAULT_LEVEL.get(compression)
    if compression == NONE:
        raise OciBuildError(f"compression level {level!r}: 'none' takes no level; "
                            "drop the level or use gzip or zstd")
    allowed = _LEVELS[compression]
    if isinstance(level, bool) or not isinstance(level, int) or level not in allowed:
        raise OciBuildError(
            f"compression level {level!r}: {compression} takes {allowed.start} to "
            f"{allowed.stop - 1}, e.g. {DEFAULT_LEVEL[compression]}"
        )
    return level


def _zstd_writer(sink: HashingWriter, level: int, threads: Optional[int]):
    try:
        import zstandard  # imported only when asked for: gzip layers need no dependency
    except ImportError:
        raise OciBuildError("compression 'zstd' needs the Python package zstandard; install "
                            "it or use gzip") from None
    # threads=-1: one worker per core; zstd's job size depends on the level, never on the
    # thread count, so the frame is the same for any number of threads.
    compressor = zstandard.ZstdCompressor(level=level, threads=threads or -1, write_checksum=False,
                                          write_content_size=False)
    return compressor.stream_writer(sink, closefd=False)


class LayerWriter:
    """A file-like sink for tar bytes; after `close()`, read diff_id, digest and size."""

    def __init__(self, out: BinaryIO, compression: str = GZIP, level: Optional[int] = None,
                 threads: Optional[int] = None):
        self.compression = check_compression(compression)
        self.media_type = MEDIA_TYPES[self.compression]
        level = check_level(self.compression, level)
        self._compressed = HashingWriter(out)
        if self.compression == GZIP:
            self._sink = ParallelGzipWriter(self._compressed, level, threads)
        elif self.compression == ZSTD:
            self._sink = _zstd_writer(self._compressed, level, threads)
        else:
            self._sink = self._compressed
        self._uncompressed = HashingWriter(self._sink)

    def write(self, data: bytes) -> int:
        return self._uncompressed.write(data)

    def flush(self) -> None:
        """A no-op: flushing a compressor mid-stream would change its output."""

    def close(self) -> None:
        if self._sink is not self._compressed:
            self._sink.close()

    def abort(self) -> None:
        """After a failure: finish the compressor into nothing. Left to the garbage collector,
        a gzip stream would write its trailer to the already closed output (Python >= 3.12)."""
        self._compressed.detach()
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
