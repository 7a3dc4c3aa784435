"""The directories and symlinks of a base image, as a runtime's unpacker leaves them.

New layers are built without looking at the base, so they cannot know that the base holds
`/bin` as a symlink to `usr/bin` (every merged-/usr Debian, Ubuntu and Fedora). Unpacked on
such a base, a layer's directory entry `bin/` makes containerd and moby remove the link and
make an empty directory there (they keep an existing path only when both are directories):
`/bin/sh` and everything else reached through the link is gone from the image. A layer's file
or symlink where the base has a directory likewise removes that whole directory. The caller
checks its layers' paths against this tree before it assembles the image.

The tree is what the layers leave, bottom layer first: a later entry replaces an earlier one
(a directory stays a directory under a directory), a whiteout `.wh.NAME` removes NAME and all
below it, an opaque `.wh..wh..opq` empties its directory. Member names are read as unpackers
read them (leading `/` and `./` dropped; a `..` member is skipped: unpackers refuse it).
A base is untrusted: members are counted and decompressed bytes bounded.
"""

from __future__ import annotations

import posixpath
import tarfile
from typing import TYPE_CHECKING, BinaryIO, Dict, Iterable, List, Optional, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.layer.stream import decompressed, unreadable
from ocibuild.layer.tarinfo import open_stream
from ocibuild.layer.whiteouts import OPAQUE, PREFIX

if TYPE_CHECKING:
    from ocibuild.protocol.layer import BaseTree, BaseTreeRequest

MAX_MEMBERS = 4_000_000
# Decompressed bytes a layer may give per compressed byte (real layers: 2 to 10), plus slack.
MAX_RATIO, SLACK = 200, 64 << 20

DIR, SYMLINK, OTHER = "dir", "symlink", "other"


class _Node:
    __slots__ = ("kind", "target", "children")

    def __init__(self, kind: str, target: str = "") -> None:
        self.kind, self.target = kind, target
        self.children: Dict[str, "_Node"] = {}


class _Bounded:
    """A decompressed stream that stops at `limit` bytes, naming the layer."""

    def __init__(self, stream: BinaryIO, limit: int, digest: str) -> None:
        self._stream, self._left, self._digest = stream, limit, digest

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if size >= 0 else self._left + 1)
        self._left -= len(data)
        if self._left < 0:
            raise OciBuildError(f"the base's layer {self._digest} decompresses to more than "
                                f"{MAX_RATIO} times its size; the base image is hostile or "
                                "damaged: use another")
        return data


def _member_parts(name: str) -> Optional[List[str]]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return None if not parts or ".." in parts else parts


class Tree:
    def __init__(self) -> None:
        self.root = _Node(DIR)

    def _parent(self, parts: List[str]) -> _Node:
        """The directory holding `parts[-1]`, made (as unpackers do) where missing."""
        node = self.root
        for part in parts[:-1]:
            child = node.children.get(part)
            if child is None or child.kind != DIR:
                child = node.children[part] = _Node(DIR)
            node = child
        return node

    def _existing(self, parts: List[str]) -> Optional[_Node]:
        node: Optional[_Node] = self.root
        for part in parts:
            node = node.children.get(part) if node is not None and node.kind == DIR else None
        return node if node is not None and node.kind == DIR else None

    def apply(self, members: List[tarfile.TarInfo]) -> None:
        """One layer: its whiteouts first, as they delete from the layers below only (image
        spec: "whiteout files MUST only apply to resources in lower/parent layers"), then its
        entries in order."""
        named = [(parts, m) for m in members for parts in [_member_parts(m.name)] if parts]
        for parts, _ in named:
            name = parts[-1]
            if name.startswith(PREFIX):  # makes nothing, not even its parent (as umoci)
                directory = self._existing(parts[:-1])
                if directory is not None and name == OPAQUE:
                    directory.children.clear()
                elif directory is not None:
                    directory.children.pop(name[len(PREFIX):], None)
        for parts, member in named:
            if not parts[-1].startswith(PREFIX):
                self._add(parts, member)

    def _add(self, parts: List[str], member: tarfile.TarInfo) -> None:
        parent, name = self._parent(parts), parts[-1]
        if member.isdir():
            if parent.children.get(name, _Node(OTHER)).kind != DIR:
                parent.children[name] = _Node(DIR)
        elif member.issym():
            parent.children[name] = _Node(SYMLINK, member.linkname)
        else:
            parent.children[name] = _Node(OTHER)

    def kinds(self) -> Tuple[Tuple[str, ...], Tuple[Tuple[str, str], ...]]:
        """(directories, (symlink, target) pairs), sorted; the root is not listed."""
        directories, links = [], []
        stack = [("", self.root)]
        while stack:
            path, node = stack.pop()
            for name, child in node.children.items():
                here = f"{path}/{name}" if path else name
                if child.kind == DIR:
                    directories.append(here)
                    stack.append((here, child))
                elif child.kind == SYMLINK:
                    links.append((here, child.target))
        return tuple(sorted(directories)), tuple(sorted(links))






def base_tree(layers: Iterable[Tuple[str, str, int, BinaryIO]]) -> Tree:
    """The tree `layers` leave: (digest, media type, size, open blob), bottom layer first."""
    damaged = unreadable()
    tree, members = Tree(), 0
    for digest, media_type, size, blob in layers:
        with blob:
            stream = _Bounded(decompressed(media_type, blob), size * MAX_RATIO + SLACK, digest)
            try:
                layer = []
                with open_stream(stream) as tar:  # type: ignore[arg-type]
                    for member in tar:
                        members += 1
                        if members > MAX_MEMBERS:
                            raise OciBuildError(f"the base has more than {MAX_MEMBERS} "
                                                "files; the base image is hostile: use another")
                        layer.append(member)
                tree.apply(layer)
            except damaged as err:
                raise OciBuildError(f"the base's layer {digest} cannot be read as a "
                                    f"{media_type} ({type(err).__name__}); the base image is "
                                    "damaged") from None
    return tree


def resolved(path: str, links: Dict[str, str]) -> str:
    """Where a link's target lands, as an image path (for messages)."""
    target = links[path]
    joined = target if target.startswith("/") else posixpath.join("/" + posixpath.dirname(path),
                                                                  target)
    return posixpath.normpath(joined)


def tree_of(request: "BaseTreeRequest") -> "BaseTree":
    """The `BaseTree` of the image a `BaseTreeRequest` names (ocibuild.protocol.layer)."""
    from ocibuild.assemble import DEFAULT_PLATFORM
    from ocibuild.layout import OciLayout, resolve_image
    from ocibuild.platform import parse_platform
    from ocibuild.protocol.layer import BaseTree

    layout = OciLayout(request.layout)
    platform = parse_platform(request.platform) if request.platform else DEFAULT_PLATFORM
    image = resolve_image(layout, ref_name=request.ref_name, platform=platform)
    tree = base_tree((d.digest, d.media_type, d.size, layout.open_blob(d.digest))
                     for d in image.layers)
    directories, symlinks = tree.kinds()
    return BaseTree(directories, symlinks)
