"""gzip decompression through ISA-L's igzip (python-isal, where installed; its wheels
bundle the library), with the standard library's gzip where isal is not installed.

Why: every base layer is decompressed once or more per build (its tree, its accounts, a
Dockerfile stage's filesystem, a RUN step's rootfs), and igzip does it in a third of zlib's
time (docs/performance.md, bench/gunzip_bench.py). Compression stays with libdeflate
(`ocibuild.layer.libdeflate`): decompressed bytes are the same whoever inflates them, but
compressed bytes, and so digests, are not.

Both readers accept and refuse the same streams (tests/core/gunzip_test.py), multi-member
streams and zero padding after the last member included, with one exception: a header with
FHCRC set and a wrong CRC-16 is refused by igzip (as Go's compress/gzip, which containerd and
docker unpack with, and zlib's inflate refuse it) but accepted by the standard library, which
skips that field unread. The error types differ too: igzip reports a bad deflate stream as
`isal.isal_zlib.error` (not a zlib.error nor an OSError), and trailing garbage after a member
as EOFError where the standard library says BadGzipFile; `errors()` has them all.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO, Tuple, Type


class _ReadInto(io.RawIOBase):
    """`raw` (an object with `read` only) with the `readinto` that igzip's C reader calls."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def reader(fileobj: BinaryIO) -> BinaryIO:
    """`fileobj` (read from where it is, not closed with the result) gunzipped, as a stream.

    igzip reads 512 KiB of compressed input at a time (the standard library: 8 KiB to 128 KiB,
    by version); bounds on what comes out are the caller's, as with either."""
    try:
        from isal import igzip
    except ImportError:
        return gzip.GzipFile(fileobj=fileobj, mode="rb")  # type: ignore[return-value]
    if not hasattr(fileobj, "readinto"):
        fileobj = _ReadInto(fileobj)  # type: ignore[assignment]
    return igzip.IGzipFile(fileobj=fileobj, mode="rb")  # type: ignore[return-value]


def errors() -> Tuple[Type[BaseException], ...]:
    """What either reader raises on a damaged stream: OSError (BadGzipFile), EOFError
    (truncated), zlib.error and isal's own error (a bad deflate stream)."""
    found: Tuple[Type[BaseException], ...] = (OSError, EOFError, zlib.error)
    try:
        from isal import isal_zlib
        found += (isal_zlib.error,)
    except ImportError:
        pass
    return found
