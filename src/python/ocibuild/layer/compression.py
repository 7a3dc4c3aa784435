"""One pass over a layer's tar stream: diff_id, compression, digest and size together.

    tar bytes -> sha256 (diff_id) -> compressor -> sha256 + count (digest, size) -> file

Memory stays constant whatever the layer's size.
"""

from __future__ import annotations

import gzip
from typing import BinaryIO

from ocibuild import mediatypes
from ocibuild.digest import HashingWriter
from ocibuild.errors import OciBuildError

GZIP, ZSTD, NONE = "gzip", "zstd", "none"
MEDIA_TYPES = {GZIP: mediatypes.OCI_LAYER_GZIP, ZSTD: mediatypes.OCI_LAYER_ZSTD,
               NONE: mediatypes.OCI_LAYER}
DEFAULT_LEVEL = {GZIP: 6, ZSTD: 3, NONE: 0}


def check_compression(name: str) -> str:
    if name not in MEDIA_TYPES:
        raise OciBuildError(f"compression {name!r} must be one of gzip, zstd or none")
    return name


class LayerWriter:
    """A file-like sink for tar bytes; `close()` then read diff_id, digest and size."""

    def __init__(self, out: BinaryIO, compression: str = GZIP, level: int | None = None):
        self.compression = check_compression(compression)
        self.media_type = MEDIA_TYPES[compression]
        self._compressed = HashingWriter(out)
        level = DEFAULT_LEVEL[compression] if level is None else level
        if compression == GZIP:
            # mtime=0 and an empty file name: the gzip header must not carry the clock or paths.
            self._sink = gzip.GzipFile(filename="", mode="wb", fileobj=self._compressed,
                                       compresslevel=level, mtime=0)
        elif compression == ZSTD:
            import zstandard  # only needed for zstd layers

            # Content size and checksum off: same bytes whether or not the size is known up front.
            compressor = zstandard.ZstdCompressor(level=level, write_content_size=False,
                                                  write_checksum=False)
            self._sink = compressor.stream_writer(self._compressed, closefd=False)
        else:
            self._sink = self._compressed
        self._uncompressed = HashingWriter(self._sink)

    def write(self, data: bytes) -> int:
        return self._uncompressed.write(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._sink is not self._compressed:
            self._sink.close()

    @property
    def diff_id(self) -> str:
        return self._uncompressed.digest

    @property
    def digest(self) -> str:
        return self._compressed.digest

    @property
    def size(self) -> int:
        return self._compressed.size
