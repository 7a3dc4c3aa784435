"""The build context: the files of the context directory that `.dockerignore` keeps, as a
`fstree.Tree` whose files' bytes are the files on disk.

Owners are 0:0 (what COPY gives files without --chown, as docker does), modes are the files'
permission bits as docker sends them, symlinks are kept as links (never followed while
walking: a link to /etc in the context is a link, not /etc's files). Devices, FIFOs and
sockets are kept as "other" nodes, which COPY refuses by name. The ignore file is
`<Dockerfile>.dockerignore` beside the Dockerfile when it exists (as BuildKit prefers it),
else `.dockerignore` at the context's root.
"""

from __future__ import annotations

import os
import stat
from typing import Optional, Sequence

from ocibuild.dockerfile import dockerignore
from ocibuild.dockerfile.fstree import DIR, FILE, OTHER, SYMLINK, Node, Tree
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import os_reason, read_file

ORIGIN = "the build context"
# Paths kept from a context (each is a node in memory): a million files is a huge context;
# a pushed context of tens of millions must not exhaust the builder's memory.
MAX_PATHS = 2_000_000


def _inside(path: str, directory: str) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(directory)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def own_file(path: str, context: str, what: str = "") -> str:
    """`path` (the Dockerfile, an ignore file) if it may be read: one that lies in the context
    must lead to a file in it, through any symlink on the way (a pushed context must not
    make the builder read, or quote in an error, a file of the machine: docker reads the
    Dockerfile inside the context only); one outside the context must lead to a file in its
    own directory (the CI's own file then, not the pushed context's)."""
    lexical = os.path.abspath(path)
    top = os.path.abspath(context).rstrip(os.sep) + os.sep
    allowed = context if lexical.startswith(top) else os.path.dirname(lexical)
    if os.path.lexists(path) and not _inside(path, allowed):
        raise OciBuildError(f"{what}{path!r} is a symbolic link to a file outside the "
                            f"{'build context' if allowed is context else 'directory it is in'}; "
                            "make it a file")
    return path


def ignore_file(context: str, dockerfile: Optional[str]) -> Optional[str]:
    for path in ([dockerfile + ".dockerignore"] if dockerfile else []) + \
            [os.path.join(context, ".dockerignore")]:
        own_file(path, context, "")
        if os.path.isfile(path):
            return path
    return None


def _node(path: str, st: os.stat_result) -> Node:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return Node(DIR, mode, origin=ORIGIN)
    if stat.S_ISLNK(st.st_mode):
        return Node(SYMLINK, 0o777, link=os.readlink(path), origin=ORIGIN)
    if stat.S_ISREG(st.st_mode):
        return Node(FILE, mode, size=st.st_size, content=path, origin=ORIGIN)
    return Node(OTHER, mode, origin=ORIGIN)


def load(context: str, dockerfile: Optional[str] = None) -> Tree:
    if not os.path.isdir(context):
        raise OciBuildError(f"the build context {context!r} is not a directory")
    ignore = ignore_file(context, dockerfile)
    patterns: Sequence[dockerignore.Pattern] = ()
    if ignore is not None:
        patterns = dockerignore.parse(read_file(ignore, "the ignore file", dockerignore.MAX_BYTES),
                                      ignore)
    tree = Tree({"": Node(DIR, 0o755, origin=ORIGIN)})
    dirs = {}  # every directory walked, excluded or not: parents kept by an exception
    exceptions = any(p.exception for p in patterns)
    stack = [("", context, [False] * len(patterns))]
    try:
        while stack:
            rel, directory, above = stack.pop()
            with os.scandir(directory) as listing:
                for item in listing:
                    path = f"{rel}/{item.name}" if rel else item.name
                    st = item.stat(follow_symlinks=False)
                    found = dockerignore.hits(patterns, path, above)
                    gone = bool(patterns) and dockerignore.verdict(patterns, found)
                    if stat.S_ISDIR(st.st_mode):
                        dirs[path] = _node(item.path, st)
                        if not gone or exceptions:  # nothing below can come back otherwise
                            stack.append((path, item.path, found))
                    if gone:
                        continue
                    try:
                        path.encode("utf-8")
                    except UnicodeEncodeError:
                        raise OciBuildError(f"{item.path!r}: the file name is not UTF-8, which "
                                            "image layers need; rename it") from None
                    tree.nodes[path] = _node(item.path, st)
                    if len(tree.nodes) > MAX_PATHS:
                        raise OciBuildError(f"the build context {context!r} holds more than "
                                            f"{MAX_PATHS} paths .dockerignore keeps; leave "
                                            "out what the build does not need")
    except OSError as err:
        where = err.filename if isinstance(err.filename, str) else context
        raise OciBuildError(f"cannot read the build context {where!r}: {os_reason(err)}") from None
    # A file kept by a `!` exception inside an excluded directory keeps its parents.
    for path in list(tree.nodes):
        parent = path.rpartition("/")[0]
        while parent and parent not in tree.nodes:
            tree.nodes[parent] = dirs[parent]
            parent = parent.rpartition("/")[0]
    return tree
