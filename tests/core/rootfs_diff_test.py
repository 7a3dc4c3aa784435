"""A RUN step's layer, entry by entry, as Docker's overlay2 differ writes it; and the same
layers unpacked by umoci (an independent extractor) give the tree the step left."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.diff import diff_layer
from ocibuild.rootfs.ledger import Ledger, Meta
from ocibuild.rootfs.snapshot import CLOCK_PROBE, Snapshot, racy, snapshot
from ocibuild.rootfs.unpack import unpack
from tests.core.conftest import need, run_tool
from tests.core.rootfs_model import base_tar

TAR = "application/vnd.oci.image.layer.v1.tar"


@pytest.fixture()
def tree(tmp_path):
    (tmp_path / "base.tar").write_bytes(base_tar())
    root = tmp_path / "root"
    ledger = unpack([(str(tmp_path / "base.tar"), TAR)], str(root), Ledger(real=False))
    return tmp_path, root, ledger


def layer(tmp_path: Path, blob) -> list:
    data = (tmp_path / "blobs" / "sha256" / blob.digest.split(":")[1]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, m.type.decode(), oct(m.mode), m.uid, m.gid, m.mtime, m.linkname,
                 m.uname, m.gname) for m in tar]


def test_deletions_are_whiteouts_of_the_topmost_path(tree):
    tmp_path, root, ledger = tree
    before = snapshot(str(root), ledger)
    shutil.rmtree(root / "home")
    (root / "etc/shadow").unlink()
    blob = diff_layer(before, str(root), ledger, str(tmp_path), compression="none")
    # Sorted by the path each entry is about: a whiteout sits where its target was.
    assert layer(tmp_path, blob) == [
        ("etc", "5", "0o755", 0, 0, 0, "", "", ""),
        ("etc/.wh.shadow", "0", "0o644", 0, 0, 0, "", "", ""),
        (".wh.home", "0", "0o644", 0, 0, 0, "", "", ""),
    ]


def test_a_directory_made_again_is_opaque_and_written_whole(tree):
    tmp_path, root, ledger = tree
    before = snapshot(str(root), ledger)
    time.sleep(0.05)  # a birth time later than the old directory's (the file clock is coarse)
    shutil.rmtree(root / "a")
    (root / "a").mkdir()
    os.chmod(root / "a", 0o750)
    (root / "a/new").write_bytes(b"n")
    os.utime(root / "a/new", (10, 10))
    blob = diff_layer(before, str(root), ledger, str(tmp_path), compression="none",
                      source_date_epoch=100)
    assert layer(tmp_path, blob) == [
        ("a", "5", "0o750", 0, 0, 100, "", "", ""),
        ("a/.wh..wh..opq", "0", "0o644", 0, 0, 100, "", "", ""),
        ("a/new", "0", "0o644", 0, 0, 10, "", "", ""),  # older than the epoch: kept
    ]


def test_a_kind_change_needs_no_whiteout(tree):
    tmp_path, root, ledger = tree
    before = snapshot(str(root), ledger)
    time.sleep(0.05)
    (root / "etc/passwd").unlink()
    (root / "etc/passwd").mkdir()  # file -> directory: opaque, as overlayfs marks it
    shutil.rmtree(root / "home/app")
    (root / "home/app").write_bytes(b"")  # directory -> file
    blob = diff_layer(before, str(root), ledger, str(tmp_path), compression="none")
    assert [row[:2] for row in layer(tmp_path, blob)] == [
        ("etc", "5"), ("etc/passwd", "5"), ("etc/passwd/.wh..wh..opq", "0"),
        ("home", "5"), ("home/app", "0"),
    ]


def test_metadata_alone_rewrites_the_entry_with_the_ledgers_owner_and_mode(tree):
    tmp_path, root, ledger = tree
    before = snapshot(str(root), ledger)
    # What fakeroot records for `chown 1000:1000 /etc/passwd; chmod 4711 /etc/passwd`.
    ledger.record("etc/passwd", Meta("file", 0o4711, 1000, 1000), os.lstat(root / "etc/passwd"))
    (root / "newfile").write_bytes(b"x")  # a file the step made: root's, whoever the build user is
    os.chown(root / "newfile", 4242, 4242)
    blob = diff_layer(before, str(root), ledger, str(tmp_path), compression="none")
    assert layer(tmp_path, blob) == [
        ("etc", "5", "0o755", 0, 0, 0, "", "", ""),
        ("etc/passwd", "0", "0o4711", 1000, 1000, 0, "", "", ""),
        ("newfile", "0", "0o644", 0, 0, 0, "", "", ""),
    ]


def test_a_hard_link_to_a_lower_file_writes_both(tree):
    tmp_path, root, ledger = tree
    before = snapshot(str(root), ledger)
    os.link(root / "etc/shadow", root / "etc/gshadow")
    blob = diff_layer(before, str(root), ledger, str(tmp_path), compression="none")
    assert layer(tmp_path, blob) == [
        ("etc", "5", "0o755", 0, 0, 0, "", "", ""),
        ("etc/gshadow", "0", "0o640", 0, 42, 0, "", "", ""),
        ("etc/shadow", "1", "0o640", 0, 42, 0, "etc/gshadow", "", ""),
    ]


def test_a_device_from_the_ledger_is_a_device_in_the_layer(tree):
    tmp_path, root, ledger = tree
    before = snapshot(str(root), ledger)
    os.close(os.open(root / "var/tty", os.O_CREAT | os.O_WRONLY, 0o644))
    ledger.record("var/tty", Meta("chardev", 0o620, 0, 5, (4, 1)), os.lstat(root / "var/tty"))
    blob = diff_layer(before, str(root), ledger, str(tmp_path), compression="none")
    data = (tmp_path / "blobs/sha256" / blob.digest.split(":")[1]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tty = tar.getmember("var/tty")
    assert (tty.type, tty.mode, tty.uid, tty.gid, tty.devmajor, tty.devminor) == (
        tarfile.CHRTYPE, 0o620, 0, 5, 4, 1)


def test_the_same_step_gives_the_same_layer(tree):
    tmp_path, root, ledger = tree
    digests = set()
    for _ in range(2):
        before = snapshot(str(root), ledger)
        (root / "a/b").write_bytes(b"changed")
        digests.add(diff_layer(before, str(root), ledger, str(tmp_path)).digest)
    assert len(digests) == 1


def test_a_name_that_is_a_whiteout_is_refused(tree):
    tmp_path, root, ledger = tree
    before = snapshot(str(root), ledger)
    (root / "etc/.wh.passwd").write_bytes(b"")
    with pytest.raises(OciBuildError) as err:
        diff_layer(before, str(root), ledger, str(tmp_path))
    assert str(err.value) == ("the RUN step left /etc/.wh.passwd: a name starting with '.wh.' "
                              "is a deletion marker in a layer; rename or delete it in the step")


def _oci_layout(tmp_path: Path, layers: list) -> Path:
    layout = tmp_path / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    def put(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": "sha256:" + digest, "size": len(data)}
    descs = [dict(put(data), mediaType=TAR) for data in layers]
    config = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]},
                             "history": [{"created": "1970-01-01T00:00:00Z"}] * len(descs)}).encode())
    manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
                               "layers": descs}).encode())
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [dict(
        manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
        annotations={"org.opencontainers.image.ref.name": "t"})]}))
    return layout


def _tree_view(root: Path) -> dict:
    view = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            target = os.readlink(full) if os.path.islink(full) else None
            content = open(full, "rb").read() if os.path.isfile(full) and not target else None
            view[rel] = (oct(st.st_mode), st.st_uid, st.st_gid, target, content,
                         st.st_rdev if not target else 0)
    return view


def test_umoci_unpacks_the_step_to_what_the_step_left(tree):
    """As root, umoci applies owners, modes and devices for real; we compare against the tree
    a root build (real ledger) leaves."""
    need("umoci")
    if os.geteuid() != 0:
        pytest.skip("umoci applies owners and devices only as root")
    tmp_path, _, _ = tree
    root = tmp_path / "realroot"
    ledger = unpack([(str(tmp_path / "base.tar"), TAR)], str(root), Ledger(real=True))
    before = snapshot(str(root), ledger)
    shutil.rmtree(root / "a")
    (root / "a").mkdir()
    (root / "a/x").write_bytes(b"x")
    (root / "etc/shadow").unlink()
    os.chown(root / "etc/passwd", 1000, 1001)
    os.chmod(root / "etc/passwd", 0o4751)
    os.mknod(root / "var/zero", 0o666 | 0o020000, os.makedev(1, 5))
    os.link(root / "usr/bin/su", root / "usr/bin/newgrp")
    (root / "usr/bin/sh").unlink()
    os.symlink("../x", root / "usr/bin/sh")
    blob = diff_layer(before, str(root), ledger, str(tmp_path), compression="none")
    step = (tmp_path / "blobs/sha256" / blob.digest.split(":")[1]).read_bytes()
    layout = _oci_layout(tmp_path, [base_tar(), step])
    run_tool([need("umoci"), "unpack", "--image", f"{layout}:t", str(tmp_path / "bundle")])
    got = _tree_view(tmp_path / "bundle" / "rootfs")
    want = _tree_view(root)
    assert got == want
    assert os.lstat(tmp_path / "bundle/rootfs/usr/bin/newgrp").st_ino == \
        os.lstat(tmp_path / "bundle/rootfs/usr/bin/su").st_ino


def test_the_tar_writer_extensions_read_back_with_tarfile():
    """Devices, binary xattrs and per-entry mtimes (the layer/ extensions RUN layers use)."""
    from ocibuild.layer.entries import BLOCKDEV, FIFO, FILE as F, LayerEntry
    from ocibuild.layer.tar_writer import write_tar
    out = io.BytesIO()
    cap = b"\x01\x00\x00\x02\xff\x00"
    write_tar([LayerEntry("disk", BLOCKDEV, mode=0o660, gid=6, device=(8, 1), mtime=7),
               LayerEntry("fifo", FIFO, mode=0o600),
               LayerEntry("ping", F, mode=0o755, xattrs=(("security.capability", cap),)),
               LayerEntry(".wh.gone", F)], out, mtime=99, whiteouts=True)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue()), encoding="utf-8",
                      errors="surrogateescape") as tar:
        disk, fifo, ping, gone = tar.getmembers()
    assert (disk.type, disk.devmajor, disk.devminor, disk.mtime, disk.gid) == (
        tarfile.BLKTYPE, 8, 1, 7, 6)
    assert (fifo.type, fifo.mtime) == (tarfile.FIFOTYPE, 99)
    assert ping.pax_headers["SCHILY.xattr.security.capability"].encode(
        "utf-8", "surrogateescape") == cap
    assert (gone.name, gone.size) == (".wh.gone", 0)


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """New content of the same size, the mtime put back: only ctime (and the content) say
    the file changed, as when a step writes within the clock tick of the snapshot."""
    st = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_the_filesystem_clock_decides_which_files_are_hashed(tree):
    """A tree just unpacked is all "now": the before-snapshot waits for the filesystem's
    clock to pass it instead of hashing every file, and a change after it still shows."""
    tmp_path, root, ledger = tree
    (root / "etc/app.conf").write_bytes(b"port=1\n")
    before = snapshot(str(root), ledger)
    assert [p for p, n in before.nodes.items() if n.digest is not None] == []
    assert not (root / CLOCK_PROBE).exists()
    _rewrite_in_place(root / "etc/app.conf", b"port=2\n")
    blob = diff_layer(before, str(root), ledger, str(tmp_path), compression="none")
    assert [e[0] for e in layer(tmp_path, blob)] == ["etc", "etc/app.conf"]


def test_without_a_clock_probe_recent_files_are_hashed(tree):
    """Where no probe can be written (a name the image already has), files changed in the
    last RACY_NS get a content hash, and one rewritten with the same stamp still shows."""
    tmp_path, root, ledger = tree
    (root / CLOCK_PROBE).write_bytes(b"the image's own\n")
    (root / "etc/app.conf").write_bytes(b"port=1\n")
    before = snapshot(str(root), ledger)
    hashed = {p for p, n in before.nodes.items() if n.digest is not None}
    assert "etc/app.conf" in hashed and CLOCK_PROBE in hashed
    assert hashed == set(racy(before.nodes, None, before.taken_ns))
    assert (root / CLOCK_PROBE).read_bytes() == b"the image's own\n"
    # The same stamp as the snapshot saw: only the content hash tells.
    node = before.nodes["etc/app.conf"]
    (root / "etc/app.conf").write_bytes(b"port=2\n")
    os.utime(root / "etc/app.conf", ns=(node.stamp[0], node.stamp[0]))
    st = (root / "etc/app.conf").stat()
    same = replace(node, stamp=(st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_nlink))
    pinned = Snapshot({**before.nodes, "etc/app.conf": same}, before.taken_ns)
    blob = diff_layer(pinned, str(root), ledger, str(tmp_path), compression="none")
    assert [e[0] for e in layer(tmp_path, blob)] == ["etc", "etc/app.conf"]


def test_racy_files_are_those_at_or_after_the_filesystem_clock(tree):
    _, root, ledger = tree
    nodes = snapshot(str(root), ledger, before=False).nodes
    ctimes = sorted({n.stamp[1] for n in nodes.values() if n.meta.kind == "file"})
    middle = ctimes[len(ctimes) // 2]
    assert racy(nodes, middle, 0) == [p for p, n in nodes.items()
                                      if n.meta.kind == "file" and n.stamp[1] >= middle]
    assert racy(nodes, ctimes[-1] + 1, 0) == []
    assert all(n.digest is None for n in nodes.values())
