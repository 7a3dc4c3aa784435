"""Read a possibly compressed untrusted input, bounded: never more out than the input allows.

A 6 KiB bzip2 file can hold a terabyte of zeros. So what comes out of a decompressor is
counted as it comes, and is limited to `max_ratio` times the compressed size (after a small
`slack`, so tiny inputs with long runs of tar padding pass) and to `max_total` in any case; an
uncompressed input is limited to its own size. A caller that knows how much is coming (a tar
member's header gives its size, PAX overrides included) `declare`s it first, so an input that
would pass the bound is refused before a byte of it is written; between declarations only
`BETWEEN` bytes may pass (tar headers, padding), so a 10 GB PAX header is refused too, not
read into memory by tarfile.

    with open(path, "rb") as raw, open_decompressed(raw, where, os.path.getsize(path)) as f:
        with open_stream(f) as tar:  # ocibuild.layer.tarinfo
            for member in tar:
                f.declare(member.size, f"{where}: {member.name!r}")
                ...

Every failure is an `OciBuildError` naming `where`: over the bound, or corrupt/truncated
compressed data (whatever exception the decompressor raises).
"""

from __future__ import annotations

import bz2
import lzma
from typing import BinaryIO, Optional, Tuple, Type

from ocibuild import gunzip
from ocibuild.errors import OciBuildError

# Layouts hold compressed layers: an archive of them compresses ~1:1. Uncompressed layers and
# JSON compress 2-10x; 100x is a file of zeros, not an image.
MAX_RATIO = 100
SLACK = 8 << 20
MAX_TOTAL = 64 << 30
# Tar headers, PAX records and padding between two members' data (and tarfile's read-ahead).
BETWEEN = 1 << 20

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def detect(head: bytes) -> Optional[str]:
    """The compression the first bytes of an input announce ("gzip", ...), None for none."""
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def _errors() -> Tuple[Type[BaseException], ...]:
    """What decompressors raise on bad data: gzip's (`ocibuild.gunzip.errors()`), OSError
    (bz2), EOFError (truncated), lzma.LZMAError, zstandard.ZstdError."""
    errors: Tuple[Type[BaseException], ...] = (*gunzip.errors(), lzma.LZMAError)
    try:
        import zstandard
        errors += (zstandard.ZstdError,)
    except ImportError:  # pragma: no cover - zstandard is a dependency of the core
        pass
    return errors


class _Prefixed:
    """`raw` with the bytes already read from its start put back in front."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self.head, self.raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out = self.head if n is None or n < 0 else self.head[:n]
            self.head = self.head[len(out):]
            return out
        return self.raw.read(n)

    def readable(self) -> bool:
        return True


def _decompressor(compression: Optional[str], raw: _Prefixed) -> BinaryIO:
    if compression == "gzip":
        return gunzip.reader(raw)  # type: ignore[arg-type]
    if compression == "bzip2":
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    if compression == "xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(  # type: ignore[return-value]
            raw, read_across_frames=True, closefd=False)
    return raw  # type: ignore[return-value]


class BoundedReader:
    """The decompressed bytes of an input, counted; over the bound is an `OciBuildError`."""

    def __init__(self, inner: BinaryIO, where: str, compression: Optional[str], limit: int,
                 bound: str) -> None:
        self.inner, self.where, self.compression = inner, where, compression
        self.limit, self.bound = limit, bound  # `bound` says why: "100x its 6144 bytes"
        self.produced = self.declared = 0
        self._window_end = BETWEEN
        self._errors = _errors()

    def _refusal(self, what: str) -> OciBuildError:
        return OciBuildError(
            f"{what}, past its {self.limit}-byte bound ({self.bound}); refusing it as a "
            "decompression bomb. If it is genuine, unpack it yourself and use the directory")

    def declare(self, size: int, what: str, ahead: int = 0) -> None:
        """`size` more bytes are coming (`what`, e.g. a tar member): refused now if they would
        pass the bound; after them, `BETWEEN` more may pass before the next declaration, and
        `ahead` more for a reader that reads that far ahead of what it parses (its chunk)."""
        # Declared sizes add up on their own: what was read ahead is not counted twice.
        self.declared += size
        if self.declared > self.limit:
            raise self._refusal(f"{what} declares {size} bytes, which would take "
                                f"{self.where} to {self.declared} before any of it is written")
        self._window_end = self.produced + size + BETWEEN + ahead

    def read(self, n: Optional[int] = -1) -> bytes:
        # Never ask the decompressor for more than one byte past the bound: a read of 10 GB
        # (tarfile reading a PAX header) must not decompress 10 GB into memory first.
        room = min(self.limit, self._window_end) - self.produced + 1
        want = room if n is None or n < 0 else min(n, room)
        try:
            data = self.inner.read(max(want, 0))
        except self._errors as err:
            kind = f"{self.compression} data" if self.compression else "data"
            raise OciBuildError(f"{self.where} is not readable {kind} (corrupt or "
                                f"truncated): {err}") from None
        self.produced += len(data)
        if self.produced > self.limit:
            verb = f"decompresses ({self.compression}) to" if self.compression else "holds"
            raise self._refusal(f"{self.where} {verb} more than {self.limit} bytes")
        if self.produced > self._window_end:
            raise OciBuildError(
                f"{self.where}: more than {BETWEEN} bytes between two members' data (a tar "
                "header or PAX record that large is not an archive's); refusing it")
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self.inner is not None and hasattr(self.inner, "close"):
            self.inner.close()

    def __enter__(self) -> "BoundedReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_decompressed(raw: BinaryIO, where: str, compressed_size: int, *,
                      max_ratio: int = MAX_RATIO, slack: int = SLACK,
                      max_total: int = MAX_TOTAL) -> BoundedReader:
    """`raw` (at its start, `compressed_size` bytes) decompressed as its magic bytes say
    (gzip, bzip2, xz, zstd, or none), bounded as this module describes. `raw` is not closed."""
    head = raw.read(6)
    compression = detect(head)
    source = _Prefixed(head, raw)
    if compression is None:
        limit = min(compressed_size, max_total)  # every byte that comes out is in the file
        bound = f"its own {compressed_size} bytes"
    else:
        limit = min(max(slack, max_ratio * compressed_size), max_total)
        bound = (f"{compression}: at most {max_ratio}x its {compressed_size} bytes, at least "
                 f"{slack >> 20} MiB, at most {max_total >> 30} GiB")
    return BoundedReader(_decompressor(compression, source), where, compression, limit, bound)
