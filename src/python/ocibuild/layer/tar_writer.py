"""Write layer entries as a tar stream with normalized headers.

POSIX pax format the way CPython's `tarfile` writes it (`format=PAX_FORMAT`, UTF-8): a pax
extended header only for what ustar cannot hold (names or link targets over 100 bytes,
non-ASCII text, user/group names over 32 bytes, ids of 8**7 and more, sizes of 8 GiB and
more), so plain entries stay plain ustar, readable by every tool. GNU format would instead
use its own `././@LongLink` records, which some OCI tools mishandle.

The headers are encoded here rather than by `tarfile`: the bytes are the same (a test
compares them with tarfile's for every kind of header), but tarfile's generic path costs
~60 µs an entry, most of the layer's non-compression CPU for a site-packages directory, and
the bytes no longer depend on the Python version. Every header field comes from the entry or
from `mtime`, never from the file on disk, so the bytes depend on content only. The stream
goes out in 1 MiB chunks that file content is read straight into (`_Chunks`).
"""

from __future__ import annotations

import errno
import os
from typing import BinaryIO, Dict, Iterable, Union

from ocibuild.errors import OciBuildError
from ocibuild.layer.entries import (BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK,
                                    LayerEntry)
from ocibuild.layer.tarinfo import device_fault, owner_fault, text_fault
from ocibuild.layer.whiteouts import whiteout_component
from ocibuild.untrusted import os_reason

BLOCK = 512
RECORD = 20 * BLOCK  # tar pads the archive to whole records of 20 blocks
_TYPES = {FILE: b"0", HARDLINK: b"1", SYMLINK: b"2", CHARDEV: b"3", BLOCKDEV: b"4", DIR: b"5",
          FIFO: b"6"}
_PAX = b"x"
_MAGIC = b"ustar\x0000"
# Only the chunking of writes, never the bytes.
_CHUNK = 1 << 20
_NO_DEVICE = bytes(16)  # devmajor, devminor: empty for anything but device files
_NO_FOLLOW, _NON_BLOCK = getattr(os, "O_NOFOLLOW", 0), getattr(os, "O_NONBLOCK", 0)
_CLOSE_ON_EXEC = getattr(os, "O_CLOEXEC", 0)


def _text(value: str, length: int) -> bytes:
    """A ustar text field: ASCII ('?' for anything else), cut or NUL-padded to `length`."""
    return value.encode("ascii", "replace")[:length].ljust(length, b"\0")


def _header_block(name: str, kind: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
                  linkname: str, uname: str, gname: str, device: bytes = _NO_DEVICE) -> bytes:
    block = b"".join((
        _text(name, 100), b"%07o\0" % mode, b"%07o\0" % uid, b"%07o\0" % gid,
        b"%011o\0" % size, b"%011o\0" % mtime, b"        ", kind, _text(linkname, 100), _MAGIC,
        _text(uname, 32), _text(gname, 32), device, bytes(155 + 12),  # prefix unused; pad
    ))
    checksum = sum(block)  # with the checksum field as eight spaces
    return block[:148] + b"%06o\0 " % checksum + block[156:]


def _pax_record(keyword: str, value: Union[str, bytes]) -> bytes:
    """`"%d %s=%s\\n"` where the leading length counts itself. An xattr's value is bytes,
    written as they are (as GNU tar and Go's archive/tar do)."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    body = b" " + keyword.encode("utf-8") + b"=" + raw + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode("ascii") + body


def _pad(size: int) -> bytes:
    return bytes(-size % BLOCK)


def header(entry: LayerEntry, mtime: int) -> bytes:
    """The header block(s) of `entry`: a pax extended header first when ustar cannot hold it."""
    fault = owner_fault(entry.uid, entry.gid) or text_fault(
        (("name", entry.path), ("link target", entry.link_target or ""),
         ("owner name", entry.uname), ("group name", entry.gname)),
        (name for name, _ in entry.xattrs))
    if fault is not None:  # no unpacker could apply it: the layer would not be an image's
        raise OciBuildError(f"layer entry {entry.path!r}: {fault}")
    name = entry.path + "/" if entry.kind == DIR and not entry.path.endswith("/") else entry.path
    linkname = entry.link_target or ""
    size = entry.size if entry.kind == FILE else 0
    fields = {"uid": entry.uid, "gid": entry.gid, "size": size,
              "mtime": mtime if entry.mtime is None else entry.mtime}
    pax: Dict[str, Union[str, bytes]] = {}
    for keyword, value, length in (("path", name, 100), ("linkpath", linkname, 100),
                                   ("uname", entry.uname, 32), ("gname", entry.gname, 32)):
        if not value.isascii() or len(value) > length:
            pax[keyword] = value
    for keyword, digits in (("uid", 7), ("gid", 7), ("size", 11), ("mtime", 11)):
        if not 0 <= fields[keyword] < 8 ** digits:
            pax[keyword] = str(fields[keyword])
            fields[keyword] = 0
    for xattr, value in entry.xattrs:
        pax["SCHILY.xattr." + xattr] = value
    device = _NO_DEVICE
    if entry.kind in (CHARDEV, BLOCKDEV):
        fault = device_fault(*entry.device)
        if fault is not None:  # nor would 7 octal digits hold it
            raise OciBuildError(f"layer entry {entry.path!r}: {fault}")
        device = b"%07o\0%07o\0" % entry.device
    block = _header_block(name, _TYPES[entry.kind], entry.mode & 0o7777, fields["uid"],
                          fields["gid"], fields["size"], fields["mtime"], linkname, entry.uname,
                          entry.gname, device)
    if not pax:
        return block
    try:
        records = b"".join(_pax_record(keyword, value) for keyword, value in pax.items())
    except UnicodeEncodeError:
        raise OciBuildError(f"layer entry {entry.path!r}: name, link target or owner is not "
                            "valid UTF-8, which tar headers need") from None
    return (_header_block("././@PaxHeader", _PAX, 0, 0, 0, len(records), 0, "", "", "")
            + records + _pad(len(records)) + block)


class _Chunks:
    """The tar stream in fresh, zero-filled 1 MiB buffers, each handed to the sink once full.

    File content is read straight into the buffer (`readv`), padding is a skip over zeros
    already there, and a buffer is never touched after it is handed over. So the bytes are
    copied once on their way in and the sink may keep a chunk instead of copying it: a sink
    with `write_chunk` (the layer writer, which hashes chunks on a thread) is told so; any
    other file gets an ordinary `write`."""

    def __init__(self, out: BinaryIO) -> None:
        self._emit = getattr(out, "write_chunk", None) or out.write
        self.offset = 0  # of the next byte in the stream
        self._fresh()

    def _fresh(self) -> None:
        self._view = memoryview(bytearray(_CHUNK))
        self._pos = 0

    def _hand_over(self) -> None:
        self._emit(self._view[:self._pos])
        self._fresh()

    def write(self, data: bytes) -> None:
        while data:
            take = min(len(data), _CHUNK - self._pos)
            self._view[self._pos:self._pos + take] = data[:take]
            self._advance(take)
            data = data[take:]

    def skip(self, size: int) -> None:
        """`size` zero bytes: the buffer holds zeros where nothing was written."""
        while size:
            take = min(size, _CHUNK - self._pos)
            self._advance(take)
            size -= take

    def read_from(self, fd: int, size: int) -> int:
        """Up to `size` bytes of `fd` (fewer only at its end): how many were read."""
        done = 0
        while done < size:
            take = min(size - done, _CHUNK - self._pos)
            got = os.readv(fd, [self._view[self._pos:self._pos + take]])
            if not got:
                break
            self._advance(got)
            done += got
        return done

    def _advance(self, size: int) -> None:
        self._pos += size
        self.offset += size
        if self._pos == _CHUNK:
            self._hand_over()

    def close(self) -> None:
        if self._pos:
            self._emit(self._view[:self._pos])


def _add_file(out: _Chunks, entry: LayerEntry) -> None:
    """Stream the file; its size was taken when collecting, so a change since is an error."""
    assert entry.source is not None
    changed = OciBuildError(f"{entry.source!r} changed while the layer was written; build "
                            "again once nothing writes to it")
    try:
        # It was a regular file when listed: never follow a link or wait on a FIFO put there
        # since (O_NONBLOCK does nothing to a regular file's reads).
        fd = os.open(entry.source, os.O_RDONLY | _NO_FOLLOW | _NON_BLOCK | _CLOSE_ON_EXEC)
    except OSError as err:  # e.g. a file without read permission: the user's to fix
        if err.errno == errno.ELOOP:
            raise changed from None
        raise OciBuildError(f"cannot read the layer input {entry.source!r}: "
                            f"{os_reason(err)}") from None
    try:
        # A FIFO reads as empty (no writer), so it is "changed" like a shorter file.
        if out.read_from(fd, entry.size) != entry.size or os.read(fd, 1):
            raise changed
    except OSError as err:
        if err.errno == errno.EISDIR:
            raise changed from None
        raise OciBuildError(f"cannot read the layer input {entry.source!r}: "
                            f"{os_reason(err)}") from None
    finally:
        os.close(fd)
    out.skip(-entry.size % BLOCK)


def _refuse_whiteout(entry: LayerEntry) -> None:
    for what, path in (("path", entry.path), ("link target", entry.link_target or "")):
        name = whiteout_component(path)
        if name is not None:
            raise OciBuildError(
                f"layer entry {entry.path!r}: its {what} holds the whiteout name {name!r} "
                "(.wh.*), which would delete or hide files of the image below; only a layer "
                "that is a diff may hold whiteouts: rename the input")


def write_tar(entries: Iterable[LayerEntry], fileobj: BinaryIO, *, mtime: int,
              whiteouts: bool = False) -> None:
    """`whiteouts`: the entries are a diff, whose `.wh.*` names are meant as deletions; any
    other layer refuses them here, whoever made its entries (`ocibuild.layer.whiteouts`)."""
    if isinstance(mtime, bool) or not isinstance(mtime, int) or mtime < 0:
        raise OciBuildError(f"mtime {mtime!r}: must be a whole number of seconds since "
                            "1970-01-01 UTC, e.g. 0 or $SOURCE_DATE_EPOCH")
    out = _Chunks(fileobj)
    for entry in entries:
        if not whiteouts:
            _refuse_whiteout(entry)
        out.write(header(entry, mtime))
        # An empty FILE without a source is a whiteout (ocibuild.rootfs): nothing to read.
        if entry.kind == FILE and (entry.size or entry.source is not None):
            _add_file(out, entry)
    out.skip(2 * BLOCK)  # end of archive
    out.skip(-out.offset % RECORD)
    out.close()
