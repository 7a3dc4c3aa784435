"""ADD's two extras over COPY: local archives are unpacked, URLs are downloaded.

Archives (a local source whose bytes are a tar, plain or gzip, bzip2 or xz compressed, as
docker detects them by content, not name) are read as data: each member becomes a node of
a tree that is then copied like a directory's contents; a file's bytes go to a numbered file
in the work directory, never to a path the archive names. A member whose path leaves the
archive's root (`../x`), a hard link to a member not seen before, a device or FIFO, and a
name that would be a whiteout in the layer (`.wh.*`) are errors naming the archive and the
member. Bounded: at most MAX_MEMBERS members and MAX_ARCHIVE_BYTES of file content, so a
decompression bomb stops early. Owners and modes are the archive's (as docker keeps them),
unless --chown/--chmod say otherwise.

URLs are only taken with `--checksum=sha256:HEX`: the download is bounded (MAX_URL_BYTES,
deadlines, redirects checked, no credentials sent) and verified before the file is used. A
URL without a checksum is refused: its bytes could change between two builds of the same
commit, so the image would not be reproducible and nothing would vouch for what went in.
The file gets mode 0600, as docker gives downloaded files, and is never unpacked.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import posixpath
import tarfile
import zlib
from typing import BinaryIO, Optional, Tuple
from urllib.parse import urlsplit

from ocibuild.dockerfile.fstree import DIR, FILE, SYMLINK, Node, Tree
from ocibuild.errors import OciBuildError
from ocibuild.layer.tarinfo import open_stream, owner_fault, text_fault
from ocibuild.untrusted import shown

MAX_MEMBERS = 1_000_000
MAX_ARCHIVE_BYTES = 16 << 30
MAX_URL_BYTES = 4 << 30
URL_DEADLINE_S = 1800.0
_CHUNK = 1 << 20
_MAGIC = ((b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f)), (b"BZh", bz2.BZ2File),
          (b"\xfd7zXZ\x00", lzma.LZMAFile))


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def is_git(source: str) -> bool:
    return source.startswith("git@") or source.endswith(".git") or "://" in source and \
        not is_url(source)


def _open(path: str) -> BinaryIO:
    f = open(path, "rb")
    head = f.read(6)
    f.seek(0)
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            return opener(f)  # type: ignore[operator,return-value]
    return f


def is_archive(path: str) -> bool:
    """Docker's test: the (decompressed) bytes start with a valid tar header."""
    try:
        with _open(path) as f:
            with open_stream(f) as tar:
                return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError):
        return False


def _member_path(name: str, archive: str, where: str) -> str:
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise OciBuildError(f"{where}: the archive {archive} has a member "
                                    f"{shown(name)} outside its root; refusing the archive")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def unpack(path: str, shown_name: str, work: str, where: str) -> Tree:
    """The archive as a tree (its root is the archive's root)."""
    tree = Tree({"": Node(DIR, 0o755, origin=f"the archive {shown_name}")})
    os.makedirs(work, exist_ok=True)
    total = 0
    try:
        with _open(path) as f, open_stream(f) as tar:
            for count, member in enumerate(tar):
                if count >= MAX_MEMBERS:
                    raise OciBuildError(f"{where}: the archive {shown_name} has more than "
                                        f"{MAX_MEMBERS} members; refused")
                name = _member_path(member.name, shown_name, where)
                fault = owner_fault(member.uid, member.gid) or text_fault(
                    [("link target", member.linkname)] if member.issym() else [])
                if fault is not None:
                    raise OciBuildError(f"{where}: the archive {shown_name} has a member "
                                        f"{shown(member.name)}: {fault}; refused")
                if not name:
                    if member.isdir():
                        tree.nodes[""] = Node(DIR, member.mode & 0o7777, member.uid,
                                              member.gid, origin=tree.nodes[""].origin)
                    continue
                if posixpath.basename(name).startswith(".wh."):
                    raise OciBuildError(f"{where}: the archive {shown_name} has a member "
                                        f"{shown(name)}, which a layer would read as a "
                                        "whiteout (a deletion); rename it")
                _parents(tree, name)
                mode = member.mode & 0o7777
                if member.isdir():
                    tree.put(name, Node(DIR, mode, member.uid, member.gid))
                elif member.issym():
                    tree.put(name, Node(SYMLINK, 0o777, member.uid, member.gid,
                                        link=member.linkname))
                elif member.islnk():
                    target = tree.get(_member_path(member.linkname, shown_name, where))
                    if target is None or target.kind != FILE:
                        raise OciBuildError(f"{where}: the archive {shown_name} has a hard link "
                                            f"{shown(name)} to {shown(member.linkname)}, which "
                                            "is not a file before it in the archive")
                    tree.put(name, Node(FILE, mode, member.uid, member.gid, size=target.size,
                                        content=target.content))
                elif member.isfile():
                    total += member.size
                    if total > MAX_ARCHIVE_BYTES:
                        raise OciBuildError(f"{where}: the archive {shown_name} unpacks to more "
                                            f"than {MAX_ARCHIVE_BYTES} bytes; refused")
                    out = os.path.join(work, str(count))
                    _copy(tar.extractfile(member), out, member.size, shown_name, where)
                    tree.put(name, Node(FILE, mode, member.uid, member.gid, size=member.size,
                                        content=out))
                else:
                    raise OciBuildError(f"{where}: the archive {shown_name} has a device, FIFO "
                                        f"or socket {shown(name)}; a layer built without "
                                        "privilege cannot hold one")
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as err:
        raise OciBuildError(f"{where}: the archive {shown_name} cannot be read "
                            f"({type(err).__name__}: {err})") from None
    return tree


def _parents(tree: Tree, path: str) -> None:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        parent = "/".join(parts[:i])
        node = tree.get(parent)
        if node is None or node.kind != DIR:
            tree.put(parent, Node(DIR, 0o755))


def _copy(src, out: str, size: int, name: str, where: str) -> None:
    done = 0
    with open(out, "wb") as f:
        while src is not None and done < size:
            chunk = src.read(min(_CHUNK, size - done))
            if not chunk:
                break
            f.write(chunk)
            done += len(chunk)
    if done != size:
        raise OciBuildError(f"{where}: the archive {name} is truncated")


def checksum(value: Optional[str], where: str) -> Optional[str]:
    if value is None:
        return None
    algorithm, _, digest = value.partition(":")
    if algorithm != "sha256" or len(digest) != 64 or \
            not all(c in "0123456789abcdef" for c in digest):
        raise OciBuildError(f"{where}: --checksum={shown(value)} must be sha256: and 64 "
                            "lower-case hex digits")
    return digest


def url_name(url: str, where: str) -> str:
    name = posixpath.basename(urlsplit(url).path)
    if not name:
        raise OciBuildError(f"{where}: cannot tell a file name from {shown(url)}; give the "
                            "destination as a file path, not a directory")
    return name


def download(url: str, sha256: str, out: str, where: str,
             ca_cert: Optional[str] = None) -> int:
    """The URL's bytes into `out`, verified against `sha256` before the file is kept."""
    from ocibuild.atomic import TempFile
    from ocibuild.registry.errors import RegistryError
    from ocibuild.registry.transport import Transport

    parts = urlsplit(url)
    if parts.username or parts.password:
        raise OciBuildError(f"{where}: the URL names credentials; ADD sends none (use a "
                            "pre-signed URL or download the file beforehand)")
    transport = Transport(parts.netloc, insecure=parts.scheme == "http", ca_cert=ca_cert,
                          credentials=None, deadline_s=URL_DEADLINE_S)
    hasher, size = hashlib.sha256(), 0
    try:
        response = transport.request("GET", url, scope="", stream=True)
        with TempFile(os.path.dirname(out)) as tmp:
            try:
                for chunk in transport.chunks(response, "GET", url):
                    size += len(chunk)
                    if size > MAX_URL_BYTES:
                        raise OciBuildError(f"{where}: {shown(url)} is over {MAX_URL_BYTES} "
                                            "bytes; refused")
                    hasher.update(chunk)
                    tmp.file.write(chunk)
            finally:
                response.close()
            if hasher.hexdigest() != sha256:
                raise OciBuildError(f"{where}: {shown(url)} has sha256:{hasher.hexdigest()}, "
                                    f"not sha256:{sha256} as --checksum says; not using it")
            tmp.commit(out)
    except RegistryError as err:
        raise OciBuildError(f"{where}: downloading: {err}") from None
    return size


def no_checksum(url: str, where: str) -> OciBuildError:
    return OciBuildError(
        f"{where}: ADD {shown(url)} needs --checksum=sha256:<hex of the file>: a URL's bytes "
        "can change between two builds of the same commit, so without it the image is not "
        "reproducible and nothing vouches for what went in. Get the hex with "
        f"`curl -fsSL {shown(url)} | sha256sum`")


def url_source_tree(path: str, name: str, size: int, origin: str) -> Tuple[Tree, str]:
    tree = Tree({"": Node(DIR, 0o755, origin=origin)})
    tree.put(name, Node(FILE, 0o600, size=size, content=path, origin=origin))
    return tree, name
