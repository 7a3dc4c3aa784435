"""What a COPY (or ADD of local files) writes where, as docker decides it.

* A source is a path in the source tree (the context, a stage, an image), ".." stopped at its
  root; a source that is a symlink is followed (inside the source tree), as BuildKit does.
  Wildcards (`*`, `?`, `[...]`, Go's filepath.Match per path component) may match many or
  none; a plain source that does not exist is an error.
* A directory source copies its contents, not itself.
* The destination is a directory when it ends in "/" (or is "." or ""), when there are
  several sources or a wildcard matched several, or when it already is a directory in the
  image; a file is then put under its own name. Otherwise a file source becomes the
  destination path. Several source arguments need a destination ending in "/" (docker's
  rule). A relative destination is under WORKDIR. Symlinks on the way to the destination are
  followed inside the image (a COPY to /lib/x on a merged-/usr base writes /usr/lib/x).
* Owners: --chown's for everything copied and for the directories the copy creates; else
  0:0 from the context, the source's own from another stage or image (BuildKit keeps them).
  --chmod sets the permission bits of everything copied; else they are the source's.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple

from ocibuild.dockerfile import globmatch
from ocibuild.dockerfile.fstree import DIR, FILE, OTHER, SYMLINK, Node, Tree, join, normalize
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

Write = Tuple[str, Node]


@dataclass(frozen=True)
class CopySpec:
    sources: Tuple[str, ...]
    dest: str
    workdir: str = "/"
    owner: Optional[Tuple[int, int]] = None
    mode: Optional[int] = None
    keep_owner: bool = False  # from another stage or image
    where: str = "COPY"  # "Dockerfile:12: COPY", for messages


def has_wildcard(path: str) -> bool:
    i = 0
    while i < len(path):
        if path[i] == "\\":
            i += 2
            continue
        if path[i] in "*?[":
            return True
        i += 1
    return False


def _component(pattern: str, where: str) -> globmatch.Matcher:
    """Go's filepath.Match for one path component, in linear time (globmatch.py)."""
    tokens: List[globmatch.Token] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            tokens.append((globmatch.STAR, None))
        elif ch == "?":
            tokens.append((globmatch.ANY1, None))
        elif ch == "\\" and i + 1 < n:
            i += 1
            tokens.append((globmatch.LIT, pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise OciBuildError(f"{where}: the pattern {shown(pattern)} has a [ without ]")
            body = pattern[i + 1:end]
            negate = body.startswith("^")
            body = re.sub(r"\\(.)", r"\1", body[1:] if negate else body)
            chars = "".join(c if c == "-" else re.escape(c) for c in body)
            try:
                tokens.append((globmatch.CLASS,
                               globmatch.char_class(("^" if negate else "") + chars)))
            except re.error:
                raise OciBuildError(f"{where}: the pattern {shown(pattern)} has a character "
                                    "class that is not valid") from None
            i = end
        else:
            tokens.append((globmatch.LIT, ch))
        i += 1
    return globmatch.Matcher(tokens)


def glob(tree: Tree, pattern: str, where: str) -> List[str]:
    parts = [p for p in normalize(pattern).split("/") if p]
    found = [""]
    kids: Optional[Dict[str, List[str]]] = None
    for part in parts:
        regex = _component(part, where) if has_wildcard(part) else None
        nxt = []
        for base in found:
            node = tree.get(base)
            if node is None or node.kind != DIR:
                continue
            if regex is None:
                candidate = f"{base}/{part}" if base else part
                if candidate in tree.nodes:
                    nxt.append(candidate)
                continue
            if kids is None:
                kids = _children_index(tree)
            for child in kids.get(base, ()):
                if regex.match(child.rpartition("/")[2]):
                    nxt.append(child)
        found = nxt
    return sorted(found)


def _children_index(tree: Tree) -> Dict[str, List[str]]:
    """Each directory's children, made once for a pattern: Tree.children scans every path,
    so `*/*` over 100,000 directories was 10^10 comparisons."""
    index: Dict[str, List[str]] = {}
    for path in tree.nodes:
        if path:
            index.setdefault(path.rpartition("/")[0], []).append(path)
    for children in index.values():
        children.sort()
    return index


def _matches(tree: Tree, source: str, spec: CopySpec) -> List[str]:
    if has_wildcard(source):
        return glob(tree, source, spec.where)
    path = normalize(source)
    if path not in tree.nodes and tree.resolve(path) not in tree.nodes:
        raise OciBuildError(f"{spec.where}: {shown(source)} is not in {_origin(tree)} "
                            "(or .dockerignore leaves it out)")
    return [path]


def _origin(tree: Tree) -> str:
    return tree.nodes[""].origin or "the source"


def _owned(node: Node, spec: CopySpec) -> Node:
    uid, gid = spec.owner if spec.owner else ((node.uid, node.gid) if spec.keep_owner else (0, 0))
    mode = node.mode if spec.mode is None or node.kind == SYMLINK else spec.mode
    return replace(node, uid=uid, gid=gid, mode=mode)


class _Dest:
    """The destination tree as the copy goes on: directories it must create on the way."""

    def __init__(self, tree: Tree, spec: CopySpec) -> None:
        self.tree, self.spec = tree, spec
        self.writes: Dict[str, Node] = {}
        self.owner = spec.owner or (0, 0)

    def node(self, path: str) -> Optional[Node]:
        return self.writes.get(path) or self.tree.get(path)

    def resolve(self, path: str, follow_last: bool) -> str:
        return self.tree.resolve(path, follow_last=follow_last, lookup=self.node)

    def directory(self, path: str) -> str:
        """`path` as an existing or created directory (symlinks followed); its real path."""
        real = self.resolve(path, follow_last=True)
        parts = real.split("/") if real else []
        for i in range(1, len(parts) + 1):
            here = "/".join(parts[:i])
            node = self.node(here)
            if node is None:
                self.writes[here] = Node(DIR, 0o755, *self.owner)
            elif node.kind != DIR:
                raise OciBuildError(f"{self.spec.where}: cannot copy into /{here}: it is a "
                                    f"{node.kind} in the image, not a directory")
        return real

    def put(self, path: str, node: Node) -> None:
        if node.kind == OTHER:
            raise OciBuildError(f"{self.spec.where}: /{path} would be a device, FIFO or "
                                "socket; a layer built without privilege cannot hold one")
        parent = self.directory(posixpath.dirname(path))
        name = posixpath.basename(path)
        real = f"{parent}/{name}" if parent else name
        old = self.node(real)
        if node.kind == DIR and old is not None and old.kind == DIR:
            node = replace(node, uid=node.uid, gid=node.gid)
        self.writes[real] = node


def plan(spec: CopySpec, source: Tree, dest: Tree) -> List[Write]:
    """The paths written (parents first) and their nodes."""
    if len(spec.sources) > 1 and not spec.dest.endswith("/"):
        raise OciBuildError(f"{spec.where}: with more than one source the destination must "
                            f"be a directory ending in /: write {shown(spec.dest)}/")
    matches = [(s, m) for s in spec.sources for m in _matches(source, s, spec)]
    dest_path = join(spec.workdir or "/", spec.dest)
    out = _Dest(dest, spec)
    as_dir = spec.dest.endswith("/") or spec.dest in (".", "") or len(matches) > 1 or (
        (lambda n: n is not None and n.kind == DIR)(
            out.node(out.resolve(dest_path, follow_last=True))))
    for _, match in matches:
        real = source.resolve(match)
        node = source.get(real)
        if node is None:
            raise OciBuildError(f"{spec.where}: {shown(match)} is a symbolic link to nothing "
                                f"in {_origin(source)}")
        if node.kind == DIR:
            target = out.directory(dest_path)
            for path in source.under(real):
                rel = path[len(real) + 1:] if real else path
                out.writes[f"{target}/{rel}" if target else rel] = _checked(
                    _owned(source.nodes[path], spec), path, spec)
            continue
        if as_dir:
            target = out.directory(dest_path)
            name = posixpath.basename(match) or posixpath.basename(real)
            out.put(f"{target}/{name}" if target else name, _owned(node, spec))
        else:
            if not dest_path:
                raise OciBuildError(f"{spec.where}: cannot copy the file {shown(match)} to /")
            out.put(dest_path, _owned(node, spec))
    return sorted(out.writes.items(), key=lambda w: w[0].split("/"))


def _checked(node: Node, path: str, spec: CopySpec) -> Node:
    if node.kind == OTHER:
        raise OciBuildError(f"{spec.where}: {shown(path)} is a device, FIFO or socket; a layer "
                            "built without privilege cannot hold one: leave it out (.dockerignore)")
    return node


def apply(tree: Tree, writes: List[Write]) -> None:
    for path, node in writes:
        tree.put(path, node)


def with_parents(tree: Tree, writes: List[Write]) -> List[Write]:
    """The writes and every parent directory, existing ones as the image has them (a layer
    that lists /tmp must not change its mode or owner)."""
    have = dict(writes)
    for path in list(have):
        parent = posixpath.dirname(path)
        while parent and parent not in have:
            node = tree.get(parent)
            have[parent] = node if node is not None and node.kind == DIR else Node(DIR)
            parent = posixpath.dirname(parent)
    return sorted(have.items(), key=lambda w: w[0].encode("utf-8").replace(b"/", b"\0"))


FILE_KINDS = (FILE, DIR, SYMLINK)
