"""`--chown=USER[:GROUP]` (and WORKDIR's owner under USER) as docker resolves it: numbers as
they are (a lone uid gives gid = uid), names through the stage's own /etc/passwd and
/etc/group (a lone user name gives the user's primary group). A name the files lack is an
error, never root."""

from __future__ import annotations

from typing import BinaryIO, Callable, List, Optional, Tuple

from ocibuild import account_files as files

from ocibuild.dockerfile.fstree import Content, Tree
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

MAX_FILE = files.MAX_BYTES


def _number(text: str) -> Optional[int]:
    return files.plain_id(text)


def _rows(tree: Tree, path: str, opener: Callable[[Content], BinaryIO]) -> List[files.Entry]:
    return files.entries(tree.read(path, opener, MAX_FILE) or b"", f"the image's /{path}")


def resolve(spec: str, tree: Tree, opener: Callable[[Content], BinaryIO],
            where: str) -> Tuple[int, int]:
    """Look-ups as account_files reads the files (one rule with RUN's USER)."""
    user, sep, group = spec.partition(":")
    if not user or (sep and not group):
        raise OciBuildError(f"{where}: {shown(spec)} is not USER[:GROUP] (names or numbers, "
                            "e.g. 1000:1000 or app)")
    uid = _number(user)
    gid: Optional[int] = uid
    try:
        if uid is None:
            entry = files.by_name(_rows(tree, "etc/passwd", opener), user,
                                  "the image's /etc/passwd", 2)
            if entry is None:
                raise OciBuildError(f"no user {shown(user)} in the image's /etc/passwd; add "
                                    "the user first, or give a number")
            uid, gid = int(entry.fields[2]), int(entry.fields[3])
        if sep:
            gid = _number(group)
            if gid is None:
                found = files.by_name(_rows(tree, "etc/group", opener), group,
                                      "the image's /etc/group", 1)
                if found is None:
                    raise OciBuildError(f"no group {shown(group)} in the image's /etc/group; "
                                        "add the group first, or give a number")
                gid = int(found.fields[2])
    except OciBuildError as err:
        raise OciBuildError(f"{where}: {err}") from None
    assert uid is not None and gid is not None
    return uid, gid
