"""Users and groups an image file adds (`accounts.users`, `accounts.groups`, as apko names them).

They become one layer: the base's /etc/passwd and /etc/group (as an unpacker leaves them:
ocibuild.unpacked; empty on scratch) with the new entries appended, and each user's home
directory, owned by the user. Nothing of the base is rewritten: an entry whose name or id is
already taken (as any C library reads the base's lines) is an error naming it, so a user never
silently gets someone else's uid. Every field written is checked first: no value can hold a
':', ',', newline or other control character, so no value adds a field or a line.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Callable, Dict, List, Optional, Sequence, Set, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.protocol.document import Part
from ocibuild.unpacked import BaseFiles, Budget, read_files

PASSWD, GROUP = "etc/passwd", "etc/group"
MAX_FILE = 1 << 20  # a passwd of thousands of users is well under this
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
# A home or a shell is a path: nothing that could end a field (':'), a list item (','), a line
# (any control character) or a word; the few marks paths of real systems use.
PATH_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/+@")
MAX_ID = 2**31 - 1  # ids above are -1 as an int32 somewhere (65535 / 2^32-1 are "nobody" holes)


@dataclass(frozen=True)
class Group(Part):
    groupname: str
    gid: int
    members: Tuple[str, ...] = ()


@dataclass(frozen=True)
class User(Part):
    username: str
    uid: int
    gid: Optional[int] = None  # None: a group of the user's name with gid = uid, made if absent
    homedir: Optional[str] = None  # None: /home/<username>
    shell: str = "/sbin/nologin"


def check_name(name: str, what: str) -> None:
    """A user or group name as useradd takes it: it goes into line files as a field, and
    `USER name` must never read as a uid (so not all digits)."""
    if not isinstance(name, str) or not name or not set(name) <= NAME_CHARS or \
            name[0] in "-." or name.isdigit() or len(name) > 32:
        raise OciBuildError(f"{what} {name!r} must be 1 to 32 letters, digits, '.', '_' or '-' "
                            "(not starting with '-' or '.', not all digits), e.g. app")


def check_path(path: object, what: str, example: str) -> None:
    """A home or shell: an absolute, normalised path of PATH_CHARS (it is a field of
    /etc/passwd: a ':' or a newline in it would add fields or lines, e.g. a uid-0 user)."""
    if not isinstance(path, str) or not path.startswith("/") or not set(path) <= PATH_CHARS \
            or posixpath.normpath(path) != path or path == "/" or len(path) > 4096:
        raise OciBuildError(f"{what} {path!r} must be an absolute path below / of letters, "
                            "digits and '/._-+@' only, without '.', '..' or '//' (a ':', ',' or "
                            f"control character would split /etc/passwd), e.g. {example}")


def check_id(value: object, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
        raise OciBuildError(f"{what} {value!r} must be a whole number from 0 to {MAX_ID}")


def check_user(user: User, what: str) -> None:
    """Every field of `user` that is written into /etc/passwd or /etc/group."""
    check_name(user.username, f"{what}.username")
    check_id(user.uid, f"{what}.uid")
    if user.gid is not None:
        check_id(user.gid, f"{what}.gid")
    check_path(home(user), f"{what}.homedir", "/home/app")
    if home(user).split("/")[1] == "etc" and home(user).count("/") == 1:
        raise OciBuildError(f"{what}.homedir {home(user)!r}: /etc holds /etc/passwd and "
                            "/etc/group, which must stay root's; give e.g. /home/app")
    check_path(user.shell, f"{what}.shell", "/bin/sh")


def check_group(group: Group, what: str) -> None:
    check_name(group.groupname, f"{what}.groupname")
    check_id(group.gid, f"{what}.gid")
    if not isinstance(group.members, tuple):
        raise OciBuildError(f"{what}.members must be a list of user names")
    for i, member in enumerate(group.members):
        check_name(member, f"{what}.members[{i}]")


def check_accounts(users: Sequence[User], groups: Sequence[Group]) -> None:
    """What can be checked of the file's own entries, before any base is read."""
    for i, g in enumerate(groups):
        check_group(g, f"accounts.groups[{i}]")
    homes: Dict[str, int] = {}
    for i, u in enumerate(users):
        check_user(u, f"accounts.users[{i}]")
        if home(u) in homes:
            raise OciBuildError(f"accounts.users[{i}].homedir {home(u)!r} is also the home "
                                f"of accounts.users[{homes[home(u)]}]; each user's home is "
                                "made theirs, so give each its own")
        homes[home(u)] = i


def libc_ids(field: str) -> Set[int]:
    """The ids a C library reads out of an id field: glibc (strtoul: leading blanks, a sign,
    wrapping to 32 bits: "01000", " 1000" and "4294968296" are uid 1000) and musl (digits
    only, an empty field is 0). Both count as taken, whichever libc the image has."""
    found: Set[int] = set()
    text = field.lstrip(" \t\n\v\f\r")
    sign = text[:1] if text[:1] in "+-" else ""
    digits = len(text[len(sign):]) - len(text[len(sign):].lstrip("0123456789"))
    if digits:
        value = int(text[len(sign):len(sign) + digits])
        value = 2**64 - 1 if value >= 2**64 else -value if sign == "-" else value
        found.add(value % 2**64 % 2**32)
    musl = len(field) - len(field.lstrip("0123456789"))
    if musl == len(field):
        found.add(int(field or "0") % 2**32)
    return found


@dataclass
class _Table:
    """One line file's entries: names and ids taken, each with the line that took it."""

    lines: List[List[str]]
    names: Dict[str, List[str]]
    ids: Dict[int, List[str]]

    @classmethod
    def read(cls, text: bytes, where: str, id_field: int) -> "_Table":
        if b"\0" in text:
            raise OciBuildError(f"the base's /{where} holds a NUL byte; C libraries read such "
                                "a line differently, so it is not added to; fix the base")
        try:
            lines = text.decode("utf-8").split("\n")  # libc's lines end at \n, nothing else
        except UnicodeDecodeError:
            raise OciBuildError(f"the base's /{where} is not UTF-8 text") from None
        table = cls([], {}, {})
        for line in lines:
            if line and not line.startswith("#"):
                table.add(line.split(":"), id_field)
        return table

    def add(self, entry: List[str], id_field: int) -> None:
        self.lines.append(entry)
        # "+name" / "-name" are NIS compat entries: they bring (or hide) the NIS user `name`.
        for name in {entry[0], entry[0].lstrip("+-@")}:
            self.names.setdefault(name, entry)
        for number in libc_ids(entry[id_field]) if len(entry) > id_field else ():
            self.ids.setdefault(number, entry)

    def taken(self, name: str, number: int) -> Optional[List[str]]:
        return self.names.get(name) or self.ids.get(number)


def merged(base_passwd: bytes, base_group: bytes, users: Sequence[User],
           groups: Sequence[Group]) -> Tuple[bytes, bytes]:
    """The base's files with `groups` and `users` appended (and a group per user without one)."""
    check_accounts(users, groups)
    passwd, group = _Table.read(base_passwd, PASSWD, 2), _Table.read(base_group, GROUP, 2)
    new_groups: List[str] = []

    def add_group(name: str, gid: int, members: Sequence[str], what: str) -> None:
        taken = group.taken(name, gid)
        if taken:
            raise OciBuildError(f"{what} {name!r} (gid {gid}): the group {taken[0]!r} (gid "
                                f"{taken[2] if len(taken) > 2 else '?'}) is already in the "
                                "base's /etc/group or the file; pick another name and gid")
        entry = [name, "x", str(gid), ",".join(members)]
        group.add(entry, 2)
        new_groups.append(":".join(entry))

    for i, g in enumerate(groups):
        add_group(g.groupname, g.gid, g.members, f"accounts.groups[{i}]")
    new_users = []
    for i, u in enumerate(users):
        what = f"accounts.users[{i}]"
        taken = passwd.taken(u.username, u.uid)
        if taken:
            raise OciBuildError(f"{what} {u.username!r} (uid {u.uid}): the user {taken[0]!r} "
                                f"(uid {taken[2] if len(taken) > 2 else '?'}) is already in "
                                "the base's /etc/passwd or the file; pick another name and uid")
        gid = u.gid
        if gid is None:
            gid = u.uid
            if gid not in group.ids:
                add_group(u.username, gid, (), f"{what}: its group")
        elif gid not in group.ids:
            raise OciBuildError(f"{what} {u.username!r}: no group has gid {gid}; add it under "
                                "`accounts.groups` or leave `gid` out (a group of the user's "
                                "name is made)")
        entry = [u.username, "x", str(u.uid), str(gid), u.username, home(u), u.shell]
        passwd.add(entry, 2)
        new_users.append(":".join(entry))
    for i, g in enumerate(groups):
        for j, member in enumerate(g.members):
            if member not in passwd.names:
                raise OciBuildError(f"accounts.groups[{i}].members[{j}] {member!r} is no user "
                                    "of the base's /etc/passwd or `accounts.users`; add the "
                                    "user or drop the name")
    return (_append(base_passwd, new_users), _append(base_group, new_groups))


def home(user: User) -> str:
    return user.homedir or f"/home/{user.username}"


def _append(text: bytes, lines: List[str]) -> bytes:
    if text and not text.endswith(b"\n"):
        text += b"\n"
    return text + "".join(line + "\n" for line in lines).encode()


def write_layer(out: BinaryIO, passwd: bytes, group: bytes, users: Sequence[User],
                mtime: int = 0, place: Callable[[str], str] = lambda path: path) -> None:
    """passwd, group and the home directories (the user's, mode 0755), sorted, as a tar.
    `place`: where a path lands in the base (its directories resolved through the base's
    symlinks), so that no directory entry of ours replaces a symlink of the base's (/etc ->
    /usr/etc): an unpacker clobbers a symlink with a directory member."""
    entries: Dict[str, tarfile.TarInfo] = {}
    contents: Dict[str, bytes] = {place(PASSWD): passwd, place(GROUP): group}

    def directory(path: str, uid: int = 0, gid: int = 0) -> None:
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, 0o755, uid, gid, mtime
        entries[path] = info

    def parents(path: str) -> None:
        parent = posixpath.dirname(path)
        while parent and parent not in entries:
            directory(parent)
            parent = posixpath.dirname(parent)

    for name, data in contents.items():
        parents(name)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, mtime
        entries[name] = info
    homes: Dict[str, int] = {}
    for i, user in enumerate(users):
        check_path(home(user), f"accounts.users[{i}].homedir", "/home/app")
        path = place(home(user).lstrip("/"))
        if path in homes:  # two homes, one place (through the base's symlinks)
            raise OciBuildError(f"accounts.users[{i}].homedir {home(user)!r} is, in the base, "
                                f"/{path}: also the home of accounts.users[{homes[path]}]; "
                                "each user's home is made theirs, so give each its own")
        homes[path] = i
        if path in contents or any(c.startswith(path + "/") for c in contents):
            raise OciBuildError(f"accounts.users[{i}].homedir {home(user)!r} is where the "
                                "base keeps /etc/passwd or /etc/group, which must stay "
                                "root's; give e.g. /home/app")
        parents(path)
        directory(path, user.uid, user.gid if user.gid is not None else user.uid)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name in sorted(entries):
            data = contents.get(name)
            tar.addfile(entries[name], None if data is None else io.BytesIO(data))


def read_base_files(layers: Sequence[Tuple[str, str, Callable[[], BinaryIO]]],
                    paths: Sequence[str], budget: Optional[Budget] = None) -> BaseFiles:
    """Each of `paths` as the image's filesystem holds it (ocibuild.unpacked): `layers` are
    (digest, media type, a function opening the blob), bottom layer first."""
    return read_files(layers, paths, MAX_FILE, budget)


def accounts_layer(base_layout: Optional[str], base_ref_name: Optional[str],
                   users: Sequence[User], groups: Sequence[Group], out_dir: str,
                   compression: str, mtime: int):
    """The layer of `users` and `groups` on the base in `base_layout` (None: scratch), written
    into `out_dir`'s blobs; its descriptor."""
    from ocibuild.layer.builder import build_layer_with
    from ocibuild.layout import OciLayout, resolve_image
    from ocibuild.protocol.layer import LayerDescriptor

    base = BaseFiles({}, lambda path: path)
    if base_layout is not None:
        layout = OciLayout(base_layout)
        image = resolve_image(layout, ref_name=base_ref_name)
        base = read_base_files(
            [(d.digest, d.media_type, lambda d=d: layout.open_blob(d.digest))
             for d in image.layers], (PASSWD, GROUP))
    passwd, group = merged(base.files.get(PASSWD, b""), base.files.get(GROUP, b""), users,
                           groups)
    blob = build_layer_with(
        lambda out: write_layer(out, passwd, group, users, mtime, base.place), out_dir,
        compression=compression)
    return LayerDescriptor(blob.media_type, blob.digest, blob.size, blob.diff_id)
