"""Read a .deb without dpkg: an `ar` archive of `debian-binary`, `control.tar.*`, `data.tar.*`.

Members are read in place (seek + bounded read) and decompressed while streaming: xz with
`lzma`, gzip with `zlib`, zstd with `zstandard`; nothing is held whole.
"""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
from contextlib import contextmanager
from typing import BinaryIO, Dict, Iterator, Tuple

from ocibuild.errors import OciBuildError

_MAGIC = b"!<arch>\n"
_HEADER = 60


class _Bounded(io.RawIOBase):
    """`size` bytes of `f` from its current position."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f, self._left = f, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        if n <= 0:
            return 0
        data = self._f.read(n)
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)


def members(f: BinaryIO, where: str) -> Dict[str, Tuple[int, int]]:
    """Member name -> (offset, size)."""
    if f.read(len(_MAGIC)) != _MAGIC:
        raise OciBuildError(f"{where} is not a Debian package (no ar archive header)")
    found: Dict[str, Tuple[int, int]] = {}
    offset = len(_MAGIC)
    while True:
        f.seek(offset)
        header = f.read(_HEADER)
        if not header:
            return found
        if len(header) < _HEADER or header[58:60] != b"`\n":
            raise OciBuildError(f"{where}: corrupt ar member header at byte {offset}")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        found[name] = (offset + _HEADER, size)
        offset += _HEADER + size + (size % 2)


def _decompressed(raw: BinaryIO, name: str, where: str) -> BinaryIO:
    if name.endswith(".xz"):
        return lzma.open(raw)  # type: ignore[return-value]
    if name.endswith(".gz"):
        return gzip.open(raw)  # type: ignore[return-value]
    if name.endswith(".zst"):
        import zstandard  # only for the few packages that use it

        return zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[return-value]
    if name.endswith(".tar"):
        return raw
    raise OciBuildError(f"{where}: member {name!r} has a compression this tool does not read")


@contextmanager
def open_tar(path: str, prefix: str) -> Iterator[tarfile.TarFile]:
    """The `control.tar*` or `data.tar*` member (by `prefix`) as a streaming tar."""
    with open(path, "rb") as f:
        found = members(f, path)
        names = [n for n in found if n.startswith(prefix + ".tar")]
        if len(names) != 1:
            raise OciBuildError(f"{path}: expected one {prefix}.tar* member, found "
                                f"{', '.join(sorted(found)) or 'none'}")
        offset, size = found[names[0]]
        f.seek(offset)
        stream = _decompressed(io.BufferedReader(_Bounded(f, size), 1 << 20), names[0], path)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            yield tar


def control_files(path: str) -> Dict[str, bytes]:
    """The small files of `control.tar*` (control, md5sums, ...), by base name."""
    out: Dict[str, bytes] = {}
    with open_tar(path, "control") as tar:
        for member in tar:
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                out[member.name.rsplit("/", 1)[-1]] = extracted.read()
    return out
