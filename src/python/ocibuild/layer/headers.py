"""A layer's tar members read the way `tarfile` reads them, about three times faster, or not
at all (`Unusual`: then the caller reads the layer again with tarfile, which decides).

Modelling a stage's filesystem reads every header of every layer (a Debian base and one
RUN step: 14,000 members), and tarfile's per-header work (checksums through struct, every
number through two helper calls, a TarInfo of 20 attributes, the seek/tell dance of its
offset checks) was most of a warm rebuild's time. This reader does the same arithmetic with
fewer calls, and memoizes numeric fields by their bytes (modes, owners and times repeat).

It mirrors CPython 3.9's tarfile for what layers hold: ustar/GNU/v7 headers (the v7
directory-as-file-with-slash, the ustar prefix, base-256 numbers), GNU long names and link
names, and pax extended headers (path, linkpath, size, uid, gid, mtime, uname, gname);
a member's pax records are its `pax_headers`, as tarfile's (the unpacker reads xattrs there).
Anything else - a bad checksum or number, a header cut short, a global pax header, sparse
files, hdrcharset, a Solaris extended header, a pax record out of shape, extended headers
past ocibuild.layer.tarinfo's bounds, negative numbers - is `Unusual`, before the member is
given: tarfile's own rules (which end some such archives silently and refuse others) then
apply unchanged. `tests/core/tar_headers_test.py` holds both readers to the same members on
generated and damaged archives.
"""

from __future__ import annotations

import re
import tarfile
from typing import BinaryIO, Dict, Iterator

from ocibuild.layer.forward import Forward
from ocibuild.layer.tarinfo import MAX_EXTENDED_CHAIN, MAX_EXTENDED_HEADER, MAX_SIZE

BLOCK = 512
_ENCODING, _ERRORS = tarfile.ENCODING, "surrogateescape"
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_SUPPORTED = set(tarfile.SUPPORTED_TYPES)
_LONG = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_PAX_RECORD = re.compile(br"(\d+) ([^=]+)=")
_PAX_NUMBERS = {"size", "uid", "gid"}
_NUMBERS: Dict[bytes, int] = {}


class Unusual(Exception):
    """Not a layer this reader vouches for: read it with tarfile."""


class Member:
    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "linkname", "devmajor",
                 "devminor", "offset_data", "mtime", "pax_headers")

    def isreg(self) -> bool:
        return self.type in _REGULAR

    isfile = isreg

    def isdir(self) -> bool:
        return self.type == tarfile.DIRTYPE

    def issym(self) -> bool:
        return self.type == tarfile.SYMTYPE

    def islnk(self) -> bool:
        return self.type == tarfile.LNKTYPE

    def ischr(self) -> bool:
        return self.type == tarfile.CHRTYPE

    def isblk(self) -> bool:
        return self.type == tarfile.BLKTYPE


class Reader:
    """`for member in Reader(stream)`; `read(member, n)` gives the current member's bytes."""

    def __init__(self, stream: BinaryIO) -> None:
        self._f = Forward(stream)
        self._end = 0  # where the current member's data (padded) ends

    def __iter__(self) -> Iterator[Member]:
        f = self._f
        while True:
            if f.tell() > self._end:
                raise Unusual("read past a member's data")
            if f.tell() < self._end:  # tarfile's check: the padded data must all be there
                f.seek(self._end - 1)
                if not f.read(1):
                    raise Unusual("the data of a member is cut short")
            start = f.tell()
            head = f.read(BLOCK)
            if not head and start > 0:
                return  # tarfile ends there too
            if len(head) == BLOCK and head.count(0) == BLOCK:
                return
            member = self._member(head, 0)
            if member.size > MAX_SIZE:
                raise Unusual("a size past any file's")
            skip = _block(member.size) if member.isreg() or member.type not in _SUPPORTED else 0
            self._end = member.offset_data + skip
            yield member

    def read(self, member: Member, n: int) -> bytes:
        """Up to `n` more bytes of `member`'s data (the member just given)."""
        left = member.offset_data + member.size - self._f.tell()
        return self._f.read(max(0, min(n, left)))

    def _member(self, head: bytes, depth: int) -> Member:
        if len(head) != BLOCK or head.count(0) == BLOCK or depth >= MAX_EXTENDED_CHAIN:
            raise Unusual("a missing or odd header")
        m = _parse(head)
        m.offset_data = self._f.tell()
        if m.type in _LONG:
            data = self._extended(m)
            nxt = self._member(self._f.read(BLOCK), depth + 1)
            text = _text(data)
            if m.type == tarfile.GNUTYPE_LONGNAME:
                nxt.name = text
            else:
                nxt.linkname = text
            return nxt
        if m.type == tarfile.XHDTYPE:
            pax = _pax(self._extended(m))
            nxt = self._member(self._f.read(BLOCK), depth + 1)
            nxt.pax_headers = pax
            for keyword, value in pax.items():
                if keyword == "mtime":
                    try:
                        nxt.mtime = float(value)  # as tarfile: a float, 0 when none
                    except ValueError:
                        nxt.mtime = 0.0
                elif keyword in _PAX_NUMBERS:
                    try:
                        number = int(value)
                    except ValueError:
                        number = 0
                    if number < 0:
                        raise Unusual("a negative number")
                    setattr(nxt, keyword, number)
                elif keyword == "path":
                    nxt.name = value.rstrip("/")
                elif keyword == "linkpath":
                    nxt.linkname = value
            return nxt
        if m.type in (tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_SPARSE):
            raise Unusual("a global pax header, Solaris header or sparse file")
        return m

    def _extended(self, m: Member) -> bytes:
        if m.size > MAX_EXTENDED_HEADER:
            raise Unusual("a long extended header")
        want = _block(m.size)
        data = self._f.read(want)
        if len(data) != want:
            raise Unusual("an extended header cut short")
        return data


def _block(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


def _number(field: bytes) -> int:
    known = _NUMBERS.get(field)
    if known is not None:
        return known
    if field[0] in (0o200, 0o377):
        n = tarfile.nti(field)
    else:
        try:
            text = field.split(b"\0", 1)[0].decode("ascii")
            n = int(text.strip() or "0", 8)
        except ValueError:
            raise Unusual("a number that is none") from None
    if n < 0:
        raise Unusual("a negative number")
    if len(_NUMBERS) > 65536:
        _NUMBERS.clear()
    _NUMBERS[field] = n
    return n


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode(_ENCODING, _ERRORS)


def _parse(head: bytes) -> Member:
    checksum = _number(head[148:156])
    if checksum != 256 + sum(head) - sum(head[148:156]) \
            and checksum not in tarfile.calc_chksums(head):
        raise Unusual("a bad checksum")
    m = Member()
    m.name = _text(head[0:100])
    m.mode = _number(head[100:108])
    m.uid = _number(head[108:116])
    m.gid = _number(head[116:124])
    m.size = _number(head[124:136])
    m.mtime = _number(head[136:148])  # tarfile refuses a header whose mtime is no number
    m.pax_headers = {}
    m.type = head[156:157]
    m.linkname = _text(head[157:257])
    m.devmajor = _number(head[329:337])
    m.devminor = _number(head[337:345])
    prefix = _text(head[345:500])
    if m.type == tarfile.AREGTYPE and m.name.endswith("/"):
        m.type = tarfile.DIRTYPE
    if m.type == tarfile.DIRTYPE:
        m.name = m.name.rstrip("/")
    if prefix and m.type not in tarfile.GNU_TYPES:
        m.name = prefix + "/" + m.name
    return m


def _pax(data: bytes) -> Dict[str, str]:
    """Records "LEN KEY=VALUE\n" from the start, then NUL padding only: what 3.9's lenient
    parser and the strict one of later releases (CVE-2024-6232) both read the same way."""
    if b"hdrcharset" in data or b"GNU.sparse" in data:
        raise Unusual("a pax header tarfile reads its own way")
    found: Dict[str, str] = {}
    pos, end = 0, len(data)
    while pos < end and data[pos] != 0:
        match = _PAX_RECORD.match(data, pos)
        length = int(match.group(1)) if match and len(match.group(1)) <= 20 else 0
        last = pos + length - 1  # the record's newline
        if length < 5 or last >= end or match.end() > last or data[last] != 0x0A:
            raise Unusual("a pax record out of shape")
        try:
            found[match.group(2).decode("utf-8")] = data[match.end():last].decode("utf-8")
        except UnicodeDecodeError:
            raise Unusual("a pax record that is no UTF-8") from None
        pos += length
    if data[pos:].count(0) != end - pos:
        raise Unusual("bytes after the pax records")
    return found
