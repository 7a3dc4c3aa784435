"""Paths inside a RUN step's tree: normalized, and never resolved through a symlink.

Every write under the root goes through `parent_dir`, which walks the path one component at
a time with lstat, so a symlink in the tree (`etc -> /`, `a -> ../../..`) can never send a
write to the host: a link where a directory is needed is an error, not a door.
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import Iterator, List, Tuple

from ocibuild.errors import OciBuildError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
# The executor's own files live here during a step; no snapshot sees them.
RUN_DIR = ".ocibuild-run"
# The executor mounts or binds the host's own here; Docker never layers their contents.
NOT_LISTED = ("dev", "proc", "sys")


def normalize(name: str, what: str) -> str:
    """A tar member name as a relative image path ("" for the root itself)."""
    if "\0" in name:
        raise OciBuildError(f"{what}: entry name {name!r} holds a NUL byte")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OciBuildError(f"{what}: entry {name!r} climbs out of the image root with '..'; "
                            "the layer is malformed or hostile")
    return "/".join(parts)


def whiteout_target(path: str, what: str) -> str:
    """What the whiteout member `path` (normalized, its name `.wh.NAME`) deletes. NAME must be
    a name: `.wh.` and `.wh..` would name the directory itself, and `.wh...` its parent (at
    the top, the root's parent: a deletion outside the tree)."""
    directory, name = os.path.dirname(path), os.path.basename(path)[len(WHITEOUT):]
    if name in ("", ".", ".."):
        raise OciBuildError(f"{what}: the whiteout {path!r} names {name or 'nothing'!r}, not a "
                            "file; the layer is malformed or hostile")
    return os.path.join(directory, name)


def components(path: str) -> List[str]:
    return path.split("/") if path else []


def parent_dir(root: str, path: str, what: str, create: bool = True) -> str:
    """The directory on disk holding `path`, its ancestors checked (or made) one by one."""
    current = root
    for part in components(path)[:-1]:
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(current, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise OciBuildError(f"{what}: /{path} lies under /{os.path.relpath(current, root)}, "
                                "which is not a directory (a symlink is never followed here)")
    return current


def walk(root: str) -> Iterator[Tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything under `root` a snapshot lists, symlinks not
    followed (see snapshot.py for what is left out)."""
    stack = [("", root)]
    while stack:
        prefix, directory = stack.pop()
        with os.scandir(directory) as listing:
            for item in listing:
                if not prefix and item.name == RUN_DIR:
                    continue
                st = item.stat(follow_symlinks=False)
                if stat.S_ISSOCK(st.st_mode):
                    continue  # as Docker: a socket is never layered
                yield prefix + item.name, st
                if stat.S_ISDIR(st.st_mode) and not (not prefix and item.name in NOT_LISTED):
                    stack.append((prefix + item.name + "/", item.path))


def on_disk(root: str, path: str) -> str:
    return os.path.join(root, path) if path else root


def remove_tree(path: str) -> None:
    """`path` and all under it, a directory without write or search permission for us made
    ours first (a step's copy of a read-only mount; a tree a kill stopped between a mkdir and
    its chmod); what still cannot go is left."""
    def unlock(func, name, _exc) -> None:
        try:
            os.chmod(os.path.dirname(name), 0o700)
            func(name)
        except OSError:
            pass
    shutil.rmtree(path, onerror=unlock)
