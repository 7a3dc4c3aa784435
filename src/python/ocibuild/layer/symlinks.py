"""Symlinks must not climb out of the input they were found in.

A link found in a mapped directory that points outside that directory almost always means
the file it names was meant to be in the image and is not: the image would hold a dangling
link, or one that silently resolves to whatever the base has there. So it is an error.

Targets are resolved the way the kernel will resolve them in the image: component by
component, following the input's own links. Plain lexical normalization would be fooled by
`a -> ..` followed by `b -> a/../x`, which stays inside on paper and escapes in practice.

Absolute targets are allowed by default: inside an image they resolve in the image's root
filesystem, never the host's, and images routinely hold `/usr/bin/x -> /bin/busybox`.
A resolution that passes through an absolute link is likewise the image's business.
Callers that want inputs to be self-contained pass `allow_absolute_symlinks=False`.
"""

from __future__ import annotations

from collections import deque
from typing import Dict, Optional

from ocibuild.errors import OciBuildError

# As Linux's MAXSYMLINKS: more hops than this is a loop for all practical purposes.
MAX_HOPS = 40
_THROUGH_ABSOLUTE = "<absolute>"


def _resolve(path: str, links: Dict[str, str], describe: str) -> Optional[str]:
    """Image path the link at `path` names; None if it climbs above the image root."""
    resolved = path.split("/")[:-1]
    todo = deque(links[path].split("/"))
    hops = 0
    while todo:
        part = todo.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        resolved.append(part)
        current = "/".join(resolved)
        # Only links in the middle are followed; the last one is checked on its own.
        if current in links and todo:
            hops += 1
            if hops > MAX_HOPS:
                raise OciBuildError(f"{describe} goes through more than {MAX_HOPS} symlinks "
                                    "(a loop?); fix the links")
            target = links[current]
            if target.startswith("/"):
                return _THROUGH_ABSOLUTE
            resolved.pop()
            todo.extendleft(reversed(target.split("/")))
    return "/".join(resolved)


def _inside(root: str, path: str) -> bool:
    return not root or path == root or path.startswith(root + "/")


def check_symlinks(links: Dict[str, str], sources: Dict[str, str], *, root: str,
                   root_source: str, allow_absolute: bool) -> None:
    """Check every link of one input. `links`: image path -> target; `sources`: image path ->
    path on disk (for messages); `root`: the image path the input was mapped to ("" for a
    lone link, which may point anywhere inside the image)."""
    for path in sorted(links):
        target = links[path]
        describe = f"symlink {sources[path]!r} -> {target!r}"
        if target.startswith("/"):
            if allow_absolute:
                continue
            raise OciBuildError(
                f"{describe} is absolute, and absolute symlinks are not allowed here; make it "
                f"relative inside the input {root_source!r} or copy the file"
            )
        resolved = _resolve(path, links, describe)
        if resolved == _THROUGH_ABSOLUTE:
            continue
        if resolved is None or not _inside(root, resolved):
            raise OciBuildError(
                f"{describe} points outside the input {root_source!r}; make it relative "
                "inside the input or copy the file"
            )
