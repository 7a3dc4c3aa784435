"""A stage's filesystem as a model: every path with its kind, mode, owner, link target and
where its bytes are, built from layer tars (whiteouts honoured) and from the COPY/ADD layers
the build adds. Nothing of an image is extracted to disk: COPY --from, --chown by name and
WORKDIR read this model, and a file's bytes are streamed out of its layer only when a later
layer needs them (`ocibuild.dockerfile.content`).

Paths are image paths without a leading "/" ("" is the root). `resolve` follows symlinks the
way a chroot does (an absolute target starts again at the image root, ".." stops at the
root, at most 40 links), so nothing a base image holds can name a path outside it.
"""

from __future__ import annotations

import posixpath
import tarfile
from dataclasses import dataclass, replace
from typing import BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Union

from ocibuild.errors import OciBuildError
from ocibuild.layer import entries as layer

FILE, DIR, SYMLINK, OTHER = "file", "dir", "symlink", "other"
MAX_LINKS = 40
MAX_ENTRIES = 2_000_000  # a base of a million files is huge; more is a bomb
MAX_MEMBERS = 4_000_000  # a layer's members (whiteouts add no path, but each costs)
# Deleting a directory, or emptying one (opaque), looks at every path of the model: a layer
# of a million whiteouts of directories over a million paths would take days. A real base
# (100,000 paths, a thousand such deletions) looks at 10^8.
MAX_WORK = 2_000_000_000


@dataclass(frozen=True)
class LayerMember:
    """A regular file's bytes in a layer blob: the n-th member of its tar stream."""

    layer: str  # the blob digest
    index: int
    size: int


Content = Union[None, str, LayerMember]  # None: no bytes; str: a file on disk


@dataclass(frozen=True)
class Node:
    kind: str
    mode: int = 0o755  # permission bits (with setuid/setgid/sticky), no file type
    uid: int = 0
    gid: int = 0
    link: str = ""  # a symlink's target, verbatim
    size: int = 0
    content: Content = None
    # What the node came from, for messages ("the context", "stage build", "alpine:3").
    origin: str = ""


def normalize(path: str) -> str:
    """An image path without leading "/", ".." stopped at the root: "/a/../../b/" -> "b"."""
    parts: List[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def join(base: str, path: str) -> str:
    return normalize(path if path.startswith("/") else f"{base}/{path}")


class Tree:
    def __init__(self, nodes: Optional[Dict[str, Node]] = None) -> None:
        self.nodes: Dict[str, Node] = dict(nodes or {"": Node(DIR)})
        self.nodes.setdefault("", Node(DIR))

    def copy(self) -> "Tree":
        return Tree(self.nodes)

    def get(self, path: str) -> Optional[Node]:
        return self.nodes.get(path)

    def children(self, path: str) -> List[str]:
        prefix = path + "/" if path else ""
        return sorted(p for p in self.nodes if p.startswith(prefix) and p != path
                      and "/" not in p[len(prefix):])

    def under(self, path: str) -> Iterator[str]:
        """Every path below `path` (not itself), parents before children."""
        prefix = path + "/" if path else ""
        for p in sorted(self.nodes, key=lambda p: p.split("/")):
            if p != path and p.startswith(prefix):
                yield p

    def resolve(self, path: str, follow_last: bool = True,
                lookup: Optional[Callable[[str], Optional[Node]]] = None) -> str:
        """`path` with every symlink on the way replaced by its target, chroot-style; the
        last component followed only with `follow_last`. Missing components stay as given.
        `lookup` finds a node (default: this tree's), for a view with pending writes."""
        find = lookup or self.nodes.get
        todo = [p for p in normalize(path).split("/") if p]
        done: List[str] = []
        links = 0
        while todo:
            part = todo.pop(0)
            candidate = "/".join([*done, part])
            node = find(candidate)
            if node is not None and node.kind == SYMLINK and (todo or follow_last):
                links += 1
                if links > MAX_LINKS:
                    raise OciBuildError(f"/{normalize(path)}: more than {MAX_LINKS} symbolic "
                                        "links on the way (a loop?)")
                target = node.link
                if target.startswith("/"):
                    done = []
                todo = [p for p in target.split("/") if p] + todo
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            if part == ".":
                continue
            done.append(part)
        return "/".join(done)

    def remove(self, path: str) -> int:
        """`path` and everything under it; the number of paths looked at (the cost)."""
        node = self.nodes.get(path)
        if path and (node is None or node.kind != DIR):
            self.nodes.pop(path, None)  # nothing under it: no scan (a whiteout of nothing is free)
            return 1
        prefix = path + "/" if path else ""
        for p in [p for p in self.nodes if p == path or p.startswith(prefix)]:
            self.nodes.pop(p, None)
        return len(self.nodes) + 1

    def put(self, path: str, node: Node) -> None:
        """Set `path` (its parents must be directories); a non-directory replaces whatever
        was there, a directory over a directory keeps the children."""
        old = self.nodes.get(path)
        if old is not None and not (old.kind == DIR and node.kind == DIR):
            self.remove(path)
        self.nodes[path] = node

    def read(self, path: str, opener: Callable[[Content], BinaryIO], limit: int
             ) -> Optional[bytes]:
        """A small file's bytes (e.g. /etc/passwd), links followed; None when absent."""
        node = self.nodes.get(self.resolve(path))
        if node is None or node.kind != FILE:
            return None
        if node.size > limit:
            raise OciBuildError(f"/{path} is over {limit} bytes")
        if node.content is None:
            return b""
        with opener(node.content) as f:
            return f.read(limit + 1)[:limit]


def _member_path(name: str) -> Optional[str]:
    if ".." in name.split("/"):
        return None  # unpackers refuse such a member: it would not be in the image
    return normalize(name) or None


def apply_layer(tree: Tree, tar: Iterable[tarfile.TarInfo], digest: str, origin: str) -> None:
    """The members of one layer over `tree`, as an unpacker applies them: whiteouts delete,
    an opaque marker empties its directory, hard links share their target's bytes."""
    work = 0  # paths looked at by whiteouts and opaque markers, bounded: see MAX_WORK
    for index, member in enumerate(tar):
        if len(tree.nodes) > MAX_ENTRIES or index >= MAX_MEMBERS:
            raise OciBuildError(f"{origin}: more than {MAX_ENTRIES} paths or {MAX_MEMBERS} "
                                "members in a layer; refused")
        if work > MAX_WORK:
            raise OciBuildError(f"{origin}: its whiteouts and opaque directories delete from "
                                f"a tree of {len(tree.nodes)} paths over {MAX_WORK} times; "
                                "refused (a layer built to make the build hang)")
        path = _member_path(member.name)
        if path is None:
            continue
        parent, base = posixpath.split(path)
        if base == ".wh..wh..opq":
            work += len(tree.nodes)
            for p in list(tree.under(parent)):
                tree.nodes.pop(p, None)
            continue
        if base.startswith(".wh."):
            work += tree.remove(posixpath.join(parent, base[4:]))
            continue
        _ensure_parents(tree, path)
        mode = member.mode & 0o7777
        if member.isdir():
            node = Node(DIR, mode, member.uid, member.gid, origin=origin)
        elif member.issym():
            node = Node(SYMLINK, 0o777, member.uid, member.gid, link=member.linkname,
                        origin=origin)
        elif member.islnk():
            target = tree.get(_member_path(member.linkname) or "")
            if target is None or target.kind != FILE:
                continue  # a link to nothing: unpackers fail or skip; it holds no bytes
            node = replace(target, mode=mode, uid=member.uid, gid=member.gid)
        elif member.isfile():
            node = Node(FILE, mode, member.uid, member.gid, size=member.size,
                        content=LayerMember(digest, index, member.size), origin=origin)
        else:
            node = Node(OTHER, mode, member.uid, member.gid, origin=origin)
        tree.put(path, node)


class _Written:
    """A layer entry as a tar member: what `ocibuild.layer.tar_writer.header` writes of it,
    so what a reader of that tar gives `apply_layer` (name, mode, owner, size, link name)."""

    __slots__ = ("name", "mode", "uid", "gid", "size", "linkname", "kind")

    def __init__(self, entry: layer.LayerEntry) -> None:
        self.name, self.kind = entry.path, entry.kind
        self.mode, self.uid, self.gid = entry.mode & 0o7777, entry.uid, entry.gid
        self.size = entry.size if entry.kind == layer.FILE else 0
        self.linkname = entry.link_target or ""

    def isdir(self) -> bool:
        return self.kind == layer.DIR

    def issym(self) -> bool:
        return self.kind == layer.SYMLINK

    def islnk(self) -> bool:
        return self.kind == layer.HARDLINK

    def isfile(self) -> bool:
        return self.kind == layer.FILE


def apply_entries(tree: Tree, entries: Iterable[layer.LayerEntry], digest: str,
                  origin: str) -> None:
    """The layer `digest` that `write_tar` made of `entries` (one member each, in their order)
    over `tree`, as `apply_layer` reads it from the blob, without reading the blob back: a RUN
    step's layer of 10,000 files is 0.4 s of gunzip and headers (bench/dockerfile_bench.py
    (b)). tests/core/rootfs_diff_property_test.py holds the two to the same tree."""
    apply_layer(tree, (_Written(e) for e in entries), digest, origin)  # type: ignore[arg-type]


def _ensure_parents(tree: Tree, path: str) -> None:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        parent = "/".join(parts[:i])
        node = tree.nodes.get(parent)
        if node is None or node.kind != DIR:
            tree.put(parent, Node(DIR))
