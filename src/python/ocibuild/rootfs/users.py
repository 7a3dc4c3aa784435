"""USER's uid and gid from the image's /etc/passwd and /etc/group, as Docker resolves them:
"name", "uid", "name:group", "uid:gid"; a numeric uid needs no passwd entry (group 0 then),
a name does."""

from __future__ import annotations

import os
import stat
from typing import List, Tuple

from ocibuild import account_files as files
from ocibuild.errors import OciBuildError
from ocibuild.rootfs.paths import parent_dir

_LIMIT = 4 << 20


def _bytes(root: str, name: str) -> bytes:
    """etc/passwd or etc/group of the tree, b"" when absent; never through a symlink."""
    path = f"etc/{name}"
    try:
        parent_dir(root, path, f"/etc/{name}", create=False)
        fd = os.open(os.path.join(root, path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (OSError, OciBuildError):
        return b""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return b""
        return f.read(_LIMIT)


def _text(root: str, name: str) -> str:
    return _bytes(root, name).decode("utf-8", "replace")


def _rows(root: str, name: str) -> List[files.Entry]:
    return files.entries(_bytes(root, name), f"the image's /etc/{name}")


def home_of(root: str, uid: int) -> str:
    """The HOME a step gets when its env sets none, as runc gives it: the passwd entry's
    home directory for `uid`, else "/"."""
    entry = files.by_id(_rows(root, "passwd"), uid, "the image's /etc/passwd", 2)
    if entry is not None and len(entry.fields) >= 6 and entry.fields[5]:
        return entry.fields[5]
    return "/"


def resolve_user(root: str, spec: str) -> Tuple[int, int]:
    """Every look-up as account_files reads the files (one rule for all readers)."""
    user, _, group = (spec or "root").partition(":")
    passwd = _rows(root, "passwd")
    where = "the image's /etc/passwd"
    uid = files.plain_id(user)
    if uid is not None:
        entry = files.by_id(passwd, uid, where, 2)
        gid = int(entry.fields[3]) if entry is not None else 0
    else:
        entry = files.by_name(passwd, user, where, 2)
        if entry is None:
            raise OciBuildError(f"USER {spec!r}: no user {user!r} in the image's "
                                "/etc/passwd; create it in an earlier RUN step (useradd) or "
                                "give a numeric uid")
        uid, gid = int(entry.fields[2]), int(entry.fields[3])
    if group:
        number = files.plain_id(group)
        if number is not None:
            gid = number
        else:
            found = files.by_name(_rows(root, "group"), group, "the image's /etc/group", 1)
            if found is None:
                raise OciBuildError(f"USER {spec!r}: no group {group!r} in the "
                                    "image's /etc/group; create it first or give a numeric gid")
            gid = int(found.fields[2])
    return uid, gid


def supplementary_groups(root: str, spec: str) -> Tuple[int, ...]:
    """The groups runc gives a step run as USER `spec` (libcontainer's GetExecUser): with
    "user:group" only that group (none added); with a user alone, every group of
    /etc/group listing the user's name as a member, in file order (repeats kept, as runc).
    A numeric uid with no passwd entry has no name, so no groups."""
    user, _, group = (spec or "root").partition(":")
    if group:
        return ()
    passwd = _text(root, "passwd").splitlines()
    if user.isdigit():
        names = [f[0] for f in (line.split(":") for line in passwd)
                 if len(f) >= 3 and f[2] == user]
        if not names:
            return ()
        user = names[0]
    out: list = []
    for line in _text(root, "group").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit() and user in fields[3].split(","):
            out.append(int(fields[2]))
    return tuple(out)
