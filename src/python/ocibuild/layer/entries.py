"""The entries of a layer, collected from files on disk under a fixed metadata policy.

Policy (why: a layer's digest must depend on content only, never on the umask, the git
checkout, the build user or the clock):
* owner uid/gid 0 with empty user/group names;
* regular files 0755 if any execute bit is set on disk, else 0644; directories 0755;
  symlinks 0777; an explicit mode in a mapping overrides;
* every parent directory is emitted explicitly (runtimes otherwise invent them, with modes
  that differ between tools);
* entries sorted by path components, so parents come before children;
* symlinks are kept, never followed; a relative link that climbs out of its input is refused.
  Absolute targets are kept: inside an image they resolve in the image's rootfs, not the host's;
* hard links are not detected by default: Pants may materialize identical files as hard
  links of one store file, and that must not change the layer's bytes.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

from ocibuild.errors import OciBuildError

FILE, DIR, SYMLINK, HARDLINK = "file", "dir", "symlink", "hardlink"
Mapping = Union[Sequence]  # (source, dest) or (source, dest, mode)


@dataclass(frozen=True)
class LayerEntry:
    path: str
    kind: str
    mode: int
    source: str | None = None
    link_target: str | None = None
    size: int = 0
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""


def normalize_dest(dest: str) -> str:
    parts = [p for p in dest.strip("/").split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        raise OciBuildError(
            f"destination {dest!r} must be a path inside the image without '..', e.g. 'app/x'"
        )
    return "/".join(parts)


def _file_mode(st_mode: int) -> int:
    return 0o755 if st_mode & 0o111 else 0o644


def _symlink(source: str, dest: str, root_dest: str, root_source: str) -> LayerEntry:
    target = os.readlink(source)
    if not target.startswith("/"):
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(dest), target))
        inside = resolved == root_dest or resolved.startswith(root_dest + "/")
        if resolved.startswith("..") or (root_dest and not inside and dest != root_dest):
            raise OciBuildError(
                f"symlink {source!r} -> {target!r} points outside the input "
                f"{root_source!r}; make it point inside the input, or copy the file instead"
            )
    return LayerEntry(dest, SYMLINK, 0o777, link_target=target)


def _entry(source: str, dest: str, mode: int | None, root_dest: str, root_source: str,
           links: dict | None) -> LayerEntry:
    st = os.lstat(source)
    if stat.S_ISLNK(st.st_mode):
        return _symlink(source, dest, root_dest, root_source)
    if stat.S_ISDIR(st.st_mode):
        return LayerEntry(dest, DIR, 0o755 if mode is None else mode)
    if not stat.S_ISREG(st.st_mode):
        raise OciBuildError(
            f"{source!r} is a device, FIFO or socket; layers hold files, directories and links"
        )
    if links is not None and st.st_nlink > 1:
        first = links.setdefault((st.st_dev, st.st_ino), dest)
        if first != dest:
            return LayerEntry(dest, HARDLINK, _file_mode(st.st_mode), link_target=first)
    file_mode = _file_mode(st.st_mode) if mode is None else mode
    return LayerEntry(dest, FILE, file_mode, source=source, size=st.st_size)


def _walk(source: str, dest: str, mode: int | None, links: dict | None) -> Iterable[LayerEntry]:
    yield _entry(source, dest, None if os.path.isdir(source) else mode, dest, source, links)
    if os.path.isdir(source) and not os.path.islink(source):
        stack = [(source, dest)]
        while stack:
            directory, prefix = stack.pop()
            with os.scandir(directory) as it:
                for item in sorted(it, key=lambda e: e.name):
                    child_dest = f"{prefix}/{item.name}"
                    yield _entry(item.path, child_dest, mode if not item.is_dir(
                        follow_symlinks=False) else None, dest, source, links)
                    if item.is_dir(follow_symlinks=False):
                        stack.append((item.path, child_dest))


def _sort_key(entry: LayerEntry) -> list[bytes]:
    return [p.encode() for p in entry.path.split("/")]


def collect_entries(mappings: Iterable[Sequence], *, preserve_hardlinks: bool = False
                    ) -> list[LayerEntry]:
    """Entries for `(source, dest[, mode])` mappings: files map to dest, dirs recursively."""
    links: dict | None = {} if preserve_hardlinks else None
    by_path: dict[str, LayerEntry] = {}
    origin: dict[str, str] = {}
    for mapping in mappings:
        source, dest = mapping[0], normalize_dest(mapping[1])
        mode = mapping[2] if len(mapping) > 2 else None
        if not os.path.lexists(source):
            raise OciBuildError(f"layer input {source!r} does not exist")
        for entry in _walk(source, dest, mode, links):
            previous = by_path.get(entry.path)
            if previous is not None and not (previous.kind == entry.kind == DIR):
                raise OciBuildError(
                    f"both {origin[entry.path]!r} and {entry.source or source!r} would be "
                    f"written to /{entry.path} in one layer; map them to different paths"
                )
            by_path[entry.path] = entry
            origin[entry.path] = entry.source or source
    for path in list(by_path):
        parent = posixpath.dirname(path)
        while parent and parent not in by_path:
            by_path[parent] = LayerEntry(parent, DIR, 0o755)
            parent = posixpath.dirname(parent)
        if parent and by_path[parent].kind != DIR:
            raise OciBuildError(f"/{parent} is not a directory but /{path} is written inside it")
    return sorted(by_path.values(), key=_sort_key)
