"""Users and groups an image file adds (`accounts.users`, `accounts.groups`, as apko names them).

They become one layer: the base's /etc/passwd and /etc/group (read from its layers, top layer
first, whiteouts honoured; empty on scratch) with the new entries appended, and each user's
home directory, owned by the user. Nothing of the base is rewritten: an entry whose name or id
is already taken is an error naming it, so a user never silently gets someone else's uid.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple

from ocibuild import mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.protocol.document import Part

PASSWD, GROUP = "etc/passwd", "etc/group"
MAX_FILE = 1 << 20  # a passwd of thousands of users is well under this
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


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
    if not name or not set(name) <= NAME_CHARS or name[0] == "-" or len(name) > 32:
        raise OciBuildError(f"{what} {name!r} must be 1 to 32 letters, digits, '.', '_' or '-' "
                            "(not starting with '-'), e.g. app")


def _entries(text: bytes, where: str) -> List[List[str]]:
    try:
        lines = text.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise OciBuildError(f"the base's /{where} is not UTF-8 text") from None
    return [line.split(":") for line in lines if line and not line.startswith("#")]


def merged(base_passwd: bytes, base_group: bytes, users: Sequence[User],
           groups: Sequence[Group]) -> Tuple[bytes, bytes]:
    """The base's files with `groups` and `users` appended (and a group per user without one)."""
    passwd, group = _entries(base_passwd, PASSWD), _entries(base_group, GROUP)
    names = {e[0]: e for e in group}
    gids = {e[2]: e for e in group if len(e) > 2}
    new_groups: List[str] = []

    def add_group(name: str, gid: int, members: Sequence[str], what: str) -> None:
        check_name(name, what)
        taken = names.get(name) or gids.get(str(gid))
        if taken:
            raise OciBuildError(f"{what} {name!r} (gid {gid}): the group {taken[0]!r} (gid "
                                f"{taken[2] if len(taken) > 2 else '?'}) is already in the "
                                "base's /etc/group or the file; pick another name and gid")
        entry = [name, "x", str(gid), ",".join(members)]
        names[name], gids[str(gid)] = entry, entry
        new_groups.append(":".join(entry))

    for i, g in enumerate(groups):
        add_group(g.groupname, g.gid, g.members, f"accounts.groups[{i}]")
    users_by_name = {e[0]: e for e in passwd}
    uids = {e[2]: e for e in passwd if len(e) > 2}
    new_users = []
    for i, u in enumerate(users):
        what = f"accounts.users[{i}]"
        check_name(u.username, what)
        taken = users_by_name.get(u.username) or uids.get(str(u.uid))
        if taken:
            raise OciBuildError(f"{what} {u.username!r} (uid {u.uid}): the user {taken[0]!r} "
                                f"(uid {taken[2] if len(taken) > 2 else '?'}) is already in "
                                "the base's /etc/passwd or the file; pick another name and uid")
        gid = u.gid
        if gid is None:
            gid = u.uid
            if str(gid) not in gids:
                add_group(u.username, gid, (), f"{what}: its group")
        elif str(gid) not in gids:
            raise OciBuildError(f"{what} {u.username!r}: no group has gid {gid}; add it under "
                                "`accounts.groups` or leave `gid` out (a group of the user's "
                                "name is made)")
        entry = [u.username, "x", str(u.uid), str(gid), u.username, home(u), u.shell]
        users_by_name[u.username], uids[str(u.uid)] = entry, entry
        new_users.append(":".join(entry))
    return (_append(base_passwd, new_users), _append(base_group, new_groups))


def home(user: User) -> str:
    return user.homedir or f"/home/{user.username}"


def _append(text: bytes, lines: List[str]) -> bytes:
    if text and not text.endswith(b"\n"):
        text += b"\n"
    return text + "".join(line + "\n" for line in lines).encode()


def write_layer(out: BinaryIO, passwd: bytes, group: bytes, users: Sequence[User],
                mtime: int = 0) -> None:
    """passwd, group and the home directories (the user's, mode 0755), sorted, as a tar."""
    entries: Dict[str, tarfile.TarInfo] = {}
    contents: Dict[str, bytes] = {PASSWD: passwd, GROUP: group}

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
    for user in users:
        path = posixpath.normpath(home(user)).lstrip("/")
        if not home(user).startswith("/") or ".." in home(user).split("/") or not path:
            raise OciBuildError(f"the home directory {home(user)!r} of {user.username!r} must "
                                "be an absolute path below /, e.g. /home/app")
        parents(path)
        directory(path, user.uid, user.gid if user.gid is not None else user.uid)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name in sorted(entries):
            data = contents.get(name)
            tar.addfile(entries[name], None if data is None else io.BytesIO(data))


def read_base_files(layers: Sequence[Tuple[str, str, Callable[[], BinaryIO]]],
                    paths: Sequence[str]) -> Dict[str, bytes]:
    """Each of `paths` as the image's filesystem holds it: `layers` are (digest, media type, a
    function opening the blob), top layer first; a whiteout (or an opaque directory) above
    hides what is below. Layers below the last path found are not read. A layer that is not
    a readable tar (a base is untrusted) is an error naming it."""
    found: Dict[str, bytes] = {}
    gone: set = set()
    unreadable = _unreadable()
    for digest, media_type, open_blob in layers:
        try:
            gone |= _read_layer(media_type, open_blob, paths, found, gone)
        except unreadable as err:  # corrupt gzip, zstd or tar: the base's bytes, not a bug
            raise OciBuildError(f"the base's layer {digest} cannot be read as a "
                                f"{media_type} ({type(err).__name__}: {err}); the base image is "
                                "damaged") from None
        if all(p in found or p in gone for p in paths):
            break
    return found


def _unreadable() -> tuple:
    """What a damaged layer raises while it is decompressed and read as a tar (OSError covers
    gzip.BadGzipFile). zstandard is imported only here: most processes never need it."""
    errors: tuple = (tarfile.TarError, OSError, EOFError, zlib.error)
    try:
        import zstandard
        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    return errors


def _member_path(name: str) -> Optional[str]:
    """A tar member's path as unpackers place it, or None for one they refuse (`..`)."""
    name = posixpath.normpath("/" + name).lstrip("/") if ".." not in name.split("/") else ""
    return name or None


def _read_layer(media_type: str, open_blob: Callable[[], BinaryIO], paths: Sequence[str],
                found: Dict[str, bytes], gone: set) -> set:
    """Fill `found` from one layer; the paths it deletes (for the layers below)."""
    deleted = set()
    with open_blob() as blob, \
            tarfile.open(fileobj=_decompressed(media_type, blob), mode="r|") as tar:
        for member in tar:
            name = _member_path(member.name)
            if name is None:
                continue
            directory, base = posixpath.split(name)
            for path in paths:
                if path in found or path in gone:
                    continue
                if name == path and member.isfile():
                    if member.size > MAX_FILE:
                        raise OciBuildError(f"the base's /{path} is over {MAX_FILE} bytes")
                    data = tar.extractfile(member)
                    found[path] = data.read() if data else b""
                elif (base == ".wh." + posixpath.basename(path)
                      and directory == posixpath.dirname(path)) or \
                        (base == ".wh..wh..opq" and path.startswith(directory + "/")):
                    deleted.add(path)
    return deleted


def _decompressed(media_type: str, blob: BinaryIO) -> BinaryIO:
    if media_type in (mediatypes.OCI_LAYER_GZIP, mediatypes.DOCKER_LAYER_GZIP):
        return gzip.GzipFile(fileobj=blob)  # type: ignore[return-value]
    if media_type == mediatypes.OCI_LAYER_ZSTD:
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(blob)  # type: ignore[return-value]
    return blob


def accounts_layer(base_layout: Optional[str], base_ref_name: Optional[str],
                   users: Sequence[User], groups: Sequence[Group], out_dir: str,
                   compression: str, mtime: int):
    """The layer of `users` and `groups` on the base in `base_layout` (None: scratch), written
    into `out_dir`'s blobs; its descriptor."""
    from ocibuild.layer.builder import build_layer_with
    from ocibuild.layout import OciLayout, resolve_image
    from ocibuild.protocol.layer import LayerDescriptor

    files: Dict[str, bytes] = {}
    if base_layout is not None:
        layout = OciLayout(base_layout)
        image = resolve_image(layout, ref_name=base_ref_name)
        files = read_base_files(
            [(d.digest, d.media_type, lambda d=d: layout.open_blob(d.digest))
             for d in reversed(image.layers)], (PASSWD, GROUP))
    passwd, group = merged(files.get(PASSWD, b""), files.get(GROUP, b""), users, groups)
    blob = build_layer_with(lambda out: write_layer(out, passwd, group, users, mtime), out_dir,
                            compression=compression)
    return LayerDescriptor(blob.media_type, blob.digest, blob.size, blob.diff_id)
