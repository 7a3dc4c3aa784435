"""`--chown=USER[:GROUP]` (and WORKDIR's owner under USER) as docker resolves it: numbers as
they are (a lone uid gives gid = uid), names through the stage's own /etc/passwd and
/etc/group (a lone user name gives the user's primary group). A name the files lack is an
error, never root."""

from __future__ import annotations

from typing import BinaryIO, Callable, Optional, Tuple

from ocibuild.dockerfile.fstree import Content, Tree
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

MAX_FILE = 4 << 20
_MAX_ID = (1 << 32) - 2


def _number(text: str) -> Optional[int]:
    if text.isascii() and text.isdigit():
        value = int(text)
        if value <= _MAX_ID:
            return value
    return None


def _entries(tree: Tree, path: str, opener: Callable[[Content], BinaryIO]):
    data = tree.read(path, opener, MAX_FILE) or b""
    for line in data.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            yield line.split(":")


def resolve(spec: str, tree: Tree, opener: Callable[[Content], BinaryIO],
            where: str) -> Tuple[int, int]:
    user, sep, group = spec.partition(":")
    if not user or (sep and not group):
        raise OciBuildError(f"{where}: {shown(spec)} is not USER[:GROUP] (names or numbers, "
                            "e.g. 1000:1000 or app)")
    uid = _number(user)
    gid: Optional[int] = uid
    if uid is None:
        for fields in _entries(tree, "etc/passwd", opener):
            if fields[0] == user and len(fields) > 3 and _number(fields[2]) is not None:
                uid, gid = _number(fields[2]), _number(fields[3])
                break
        else:
            raise OciBuildError(f"{where}: no user {shown(user)} in the image's /etc/passwd; "
                                "add the user first, or give a number")
    if sep:
        gid = _number(group)
        if gid is None:
            for fields in _entries(tree, "etc/group", opener):
                if fields[0] == group and len(fields) > 2 and _number(fields[2]) is not None:
                    gid = _number(fields[2])
                    break
            else:
                raise OciBuildError(f"{where}: no group {shown(group)} in the image's "
                                    "/etc/group; add the group first, or give a number")
    assert uid is not None and gid is not None
    return uid, gid
