"""An independent model of an image's tree, for the rootfs tests.

`apply_layer` applies a layer tar to a model the way the OCI image spec describes it (and
containerd applies it), written here from the spec rather than from ocibuild.rootfs, so a
diff checked against it is checked against the spec. A model maps a path to a `Node`;
hard-linked paths share one Node object.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from dataclasses import dataclass
from typing import Dict, Optional, Set

KINDS = {tarfile.REGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
         tarfile.CHRTYPE: "chardev", tarfile.BLKTYPE: "blockdev", tarfile.FIFOTYPE: "fifo"}


@dataclass
class Node:
    kind: str
    mode: int
    uid: int = 0
    gid: int = 0
    content: bytes = b""
    target: Optional[str] = None
    device: tuple = (0, 0)

    def view(self) -> tuple:
        return (self.kind, self.mode, self.uid, self.gid, self.content, self.target, self.device)


Model = Dict[str, Node]


def remove(model: Model, path: str) -> None:
    for p in [p for p in model if p == path or p.startswith(path + "/")]:
        del model[p]


def apply_layer(model: Model, data: bytes) -> None:
    written: Set[str] = set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = list(tar)
        # Whiteouts first: the spec says they apply to the layers below, whatever their order.
        for m in members:
            path = m.name.rstrip("/")
            parent, name = posixpath.split(path)
            if name == ".wh..wh..opq":
                for p in [p for p in model if p.startswith(parent + "/" if parent else "")]:
                    if p != parent:
                        del model[p]
            elif name.startswith(".wh."):
                remove(model, posixpath.join(parent, name[4:]))
        for m in members:
            path = m.name.rstrip("/")
            if posixpath.basename(path).startswith(".wh."):
                continue
            assert path not in written, f"{path} twice in one layer"
            written.add(path)
            parent = posixpath.dirname(path)
            assert not parent or model.get(parent, Node("missing", 0)).kind == "dir", \
                f"{path}: parent is not a directory in the model"
            if m.islnk():
                model[path] = model[m.linkname]
                continue
            kind = KINDS[m.type]
            old = model.get(path)
            if old is not None and not (old.kind == "dir" and kind == "dir"):
                remove(model, path)
            content = tar.extractfile(m).read() if kind == "file" else b""
            node = Node(kind, m.mode, m.uid, m.gid, content,
                        m.linkname if kind == "symlink" else None,
                        (m.devmajor, m.devminor) if kind in ("chardev", "blockdev") else (0, 0))
            if kind == "dir" and old is not None and old.kind == "dir":
                old.mode, old.uid, old.gid = node.mode, node.uid, node.gid
            else:
                model[path] = node


def views(model: Model) -> Dict[str, tuple]:
    return {p: n.view() for p, n in model.items()}


def link_groups(model: Model) -> Set[frozenset]:
    by_id: Dict[int, Set[str]] = {}
    for p, n in model.items():
        if n.kind == "file":
            by_id.setdefault(id(n), set()).add(p)
    return {frozenset(g) for g in by_id.values() if len(g) > 1}


# A base layer with what RUN steps meet: owners, set-id bits, a device, hard and symbolic
# links, a sticky directory.
BASE = [  # (path, kind, mode, uid, gid, content / target / device)
    ("etc", "dir", 0o755, 0, 0, None),
    ("etc/passwd", "file", 0o644, 0, 0, b"root:x:0:0::/root:/bin/sh\n"),
    ("etc/shadow", "file", 0o640, 0, 42, b"root:*:1::::::\n"),
    ("usr", "dir", 0o755, 0, 0, None),
    ("usr/bin", "dir", 0o755, 0, 0, None),
    ("usr/bin/su", "file", 0o4755, 0, 0, b"\x7fELF su"),
    ("usr/bin/sg", "link", 0o4755, 0, 0, "usr/bin/su"),
    ("usr/bin/sh", "symlink", 0o777, 0, 0, "/bin/busybox"),
    ("home", "dir", 0o755, 0, 0, None),
    ("home/app", "dir", 0o700, 1000, 1000, None),
    ("home/app/.profile", "file", 0o600, 1000, 1000, b"PATH=$PATH\n"),
    ("var", "dir", 0o755, 0, 0, None),
    ("var/null", "chardev", 0o666, 0, 0, (1, 3)),
    ("var/spool", "dir", 0o1777, 0, 0, None),
    ("a", "dir", 0o755, 0, 0, None),
    ("a/b", "file", 0o644, 0, 0, b"ab"),
]
def base_model() -> dict:
    model = {}
    for path, kind, mode, uid, gid, extra in BASE:
        if kind == "link":
            model[path] = model[extra]
        elif kind == "file":
            model[path] = Node("file", mode, uid, gid, extra)
        elif kind == "symlink":
            model[path] = Node("symlink", mode, uid, gid, target=extra)
        elif kind == "chardev":
            model[path] = Node("chardev", mode, uid, gid, device=extra)
        else:
            model[path] = Node("dir", mode, uid, gid)
    return model


def base_tar() -> bytes:
    out = io.BytesIO()
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "chardev": tarfile.CHRTYPE, "link": tarfile.LNKTYPE}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, mode, uid, gid, extra in BASE:
            info = tarfile.TarInfo(path)
            info.type, info.mode, info.uid, info.gid, info.mtime = types[kind], mode, uid, gid, 5
            data = extra if kind == "file" else b""
            if kind in ("symlink", "link"):
                info.linkname = extra
            if kind == "chardev":
                info.devmajor, info.devminor = extra
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


