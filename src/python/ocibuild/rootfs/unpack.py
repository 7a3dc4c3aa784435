"""Apply image layers to a directory, as the build user, for RUN steps to run in.

OCI's layer semantics (image-spec layer.md, as containerd and moby apply them): entries in
order; `.wh.NAME` deletes NAME from the layers below; `.wh..wh..opq` in a directory hides
everything the layers below put there; an entry replaces what is at its path unless both
are directories; a hard link names a path already in the tree.

Without privilege the owners, set-id bits, devices and xattrs go to the ledger (see
ledger.py) and the disk keeps a usable stand-in; as root they are applied for real. Writes
never leave the root: member names are normalized ('..' refused) and parents are walked
without following symlinks (paths.py). mtimes are kept, so unchanged files stay older than
SOURCE_DATE_EPOCH in later layers.

Each layer is read by `ocibuild.layer.headers` (tarfile's members, held to tarfile's by
tests/core/tar_headers_test.py; bench (b)'s base read, gunzip included, in 0.28 s against
tarfile's 0.43-0.49 s); where that reader says Unusual, the layer is
applied again from its start by tarfile, which then decides (tests/core/
rootfs_unpack_readers_test.py: both ways give one tree, ledger and error).
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from typing import BinaryIO, Callable, Iterable, Optional, Set, Tuple

from ocibuild.bounded_decompress import BoundedReader, open_decompressed
from ocibuild.errors import OciBuildError
from ocibuild.layer import headers, members
from ocibuild.layer.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK
from ocibuild.layer.forward import CHUNK as FORWARD_CHUNK
from ocibuild.layer.tarinfo import (XATTR, device_fault, open_stream, owner_fault, text_fault,
                                   xattr_names)
from ocibuild.rootfs.ledger import KEPT_XATTRS, Ledger, Meta, usable_mode
from ocibuild.rootfs.paths import (OPAQUE, WHITEOUT, normalize, on_disk, parent_dir,
                                   whiteout_target)
from ocibuild.untrusted import os_reason

_KINDS = {tarfile.REGTYPE: FILE, tarfile.AREGTYPE: FILE, tarfile.CONTTYPE: FILE,
          tarfile.DIRTYPE: DIR, tarfile.SYMTYPE: SYMLINK, tarfile.CHRTYPE: CHARDEV,
          tarfile.BLKTYPE: BLOCKDEV, tarfile.FIFOTYPE: FIFO}
_S_IF = {CHARDEV: stat.S_IFCHR, BLOCKDEV: stat.S_IFBLK, FIFO: stat.S_IFIFO}
# What a layer may write to disk, bounded before it is written (bounded_decompress.py): a
# 1 MiB gzip of zeros can hold 1 TiB. As the accounts reader bounds a base: 100 times the
# blob after 64 MiB; 64 GiB a layer at most.
MAX_RATIO, SLACK, MAX_TOTAL = 100, 64 << 20, 64 << 30


def unpack(layers: Iterable[Tuple[str, str]], root: str,
           ledger: Optional[Ledger] = None) -> Ledger:
    """Apply `layers` ((blob path, media type), lowest first) to `root` (made if absent)."""
    if ledger is None:
        ledger = Ledger(real=os.geteuid() == 0)
    os.makedirs(root, exist_ok=True)
    for blob, media_type in layers:
        try:
            what = f"layer {blob!r} ({media_type})"
            try:
                _apply_blob(blob, root, ledger, what, _fast_members, FORWARD_CHUNK)
            except headers.Unusual:  # applied again from its start, as tarfile reads it
                _apply_blob(blob, root, ledger, what, _tarfile_members, 0)
        except OSError as err:
            raise OciBuildError(f"applying layer {blob!r} to {root!r}: {os_reason(err)}") from None
        except tarfile.TarError as err:
            raise OciBuildError(f"layer {blob!r} is not a valid tar stream: {err}") from None
    return ledger


def _fast_members(stream: BinaryIO) -> members.Members:
    return members.fast(stream)


def _tarfile_members(stream: BinaryIO) -> members.Members:
    with open_stream(stream) as tar:
        yield from members.of_tarfile(tar)


def _apply_blob(blob: str, root: str, ledger: Ledger, what: str,
                layer_members: Callable[[BinaryIO], members.Members], ahead: int) -> None:
    """One layer over `root`. Applying a layer again from its start, over what a first try
    applied of it, gives what one pass gives: each entry replaces what is at its path, a
    whiteout spares this layer's own paths, an opaque marker removes what this pass has not
    written yet (and this pass writes it again after)."""
    with open(blob, "rb") as raw, open_decompressed(
            raw, what, os.path.getsize(blob), max_ratio=MAX_RATIO, slack=SLACK,
            max_total=MAX_TOTAL) as stream:
        stream.declare(0, what, ahead)  # the first header, and a reader's chunk past it
        _apply(stream, layer_members(stream), root, ledger, what, ahead)


def _apply(stream: BoundedReader, found: members.Members, root: str, ledger: Ledger,
           what: str, ahead: int) -> None:
    # This layer's paths and their parents: its own whiteouts and opaque markers spare them.
    written: Set[str] = set()
    for member, read in found:
        stream.declare(member.size if member.isfile() else 0, f"{what}: {member.name!r}",
                       ahead)
        path = normalize(member.name, what)
        if not path:
            continue  # the root directory itself keeps the root's metadata
        name = os.path.basename(path)
        if name == OPAQUE:
            _clear(root, os.path.dirname(path), written, ledger, what)
        elif name.startswith(WHITEOUT):
            target = whiteout_target(path, what)
            if target not in written:
                _remove(root, target, ledger, what)
        else:
            _entry(read, member, root, path, ledger, what)
            while path and path not in written:
                written.add(path)
                path = os.path.dirname(path)


def _remove(root: str, path: str, ledger: Ledger, what: str) -> None:
    try:
        parent_dir(root, path, what, create=False)
    except (FileNotFoundError, OciBuildError):
        return  # nothing there to delete, or under a non-directory: nothing to do either
    full = on_disk(root, path)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(full)
    else:
        os.unlink(full)
    ledger.forget(path)


def _clear(root: str, directory: str, written: Set[str], ledger: Ledger, what: str) -> None:
    try:  # the directory and its parents walked with lstat: never list one a link leads to
        parent_dir(root, f"{directory}/." if directory else ".", what, create=False)
    except (FileNotFoundError, OciBuildError):
        return
    full = on_disk(root, directory)
    if not os.path.isdir(full) or os.path.islink(full):
        return
    prefix = directory + "/" if directory else ""
    for name in os.listdir(full):
        child = prefix + name
        if child not in written:
            _remove(root, child, ledger, what)


def _entry(read: members.Read, member: tarfile.TarInfo, root: str, path: str,
           ledger: Ledger, what: str) -> None:
    fault = owner_fault(member.uid, member.gid) or \
        (device_fault(member.devmajor, member.devminor) if member.ischr() or member.isblk()
         else None) or \
        text_fault([("link target", member.linkname)] if member.issym() else [],
                   xattr_names(member.pax_headers))
    if fault is not None:
        raise OciBuildError(f"{what}: entry {member.name!r}: {fault}; the image is damaged")
    parent_dir(root, path, what)
    full = on_disk(root, path)
    if member.islnk():
        _hardlink(root, path, normalize(member.linkname, what), ledger, what)
        return
    kind = _KINDS.get(member.type)
    if kind is None:
        raise OciBuildError(f"{what}: entry {member.name!r} has tar type {member.type!r}, "
                            "which a layer cannot hold")
    try:
        existing = os.lstat(full)
    except FileNotFoundError:
        existing = None
    if existing is not None and not (kind == DIR and stat.S_ISDIR(existing.st_mode)):
        _remove(root, path, ledger, what)
    mode = member.mode & 0o7777
    real = ledger.real
    if kind == DIR:
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            os.mkdir(full, 0o700)
        os.chmod(full, mode if real else usable_mode(DIR, mode))
    elif kind == FILE:
        _write_file(read, member.size, full, mode if real else usable_mode(FILE, mode), what,
                    member.name)
    elif kind == SYMLINK:
        os.symlink(member.linkname, full)
    elif real:
        os.mknod(full, mode | _S_IF[kind], os.makedev(member.devmajor, member.devminor))
    else:
        os.close(os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL, usable_mode(FILE, mode)))
        os.chmod(full, usable_mode(FILE, mode))
    xattrs = _xattrs(member)
    if real:
        os.chown(full, member.uid, member.gid, follow_symlinks=False)
        if kind not in (SYMLINK, DIR):
            os.chmod(full, mode)  # after chown, which clears set-id bits
            _set_kept_xattrs(full, xattrs)  # after chown, which clears file capabilities
    if kind != SYMLINK or os.utime in os.supports_follow_symlinks:
        try:
            os.utime(full, (member.mtime, member.mtime), follow_symlinks=False)
        except (ValueError, OverflowError):  # a pax mtime of "nan", "inf" or 1e300
            raise OciBuildError(f"{what}: entry {member.name!r} has the modification time "
                                f"{member.mtime!r}, which no file can have (Go's archive/tar, "
                                "docker's reader, refuses it too); the image is damaged") from None
    device = (member.devmajor, member.devminor) if kind in (CHARDEV, BLOCKDEV) else (0, 0)
    meta = Meta(kind, mode if kind != SYMLINK else 0o777, member.uid, member.gid, device,
                xattrs)
    ledger.record(path, meta, os.lstat(full))


def _write_file(read: members.Read, size: int, full: str, mode: int, what: str,
                name: str) -> None:
    fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        done = members.copy_out(read, out, size)
    if done != size:
        raise OciBuildError(f"{what}: entry {name!r} ends after {done} of its {size} bytes; "
                            "the image is damaged")
    os.chmod(full, mode)


def _hardlink(root: str, path: str, target: str, ledger: Ledger, what: str) -> None:
    try:
        parent_dir(root, target, what, create=False)
        st = os.lstat(on_disk(root, target))
    except (FileNotFoundError, OciBuildError):
        raise OciBuildError(f"{what}: hard link /{path} names /{target}, which is not in the "
                            "image (a hard link must name a file written before it)") from None
    if stat.S_ISDIR(st.st_mode):
        raise OciBuildError(f"{what}: hard link /{path} names the directory /{target}")
    full = on_disk(root, path)
    if os.path.lexists(full):
        _remove(root, path, ledger, what)
    os.link(on_disk(root, target), full, follow_symlinks=False)
    record = ledger.records.get(target)
    if record is not None:
        ledger.record(path, record.meta, os.lstat(full))


def _set_kept_xattrs(full: str, xattrs: Tuple[Tuple[str, bytes], ...]) -> None:
    """As root, the xattrs a step's layer keeps (ledger.KEPT_XATTRS: a file capability) on
    disk, where the step sees them and its snapshot reads them back: unset, a step that only
    chmods `ping` layered it without its cap_net_raw. A filesystem without xattrs, or a
    value the kernel refuses, leaves the file without it (moby's unpacker ignores the first)."""
    for name, value in xattrs:
        if name in KEPT_XATTRS:
            try:
                os.setxattr(full, name, value, follow_symlinks=False)
            except OSError:
                pass


def _xattrs(member: tarfile.TarInfo) -> Tuple[Tuple[str, bytes], ...]:
    return tuple(sorted(
        (key[len(XATTR):], value.encode("utf-8", "surrogateescape"))
        for key, value in member.pax_headers.items() if key.startswith(XATTR)))
