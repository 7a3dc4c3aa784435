"""Write layer entries as a tar stream with normalized headers.

PAX format, because `tarfile` then adds a PAX extended header only for what ustar cannot
hold (names or link targets over 100 bytes, non-ASCII text, sizes of 8 GiB and more): plain
entries stay plain ustar, readable by every tool. GNU format would instead use its own
`././@LongLink` records, which some OCI tools mishandle.

Every header field comes from the entry or from `mtime`, never from the file on disk, so the
bytes depend on content only. They also depend on CPython's `tarfile`: they were checked to be
identical on CPython 3.9 to 3.13, and a golden test pins them. Content streams from disk.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO, Iterable

from ocibuild.errors import OciBuildError
from ocibuild.layer.entries import DIR, FILE, HARDLINK, SYMLINK, LayerEntry

_TYPES = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE,
          HARDLINK: tarfile.LNKTYPE}
# Only the chunking of writes, never the bytes: bigger chunks, fewer Python-level calls.
_BUFSIZE = 1 << 20


def tar_info(entry: LayerEntry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)  # tarfile appends the "/" of directory names
    info.type = _TYPES[entry.kind]
    info.mode = entry.mode & 0o7777
    info.uid, info.gid = entry.uid, entry.gid
    info.uname, info.gname = entry.uname, entry.gname
    info.mtime = int(mtime)  # an int: a float would force a PAX header with the fraction
    info.size = entry.size if entry.kind == FILE else 0
    info.linkname = entry.link_target or ""
    info.devmajor = info.devminor = 0
    return info


def _add_file(tar: tarfile.TarFile, entry: LayerEntry, info: tarfile.TarInfo) -> None:
    """Stream the file; its size was taken when collecting, so a change since is an error."""
    changed = OciBuildError(f"{entry.source!r} changed size while the layer was written; "
                            "build again once nothing writes to it")
    with open(entry.source, "rb") as content:
        try:
            tar.addfile(info, content)
        except OSError as err:
            if "unexpected end of data" in str(err):
                raise changed from err
            raise
        if content.read(1):
            raise changed


class _Counting:
    """`fileobj` plus the `tell()` that tarfile's "w" mode asks for once, at the start."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._fileobj = fileobj
        self.write = fileobj.write

    def tell(self) -> int:
        return 0


def write_tar(entries: Iterable[LayerEntry], fileobj: BinaryIO, *, mtime: int) -> None:
    if isinstance(mtime, bool) or not isinstance(mtime, int) or mtime < 0:
        raise OciBuildError(f"mtime {mtime!r}: must be a whole number of seconds since "
                            "1970-01-01 UTC, e.g. 0 or $SOURCE_DATE_EPOCH")
    # Mode "w", not the streaming "w|": the bytes are the same, but "w|" funnels every write
    # through a bytes buffer that is copied on each append (a third of the layer's CPU time
    # for many small files). "w" only needs `tell()`, which `_Counting` provides.
    with tarfile.open(fileobj=_Counting(fileobj), mode="w", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", copybufsize=_BUFSIZE) as tar:
        for entry in entries:
            info = tar_info(entry, mtime)
            if entry.kind == FILE:
                _add_file(tar, entry, info)
            else:
                tar.addfile(info)
