"""USER's uid and gid from the image's /etc/passwd and /etc/group, as Docker resolves them:
"name", "uid", "name:group", "uid:gid"; a numeric uid needs no passwd entry (group 0 then),
a name does."""

from __future__ import annotations

import os
import stat
from typing import Dict, Optional, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.paths import parent_dir

_LIMIT = 4 << 20


def _text(root: str, name: str) -> str:
    """etc/passwd or etc/group of the tree, "" when absent; never through a symlink."""
    path = f"etc/{name}"
    try:
        parent_dir(root, path, f"/etc/{name}", create=False)
        fd = os.open(os.path.join(root, path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (OSError, OciBuildError):
        return ""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return ""
        return f.read(_LIMIT).decode("utf-8", "replace")


def home_of(root: str, uid: int) -> str:
    """The HOME a step gets when its env sets none, as runc gives it: the passwd entry's
    home directory for `uid`, else "/"."""
    for line in _text(root, "passwd").splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[2] == str(uid) and fields[5]:
            return fields[5]
    return "/"


def _table(root: str, name: str) -> Dict[str, Tuple[int, int]]:
    """name -> (id, gid for passwd) of etc/passwd or etc/group."""
    text = _text(root, name)
    table = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit() and fields[3].isdigit():
            table.setdefault(fields[0], (int(fields[2]), int(fields[3])))
        elif len(fields) >= 3 and fields[2].isdigit():
            table.setdefault(fields[0], (int(fields[2]), 0))
    return table


def resolve_user(root: str, spec: str) -> Tuple[int, int]:
    user, _, group = (spec or "root").partition(":")
    passwd = _table(root, "passwd")
    if user.isdigit():
        uid = int(user)
        gid: Optional[int] = next((g for u, g in passwd.values() if u == uid), 0)
    elif user in passwd:
        uid, gid = passwd[user]
    else:
        raise OciBuildError(f"USER {spec!r}: no user {user!r} in the image's /etc/passwd; "
                            "create it in an earlier RUN step (useradd) or give a numeric uid")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            groups = _table(root, "group")
            if group not in groups:
                raise OciBuildError(f"USER {spec!r}: no group {group!r} in the image's "
                                    "/etc/group; create it first or give a numeric gid")
            gid = groups[group][0]
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
