"""Read a .deb without dpkg: an `ar` archive of `debian-binary`, `control.tar.*`, `data.tar.*`.

Members are read in place (seek + bounded read) and decompressed while streaming: xz with
`lzma`, gzip with `zlib`, zstd with `zstandard`; nothing is held whole.

A .deb is untrusted input: every way it can be malformed (an ar header with a size that is
negative, not a number or past the end of the file, a repeated member name, too many members,
garbage or truncated compression, a tar that stops mid-header) is an `OciBuildError` naming
the file and the member, never another exception and never a loop.
"""

from __future__ import annotations

import functools
import gzip
import io
import lzma
import os
import re
import tarfile
import zlib
from contextlib import contextmanager
from typing import BinaryIO, Dict, Iterator, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.layer.tarinfo import Bounded

_MAGIC = b"!<arch>\n"
_HEADER = 60
# A .deb has three members; dpkg accepts more only as `_`-prefixed extras, which nobody ships
# in numbers. A bound keeps a hostile archive of millions of empty members cheap to refuse.
MAX_MEMBERS = 16
# control, md5sums, conffiles, triggers... are text; md5sums of the biggest Debian packages
# is a few MiB. More is not a package this tool should read into memory.
MAX_CONTROL_FILE = 16 << 20
# The control.tar members this tool reads (layers, effects); the others are skipped
# unread, so a control.tar of many large members costs no memory.
CONTROL_FILES = ("control", "md5sums", "postinst")
# Decompression bombs: a member may expand to at most RATIO times its compressed size
# (at least MIN_EXPANSION, so a tiny member of text is fine) and never past MAX_EXPANSION.
# Real packages stay well below: over 1,656 .debs of a bookworm system the largest ratio
# of a data.tar is 178 (libjs-moment-timezone: 1.2 MB to 223 MB of JSON), of a control.tar
# 60 (libflite1's md5sums).
RATIO = 1000
MIN_EXPANSION = 1 << 20
MAX_EXPANSION = 16 << 30
_SIZE = re.compile(rb"[0-9]{1,10} *")
_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,16}")


class _Bounded(io.RawIOBase):
    """`size` bytes of `f` from its current position (fewer if `f` ends first)."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f, self._left = f, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        if n <= 0:
            return 0
        data = self._f.read(n)
        if not data:
            self._ended_early()
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def _ended_early(self) -> None:
        """The ar reader checked member sizes against the file: a short read is its end."""


@functools.lru_cache(maxsize=None)
def _corrupt_errors() -> Tuple[type, ...]:
    """What the decompressors raise on garbage or a cut-off stream (gzip.BadGzipFile is an
    OSError; zstandard is imported only when installed, as only zstd packages need it)."""
    errors: Tuple[type, ...] = (lzma.LZMAError, EOFError, zlib.error, OSError, ValueError)
    try:
        import zstandard

        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    return errors


def expansion_limit(compressed: int) -> int:
    """How many bytes a member of `compressed` bytes may decompress to."""
    return min(MAX_EXPANSION, max(MIN_EXPANSION, RATIO * compressed))


class _Checked(io.RawIOBase):
    """A decompressed member whose read errors become one `OciBuildError` naming it, and
    that stops at `limit` bytes: a byte more is an error, raised before it is returned, so
    nothing downstream writes past the bound.

    Only reads of the .deb pass through here, so an OSError here is the input's fault (or an
    unreadable file), never the output's: writing the layer is outside."""

    def __init__(self, stream: BinaryIO, what: str, limit: int, compressed: int) -> None:
        self._stream, self._what = stream, what
        self._limit, self._compressed, self._read = limit, compressed, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        # One byte past the limit is asked for, to tell "ends at the limit" from "goes on".
        want = min(len(buffer), self._limit - self._read + 1)
        try:
            data = self._stream.read(want)
        except _corrupt_errors() as err:
            raise OciBuildError(f"{self._what} is corrupt or truncated: {err}") from None
        self._read += len(data)
        if self._read > self._limit:
            raise OciBuildError(f"{self._what} decompresses to more than {self._limit} bytes "
                                f"from {self._compressed} (at most {RATIO} times its size, "
                                f"{MAX_EXPANSION} bytes in all); refusing a decompression "
                                "bomb")
        buffer[: len(data)] = data
        return len(data)


def _size(raw: bytes, where: str, name: str, offset: int) -> int:
    if not _SIZE.fullmatch(raw):
        raise OciBuildError(f"{where}: the ar header of member {name!r} at byte {offset} gives "
                            f"the size {raw.decode('ascii', 'replace').strip()!r}, not a "
                            "decimal number; the file is corrupt")
    return int(raw)


def members(f: BinaryIO, where: str) -> Dict[str, Tuple[int, int]]:
    """Member name -> (offset, size); every member lies wholly inside the file."""
    if f.read(len(_MAGIC)) != _MAGIC:
        raise OciBuildError(f"{where} is not a Debian package (no ar archive header)")
    end = f.seek(0, os.SEEK_END)
    found: Dict[str, Tuple[int, int]] = {}
    offset = len(_MAGIC)
    # Each step moves `offset` forward by at least one header, so this ends.
    while offset < end:
        f.seek(offset)
        header = f.read(_HEADER)
        if len(header) < _HEADER or header[58:60] != b"`\n":
            raise OciBuildError(f"{where}: corrupt ar member header at byte {offset}")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        if not _NAME.fullmatch(name):
            raise OciBuildError(f"{where}: the ar member at byte {offset} has the name "
                                f"{name!r}, not one a Debian package uses; the file is corrupt")
        size = _size(header[48:58], where, name, offset)
        if offset + _HEADER + size > end:
            raise OciBuildError(f"{where}: member {name!r} ({size} bytes at byte "
                                f"{offset + _HEADER}) runs past the end of the file "
                                f"({end} bytes); the file is truncated")
        if name in found:
            raise OciBuildError(f"{where}: member {name!r} appears twice; refusing an archive "
                                "whose reading depends on which copy wins")
        if len(found) == MAX_MEMBERS:
            raise OciBuildError(f"{where} has more than {MAX_MEMBERS} ar members; a Debian "
                                "package has three")
        found[name] = (offset + _HEADER, size)
        offset += _HEADER + size + (size % 2)
    return found


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


class _StrictTarInfo(Bounded):
    """tarfile ends a streamed archive quietly at a bad or cut-off header after the first;
    that would make half a package look like a whole one. Only the zero block that marks
    the end of a tar ends it here; anything else there is an error. Extended headers are
    bounded as in every reader (ocibuild.layer.tarinfo)."""

    @classmethod
    def fromtarfile(cls, tar):  # type: ignore[override]
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            raise
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError,
                tarfile.InvalidHeaderError) as err:
            raise tarfile.ReadError(f"{err or 'no end-of-archive marker'} at byte "
                                    f"{tar.offset}") from None


@contextmanager
def open_tar(path: str, prefix: str) -> Iterator[tarfile.TarFile]:
    """The `control.tar*` or `data.tar*` member (by `prefix`) as a streaming tar.

    Reading it raises `OciBuildError` ("<deb>: data.tar.xz is corrupt or truncated: ...")
    for any fault of the archive; file contents are read with `member_data`."""
    with open(path, "rb") as f:
        found = members(f, path)
        names = [n for n in found if n.startswith(prefix + ".tar")]
        if len(names) != 1:
            raise OciBuildError(f"{path}: expected one {prefix}.tar* member, found "
                                f"{', '.join(sorted(found)) or 'none'}")
        offset, size = found[names[0]]
        f.seek(offset)
        what = f"{path}: {names[0]}"
        try:
            stream = _decompressed(io.BufferedReader(_Bounded(f, size), 1 << 20), names[0], path)
            limit = size if names[0].endswith(".tar") else expansion_limit(size)
            checked = io.BufferedReader(_Checked(stream, what, limit, size), 1 << 20)
            with tarfile.open(fileobj=checked, mode="r|", tarinfo=_StrictTarInfo) as tar:
                yield tar
        except tarfile.TarError as err:
            # Only the tar of the .deb raises TarError here: layers are written with
            # addfile, which raises nothing of the kind for well-formed TarInfo.
            raise OciBuildError(f"{what} is corrupt or truncated: {err}") from None


class _MemberData(_Bounded):
    """Exactly `member.size` bytes, or an error: tarfile's own copy would report a cut-off
    member as an OSError indistinguishable from a failing write."""

    def __init__(self, tar: tarfile.TarFile, member: tarfile.TarInfo, what: str) -> None:
        extracted = tar.extractfile(member)
        if extracted is None:
            raise OciBuildError(f"{what}: {member.name} is not a regular file")
        super().__init__(extracted, member.size)  # type: ignore[arg-type]
        self._what, self._name = what, member.name

    def _ended_early(self) -> None:
        raise OciBuildError(f"{self._what} is corrupt or truncated: {self._name} ends "
                            f"{self._left} bytes early")


def member_data(tar: tarfile.TarFile, member: tarfile.TarInfo, what: str) -> BinaryIO:
    """The contents of a regular file `member` of `tar` (from `open_tar`), checked whole."""
    return io.BufferedReader(_MemberData(tar, member, what))  # type: ignore[return-value]


def read_small(tar: tarfile.TarFile, member: tarfile.TarInfo, what: str) -> bytes:
    """A regular file of `tar` read whole, refused over MAX_CONTROL_FILE bytes before reading."""
    limit = MAX_CONTROL_FILE
    if member.size > limit:
        raise OciBuildError(f"{what}: {member.name} is {member.size} bytes, over the "
                            f"{limit}-byte limit for a file read into memory; refusing it")
    return member_data(tar, member, what).read()


def control_files(path: str) -> Dict[str, bytes]:
    """The files of `control.tar*` this tool reads (CONTROL_FILES), by name; each read
    whole but bounded (MAX_CONTROL_FILE), every other member skipped without being read
    into memory. Only top-level members count, as dpkg reads them."""
    out: Dict[str, bytes] = {}
    with open_tar(path, "control") as tar:
        for member in tar:
            name = "/".join(p for p in member.name.split("/") if p not in ("", "."))
            if name not in CONTROL_FILES:
                continue
            if not member.isfile():
                raise OciBuildError(f"{path}: control.tar: {name} is not a regular file")
            if name in out:
                raise OciBuildError(f"{path}: control.tar holds {name} twice")
            out[name] = read_small(tar, member, f"{path}: control.tar")
    return out
