"""A decompressed layer read as a tar in one forward pass, with few Python calls per member.

`tarfile.open(mode="r|")` reads its input in 10 KiB blocks and skips a file's bytes block by
block, joining and slicing buffers as it goes: on a base of 14,000 files most of the time of
reading the headers went there. `Forward` reads the decompressed stream in 1 MiB chunks and
lets tarfile's random-access mode ("r:") seek, as long as it only seeks forward, which is
all that iterating the members (and reading the current one's bytes) does. The same parser
reads the same headers, so the members, their order and their bytes are the ones "r|" gave;
a backward seek is refused (io.UnsupportedOperation, an OSError), never served wrong bytes.
"""

from __future__ import annotations

import io
import tarfile
from typing import BinaryIO

from ocibuild.layer.tarinfo import open_stream

CHUNK = 1 << 20


class Forward(io.RawIOBase):
    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self._buf = b""
        self._at = 0  # read position in _buf
        self._pos = 0  # stream position of _buf[_at]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _fill(self) -> bool:
        self._buf, self._at = self._stream.read(CHUNK), 0
        return bool(self._buf)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            rest = [self._buf[self._at:], self._stream.read()]
            self._buf, self._at = b"", 0
            data = b"".join(rest)
            self._pos += len(data)
            return data
        parts = []
        while size > 0:
            if self._at >= len(self._buf) and not self._fill():
                break
            piece = self._buf[self._at:self._at + size]
            self._at += len(piece)
            size -= len(piece)
            parts.append(piece)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos += len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a layer stream seeks only forward from the start")
        skip = offset - self._pos
        if skip < 0:
            raise io.UnsupportedOperation(f"a layer stream cannot seek back from {self._pos} "
                                          f"to {offset}")
        while skip > 0:
            if self._at >= len(self._buf) and not self._fill():
                break  # past the end: reads give nothing, as with a file
            step = min(skip, len(self._buf) - self._at)
            self._at += step
            self._pos += step
            skip -= step
        self._pos += skip  # beyond the end, as a file's seek
        return self._pos


def open_tar(stream: BinaryIO) -> tarfile.TarFile:
    """The decompressed layer `stream` as a TarFile to iterate once, in order."""
    return open_stream(Forward(stream), "r:")  # type: ignore[arg-type]
