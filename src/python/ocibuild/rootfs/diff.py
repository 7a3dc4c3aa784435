"""The layer of a RUN step: what changed between a snapshot and the tree now.

As Docker stores it (moby's overlay2 differ, which containerd's and buildah's match):
* a path added or changed, content or metadata alone (mode, owner, link target, device,
  mtime), is written whole;
* a path deleted becomes `.wh.NAME` in its parent, only the topmost one of a deleted subtree;
* a directory where the layer below had something else, or a directory deleted and made
  again (a new inode), is written with `.wh..wh..opq` right after it and all its contents:
  nothing of the old one shows through;
* a path that became another kind is written as its new self: extractors replace whatever is
  at a path unless both are directories, so no whiteout is needed;
* files sharing an inode are one file and hard links to it (a link made to a file of the
  layer below changes that file's link count, so it is written too, as overlayfs copies it up);
* every parent directory of an entry is written too (as the rest of this project's layers:
  runtimes otherwise invent missing ones with modes that differ between tools).

Headers: owners, modes, devices and xattrs from the ledger (never the build user's ids), no
user or group names, mtimes clamped to SOURCE_DATE_EPOCH (a file older than it keeps its
time, as BuildKit's rewrite-timestamp does), entries sorted by path components with a
directory's opaque marker first among its children.
"""

from __future__ import annotations

import posixpath
from typing import Dict, List, Optional, Set, Tuple

from ocibuild.layer.builder import LayerBlob, build_layer_with
from ocibuild.layer.compression import GZIP
from ocibuild.layer.entries import DIR, FILE, HARDLINK, LayerEntry
from ocibuild.layer.tar_writer import write_tar
from ocibuild.rootfs.ledger import Ledger
from ocibuild.rootfs.paths import OPAQUE, WHITEOUT, on_disk
from ocibuild.rootfs.snapshot import Node, Snapshot, content_digest, snapshot


def _changed(before: Node, after: Node, full: str) -> bool:
    if before.meta != after.meta or before.link_target != after.link_target:
        return True
    if after.meta.kind != FILE:
        return before.meta.kind != DIR and before.stamp[0] != after.stamp[0]  # mtime
    if before.ino != after.ino or before.stamp != after.stamp:
        return True
    # Same stamp: a write within the same clock tick as the snapshot still shows in content.
    return before.digest is not None and before.digest != (after.digest or content_digest(full))


def _key(path: str, opaque: bool = False) -> Tuple[bytes, ...]:
    parts = tuple(p.encode("utf-8") for p in path.split("/"))
    return parts + (b"",) if opaque else parts


def _under(path: str, dirs: Set[str]) -> bool:
    parent = posixpath.dirname(path)
    while parent:
        if parent in dirs:
            return True
        parent = posixpath.dirname(parent)
    return False


def changes(before: Snapshot, after: Snapshot, root: str) -> Tuple[Set[str], Set[str], Set[str]]:
    """(paths to write, paths deleted, opaque directories)."""
    opaque: Set[str] = set()
    emit: Set[str] = set()
    for path in sorted(after.nodes, key=_key):
        node, old = after.nodes[path], before.nodes.get(path)
        if old is None or _under(path, opaque):
            emit.add(path)
        elif node.meta.kind == DIR and (old.meta.kind != DIR or old.ino != node.ino
                                        or old.birth_ns != node.birth_ns):
            opaque.add(path)
            emit.add(path)
        elif _changed(old, node, on_disk(root, path)):
            emit.add(path)
    deleted = set()
    for path in before.nodes:
        if path in after.nodes:
            continue
        parent = posixpath.dirname(path)
        if parent and (after.nodes.get(parent) is None or after.nodes[parent].meta.kind != DIR):
            continue  # the parent went or became a file: its own entry covers this
        if parent in opaque or _under(path, opaque):
            continue
        deleted.add(path)
    return emit, deleted, opaque


def _entry(path: str, node: Node, root: str, epoch: int) -> LayerEntry:
    meta = node.meta
    return LayerEntry(path, meta.kind, source=on_disk(root, path) if meta.kind == FILE else None,
                      mode=meta.mode, uid=meta.uid, gid=meta.gid, link_target=node.link_target,
                      size=node.size, mtime=min(node.mtime, epoch), device=meta.device,
                      xattrs=meta.xattrs)


def layer_entries(before: Snapshot, after: Snapshot, root: str, epoch: int) -> List[LayerEntry]:
    emit, deleted, opaque = changes(before, after, root)
    for path in list(emit) + list(deleted):
        parent = posixpath.dirname(path)
        while parent and parent not in emit:
            emit.add(parent)
            parent = posixpath.dirname(parent)
    keyed: List[Tuple[Tuple[bytes, ...], LayerEntry]] = []
    first_of_inode: Dict[int, str] = {}
    for path in sorted(emit, key=_key):
        node = after.nodes[path]
        entry = _entry(path, node, root, epoch)
        if node.meta.kind == FILE and node.stamp[3] > 1:
            first = first_of_inode.setdefault(node.ino, path)
            if first != path:
                entry = LayerEntry(path, HARDLINK, mode=entry.mode, uid=entry.uid, gid=entry.gid,
                                   link_target=first, mtime=entry.mtime, xattrs=entry.xattrs)
        keyed.append((_key(path), entry))
    for path in deleted:
        parent, name = posixpath.split(path)
        keyed.append((_key(path), LayerEntry(posixpath.join(parent, WHITEOUT + name), FILE,
                                             mode=0o644, mtime=epoch)))
    for path in opaque:
        keyed.append((_key(path, opaque=True), LayerEntry(posixpath.join(path, OPAQUE), FILE,
                                                          mode=0o644, mtime=epoch)))
    keyed.sort(key=lambda item: item[0])
    return [entry for _, entry in keyed]


def diff_layer(before: Snapshot, root: str, ledger: Ledger, out_dir: str, *,
               compression: str = GZIP, level: Optional[int] = None,
               source_date_epoch: int = 0, engine: Optional[str] = None) -> LayerBlob:
    """The layer blob of what changed in `root` since `before`, written to
    `out_dir/blobs/sha256/<hex>`; its descriptor (media type, digest, size, diff_id)."""
    after = snapshot(root, ledger, before=False)
    entries = layer_entries(before, after, root, source_date_epoch)
    return build_layer_with(lambda out: write_tar(entries, out, mtime=source_date_epoch,
                                                     whiteouts=True),
                            out_dir, compression=compression, level=level, engine=engine)
