"""A few files of a base image as an unpacker leaves them on disk, read without unpacking.

What a runtime reads as /etc/passwd is whatever the layers' extraction left there, so the
base's layers are replayed the way an extractor applies them (umoci's `tar_extract.go`, which
containerd and Docker agree with on well-formed layers) into a model of the tree that holds
names, kinds and link targets only, no contents:

* layers bottom first; within a layer members in order, so the last entry of a path wins;
* a member's parent directory is resolved through symlinks inside the root (an absolute link
  starts again at the root, `..` stops at it), its last component is not: a member replaces
  what is there (a directory kept only when a directory comes), a link is never written
  through;
* a hardlink names a member as it stands at that point: it shares that node (a file linked
  to keeps the content it had when linked, even if the path is rewritten later);
* `.wh.NAME` deletes NAME, `.wh..wh..opq` empties its directory, each only of what the layers
  below left: what this layer wrote itself (and the directories above it) stays.

A path is then resolved as the kernel would inside the container (every symlink followed, at
most 40), and its file's bytes read from the one layer member that holds them, capped. What
unpackers disagree on or refuse (a `..` member, a hardlink to nothing, a member under a
file), and what is no file at the end (a directory, a FIFO, a device, a symlink loop) is one
error naming the base's layer or the path: never a guess.

Decompression is bounded, since a few KiB of gzip or zstd can expand without end: over all
layers read at most MAX_TOTAL bytes, and none past MAX_RATIO times its compressed size (after
RATIO_FLOOR bytes, so small layers of text are never held to it).
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Callable, Dict, List, Optional, Sequence, Set, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.layer.stream import decompressed, unreadable
from ocibuild.layer.tarinfo import open_stream
from ocibuild.untrusted import shown as _shown

MAX_TOTAL = 32 << 30  # a big distribution base is a few GiB unpacked
MAX_RATIO = 100  # real layers compress 2-10x; a run of zeros to 1000x (gzip) and beyond (zstd)
RATIO_FLOOR = 64 << 20
MAX_LINKS = 40  # the kernel's limit when it resolves a path (ELOOP beyond)
MAX_LINKS_UNPACK = 255  # filepath-securejoin's, which umoci resolves member parents with
# What a base may ask of the model: a big distribution base has ~10^5 paths of ~8 names.
MAX_MEMBERS = 2_000_000
MAX_STEPS = 10_000_000  # a few seconds of Python
MAX_NAME = 4096  # PATH_MAX: a longer member name is one no extractor can write

Layer = Tuple[str, str, Callable[[], BinaryIO]]  # digest, media type, open the blob
Parts = Tuple[str, ...]

FILE, DIR, LINK, OTHER = "file", "directory", "symlink", "special file"
_KINDS = {tarfile.REGTYPE: FILE, tarfile.AREGTYPE: FILE, tarfile.GNUTYPE_SPARSE: FILE,
          tarfile.DIRTYPE: DIR, tarfile.SYMTYPE: LINK, tarfile.CHRTYPE: "character device",
          tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "FIFO"}
WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"


class Node:
    """One inode: a hardlink shares it. `source`: (layer, member number) holding a file's
    bytes; `target`: a symlink's. Slots, and children only for directories: a base has a
    node per path, up to MAX_MEMBERS of them."""

    __slots__ = ("kind", "children", "target", "source", "size")

    def __init__(self, kind: str, target: str = "", source: Tuple[int, int] = (-1, -1),
                 size: int = 0) -> None:
        self.kind, self.target, self.source, self.size = kind, target, source, size
        self.children: Dict[str, "Node"] = {} if kind == DIR else _NO_CHILDREN


_NO_CHILDREN: Dict[str, Node] = {}


def shown(text: str) -> str:
    """A name from the base, quoted, control characters escaped, long ones cut."""
    return _shown(text) if not text.isprintable() or len(text) > 200 else repr(text)


class Refused(Exception):
    """What an unpacker would fail on, or disagree about; said with the layer by the caller."""


class _Tree:
    def __init__(self, max_steps: int = MAX_STEPS) -> None:
        self.root = Node(DIR)
        self.steps, self.max_steps = 0, max_steps  # names resolved so far, over all members

    def lookup(self, parts: Parts) -> Optional[Node]:
        node: Optional[Node] = self.root
        for part in parts:
            if node is None or node.kind != DIR:
                return None
            node = node.children.get(part)
        return node

    def join(self, parts: Sequence[str], limit: int, strict: bool = False) -> Optional[Parts]:
        """`parts` resolved inside the root, every symlink followed: the real path. As
        filepath-securejoin (umoci's, for a member's directory) does, a missing name is taken
        as it is; `strict`, as the kernel does when the container opens it: None when a name
        on the way is missing or no directory."""
        todo = list(reversed(parts))  # a stack: a link's target goes on top
        real: List[str] = []
        nodes: List[Optional[Node]] = [self.root]  # nodes[i]: the node at real[:i]
        links = 0
        while todo:
            self.steps += 1
            if self.steps > self.max_steps:
                raise Refused(f"its paths take over {self.max_steps} steps to resolve (deep "
                              "symlink chains), more than any base needs")
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if real:
                    real.pop()
                    nodes.pop()
                continue
            here = nodes[-1]
            node = here.children.get(part) if here is not None and here.kind == DIR else None
            if node is not None and node.kind == LINK:
                links += 1
                if links > limit:
                    raise Refused(f"more than {limit} symlinks on the way (a loop)")
                if node.target.startswith("/"):
                    real, nodes = [], [self.root]
                todo.extend(reversed(node.target.split("/")))
                continue
            if strict and todo and (node is None or node.kind != DIR):
                return None
            real.append(part)
            nodes.append(node)
        return tuple(real)

    def directory(self, parts: Parts) -> Node:
        """`parts` (already resolved) as a directory, made with its parents if missing."""
        node = self.root
        for i, part in enumerate(parts):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = Node(DIR)
            elif child.kind != DIR:
                raise Refused(f"{shown('/' + '/'.join(parts[:i + 1]))} is a {child.kind}, "
                              "and a member is written under it")
            node = child
        return node


def _clean(name: str) -> Parts:
    parts = name.split("/")
    if ".." in parts:
        # umoci cleans `..` away, containerd and Docker refuse the layer: they disagree.
        raise Refused(f"the member {shown(name)} has a '..' component")
    return tuple(p for p in parts if p not in ("", "."))


class _Replay:
    """The tree as one layer after another leaves it."""

    def __init__(self, budget: "Budget") -> None:
        self.tree = _Tree(budget.steps)
        self.members, self.max_members = 0, budget.members

    def layer(self, index: int, members) -> None:
        upper: Set[Parts] = set()  # this layer's paths and their directories
        self.whited: Set[Tuple[Parts, bool]] = set()  # whiteouts done in this layer
        for number, member in enumerate(members):
            self.members += 1
            if self.members > self.max_members:
                raise Refused(f"the base has over {self.max_members} members in its layers, "
                              "more than any base has")
            if len(member.name) > MAX_NAME or len(member.linkname) > MAX_NAME:
                raise Refused(f"the member {shown(member.name)} has a name or link target "
                              f"over {MAX_NAME} characters, which no extractor can write")
            parts = _clean(member.name)
            if not parts:
                if member.type != tarfile.DIRTYPE:
                    raise Refused(f"the member {shown(member.name)} turns the root into "
                                  "another kind of file")
                continue
            where = self.tree.join(parts[:-1], MAX_LINKS_UNPACK)  # type: ignore[assignment]
            name = parts[-1]
            if name.startswith(WHITEOUT):
                self._whiteout(where, name, upper)
                continue
            kind = _KINDS.get(member.type)
            if kind is None and not member.islnk():
                raise Refused(f"the member {shown(member.name)} is of tar type "
                              f"{member.type!r}, which unpackers do not agree on")
            parent = self.tree.directory(where)
            existing = parent.children.get(name)
            if not (existing is not None and existing.kind == DIR and kind == DIR):
                parent.children.pop(name, None)
                if member.islnk():
                    parent.children[name] = self._hardlink(member)
                elif kind == DIR:
                    parent.children[name] = Node(DIR)
                else:
                    parent.children[name] = Node(kind, target=member.linkname,
                                                 source=(index, number), size=member.size)
            path = (*where, name)
            upper.update(path[:i] for i in range(1, len(path) + 1))

    def _hardlink(self, member: tarfile.TarInfo) -> Node:
        parts = _clean(member.linkname)
        node = self.tree.lookup((*self.tree.join(parts[:-1], MAX_LINKS_UNPACK), *parts[-1:]))
        if node is None or node.kind == DIR or not parts:
            raise Refused(f"the hardlink {shown(member.name)} names "
                          f"{shown(member.linkname)}, which is "
                          f"{'not there' if node is None else 'a directory'} at that point")
        return node

    def _whiteout(self, where: Parts, name: str, upper: Set[Parts]) -> None:
        opaque = name == OPAQUE
        path = where if opaque else (*where, name[len(WHITEOUT):])
        if not opaque and path[-1] in ("", ".", ".."):
            raise Refused(f"the whiteout {shown(name)} names no file")
        # What the first one left is all of this layer's (or nothing): the same whiteout again
        # would walk the same tree for nothing, and a layer could repeat it without end.
        if (path, opaque) in self.whited:
            return
        self.whited.add((path, opaque))
        node = self.tree.lookup(path)
        if node is None:
            return
        if path not in upper and not opaque:
            parent = self.tree.lookup(path[:-1])
            assert parent is not None
            del parent.children[path[-1]]
        elif node.kind == DIR:
            self._purge(node, path, upper)

    def _purge(self, directory: Node, path: Parts, upper: Set[Parts]) -> None:
        """Remove what lower layers left under `path`, keeping this layer's own."""
        for child_name, child in list(directory.children.items()):
            child_path = (*path, child_name)
            if child_path not in upper:
                del directory.children[child_name]
            elif child.kind == DIR:
                self._purge(child, child_path, upper)

    def final(self, path: str) -> Optional[Node]:
        """What opening `path` in the container finds: a file node, or None (no file)."""
        try:
            real = self.tree.join(_clean(path), MAX_LINKS, strict=True)
        except Refused as err:
            raise Refused(f"/{path}: {err}") from None
        node = None if real is None else self.tree.lookup(real)
        if node is not None and node.kind != FILE:
            raise Refused(f"/{path} is a {node.kind}" + (
                f" (/{'/'.join(real)})" if real != _clean(path) else "") + ", not a file")
        return node


    def place(self, path: str) -> str:
        parts = _clean(path)
        try:
            real = (*self.tree.join(parts[:-1], MAX_LINKS_UNPACK), *parts[-1:])
        except Refused as err:
            raise OciBuildError(f"the base's /{path}: {err}") from None
        for i in range(1, len(real)):
            node = self.tree.lookup(real[:i])
            if node is not None and node.kind != DIR:
                raise OciBuildError(f"the base's /{'/'.join(real[:i])} is a {node.kind}, so "
                                    f"/{path} cannot be made under it")
        return "/".join(real)


class _Counting(io.RawIOBase):
    """Counts the bytes read through it: the compressed side of the ratio."""

    def __init__(self, raw: BinaryIO, budget: "Budget") -> None:
        self.raw, self.count, self.budget = raw, 0, budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        buffer[:len(data)] = data
        self.count += len(data)
        self.budget.compressed += len(data)
        return len(data)


class Budget:
    """What reading a base may cost: decompressed bytes over all its layers, the ratio,
    members modelled, names resolved."""

    def __init__(self, total: int = MAX_TOTAL, ratio: int = MAX_RATIO,
                 floor: int = RATIO_FLOOR, members: int = MAX_MEMBERS,
                 steps: int = MAX_STEPS) -> None:
        self.left, self.ratio, self.floor = total, ratio, floor
        self.total, self.members, self.steps = total, members, steps
        self.compressed = self.expanded = 0  # over all layers so far: many small bombs add up


class _Bounded(io.RawIOBase):
    """The decompressed stream, stopped with an error at the budget or the ratio."""

    def __init__(self, stream: BinaryIO, compressed: _Counting, budget: Budget) -> None:
        self.stream, self.compressed, self.budget, self.count = stream, compressed, budget, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        self.count += len(data)
        self.budget.left -= len(data)
        if self.budget.left < 0:
            raise Refused(f"it expands past {self.budget.total} bytes (with the layers "
                          "read before it), more than any base is unpacked")
        if self.count > self.budget.floor and \
                self.count > self.budget.ratio * max(self.compressed.count, 1):
            raise Refused(f"it expands to over {self.count} bytes from "
                          f"{self.compressed.count}, more than {self.budget.ratio} times its "
                          "size (a decompression bomb)")
        self.budget.expanded += len(data)
        if self.budget.expanded > self.budget.floor and \
                self.budget.expanded > self.budget.ratio * max(self.budget.compressed, 1):
            raise Refused(f"with the layers read before it, the base expands to over "
                          f"{self.budget.expanded} bytes from {self.budget.compressed}, more "
                          f"than {self.budget.ratio} times its size (decompression bombs)")
        buffer[:len(data)] = data
        return len(data)






class _Reading:
    """One layer opened as a bounded tar stream; errors name the layer."""

    def __init__(self, layer: Layer, budget: Budget) -> None:
        self.digest, self.media_type, self.open_blob = layer
        self.budget = budget

    def members(self, use: Callable) -> object:
        try:
            with self.open_blob() as blob:
                counted = _Counting(blob, self.budget)
                stream = io.BufferedReader(_Bounded(
                    decompressed(self.media_type, io.BufferedReader(counted)), counted,
                    self.budget), 1 << 16)
                with open_stream(stream) as tar:
                    return use(tar)
        except Refused as err:
            raise OciBuildError(f"the base's layer {self.digest}: {err}; the base cannot be "
                                "read as an unpacker would read it") from None
        except unreadable() as err:  # corrupt gzip, zstd or tar: the base's bytes, not a bug
            raise OciBuildError(f"the base's layer {self.digest} cannot be read as a "
                                f"{shown(self.media_type)} ({type(err).__name__}: "
                                f"{shown(str(err))}); the base image is damaged") from None


@dataclass(frozen=True)
class BaseFiles:
    """The files asked for (absent: no file there), and `place`: where a member of a layer
    on top, named `path`, lands (its directories resolved through the base's symlinks)."""

    files: Dict[str, bytes]
    place: Callable[[str], str]


def read_files(layers: Sequence[Layer], paths: Sequence[str], max_file: int,
               budget: Optional[Budget] = None) -> BaseFiles:
    """Each of `paths` (relative, e.g. "etc/passwd") that is a file in the image `layers`
    (bottom first) make, with its bytes. A file over `max_file` bytes is an error."""
    budget = budget or Budget()
    replay = _Replay(budget)
    for index, layer in enumerate(layers):
        reading = _Reading(layer, budget)
        reading.members(lambda tar, index=index: replay.layer(index, tar))
    wanted: Dict[Tuple[int, int], Tuple[int, List[str]]] = {}
    for path in paths:
        try:
            node = replay.final(path)
        except Refused as err:
            raise OciBuildError(f"the base's {err}; it must be a file (or a symlink to one "
                                "inside the image)") from None
        if node is None:
            continue
        if node.size > max_file:
            raise OciBuildError(f"the base's /{path} is over {max_file} bytes")
        wanted.setdefault(node.source, (node.size, []))[1].append(path)
    found: Dict[str, bytes] = {}
    for index in sorted({layer for layer, _ in wanted}):
        numbers = {n: p for (i, n), p in wanted.items() if i == index}
        _Reading(layers[index], budget).members(lambda tar: _contents(tar, numbers, found))
    return BaseFiles(found, replay.place)


def _contents(tar: tarfile.TarFile, numbers: Dict[int, Tuple[int, List[str]]],
              found: Dict[str, bytes]) -> None:
    """The bytes of the members numbered so, read again (the model kept no content). They
    are what the first reading saw: the layer is read anew, so say so if it changed."""
    last = max(numbers)
    for number, member in enumerate(tar):
        if number in numbers:
            size, paths = numbers[number]
            data = tar.extractfile(member) if _KINDS.get(member.type) == FILE else None
            content = data.read(size + 1) if data else b""
            if data is None or len(content) != size:
                raise Refused(f"the member {shown(member.name)} changed between two readings")
            for path in paths:
                found[path] = content
        if number == last:
            return
