"""Write layer entries as a tar stream with normalized headers.

PAX format, because `tarfile` then adds a PAX header only for what ustar cannot hold (long
names, non-ASCII, sizes over 8 GiB): plain entries stay plain ustar, readable everywhere.
Content streams from disk in chunks; nothing is held in memory.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO, Iterable

from ocibuild.errors import OciBuildError
from ocibuild.layer.entries import DIR, FILE, HARDLINK, SYMLINK, LayerEntry

_TYPES = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE,
          HARDLINK: tarfile.LNKTYPE}


def tar_info(entry: LayerEntry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.type = _TYPES[entry.kind]
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname, info.gname = entry.uname, entry.gname
    info.mtime = mtime
    info.size = entry.size if entry.kind == FILE else 0
    info.linkname = entry.link_target or ""
    return info


def write_tar(entries: Iterable[LayerEntry], fileobj: BinaryIO, *, mtime: int) -> None:
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT,
                      encoding="utf-8") as tar:
        for entry in entries:
            info = tar_info(entry, mtime)
            if entry.kind != FILE:
                tar.addfile(info)
                continue
            with open(entry.source, "rb") as content:
                tar.addfile(info, content)
                if content.read(1):
                    raise OciBuildError(f"{entry.source!r} changed size while being written")
