"""Mount points of a RUN step's mounts: each target resolved inside the tree (a symlink on the
way is followed chroot-style, never out of the tree), made when missing, and removed after the
step when it is still empty, with the parents made for it, as BuildKit's MountStubsCleaner
does: a mount point the step needed is not part of its layer, and neither is what was mounted.
"""

from __future__ import annotations

import os
import stat
from typing import List, Sequence, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.executors import Mount
from ocibuild.rootfs.paths import NOT_LISTED, RUN_DIR

MAX_LINKS = 40


def resolve(root: str, target: str, what: str = "RUN --mount target") -> str:
    """`target` (absolute, in the image) with every symlink on disk replaced by its target,
    chroot-style ('..' stops at the root); missing components kept as given."""
    todo = [p for p in target.split("/") if p not in ("", ".")]
    done: List[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        full = os.path.join(root, *done, part)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            done.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise OciBuildError(f"{what} {target}: more than {MAX_LINKS} "
                                    "symbolic links on the way (a loop?)")
            link = os.readlink(full)
            if link.startswith("/"):
                done = []
            todo = [p for p in link.split("/") if p not in ("", ".")] + todo
            continue
        done.append(part)
    return "/".join(done)


def make(root: str, mounts: Sequence[Mount]) -> Tuple[List[Mount], List[str]]:
    """The mounts with their targets resolved, and the stubs made for them (relative paths,
    parents first)."""
    resolved, made = [], []
    try:
        for m in mounts:
            rel = resolve(root, m.target)
            if not rel or rel.split("/")[0] in (*NOT_LISTED, RUN_DIR):
                raise OciBuildError(
                    f"RUN --mount target {m.target}: cannot mount over "
                    f"{'/' + rel.split('/')[0] if rel else '/'} (the step's root, or where "
                    "the host's /dev, /proc and /sys are bound); choose another target")
            is_dir = os.path.isdir(m.source)
            current = root
            parts = rel.split("/")
            for i, part in enumerate(parts):
                current = os.path.join(current, part)
                last = i == len(parts) - 1
                try:
                    st = os.lstat(current)
                except FileNotFoundError:
                    if last and not is_dir:
                        os.close(os.open(current, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                    else:
                        os.mkdir(current, 0o755)
                    made.append("/".join(parts[:i + 1]))
                    continue
                if last and stat.S_ISDIR(st.st_mode) != is_dir:
                    raise OciBuildError(
                        f"RUN --mount target {m.target}: the image has a "
                        f"{'directory' if stat.S_ISDIR(st.st_mode) else 'file'} there, the "
                        f"mount is a {'directory' if is_dir else 'file'}")
                if not last and not stat.S_ISDIR(st.st_mode):
                    above = "/".join(parts[:i + 1])
                    raise OciBuildError(f"RUN --mount target {m.target}: /{above} is not a "
                                        "directory")
            resolved.append(Mount("/" + rel, m.source, m.readonly))
    except BaseException:
        remove(root, made)
        raise
    return resolved, made


def _no_link_above(root: str, rel: str) -> bool:
    current = root
    for part in rel.split("/")[:-1]:
        current = os.path.join(current, part)
        if not stat.S_ISDIR(os.lstat(current).st_mode):
            return False
    return True


def remove(root: str, made: Sequence[str]) -> None:
    """Deepest first, each only if still empty (what the step put there stays, as BuildKit).
    The step may have swapped a parent for a symlink since: then nothing is removed there,
    so the clean-up can never reach outside the tree."""
    for rel in reversed(made):
        path = os.path.join(root, rel)
        try:
            if not _no_link_above(root, rel):
                continue
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(path)  # refused when not empty: kept
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(path)
        except OSError:
            continue
