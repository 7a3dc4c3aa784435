"""The same input gives byte-identical layers and images, whatever the incidental state:
umask, mtimes, owners, directory listing order, checkout path, hard links in the sandbox."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from ocibuild.layer.builder import build_layer
from ocibuild.layer.entries import collect_entries

from .conftest import make_tree, write
from .layouts import assemble_json, layer_descriptor


def original(root: Path) -> Path:
    tree = make_tree(root)
    write(tree / "data/copy1", b"twin")
    write(tree / "data/copy2", b"twin")
    return tree


def perturbed(root: Path) -> Path:
    """The same content, with everything a layer must not depend on changed."""
    old = os.umask(0o077)
    try:
        tree = make_tree(root, file_mode=0o600, exec_mode=0o700, reverse=True)
        write(tree / "data/copy2", b"twin", 0o600)
        os.link(tree / "data/copy2", tree / "data/copy1")  # as a Pants sandbox may do
    finally:
        os.umask(old)
    for i, path in enumerate(sorted(tree.rglob("*"))):
        os.utime(path, (1000 + i, 2000000000 - i), follow_symlinks=False)
        if os.geteuid() == 0:
            os.lchown(path, 1234 + i, 5678)
    return tree


def build_image(tree: Path, out: Path, compression: str) -> dict:
    blob = build_layer(collect_entries([(str(tree), "app")]), str(out / "layer"),
                       compression=compression)
    (out / "layer.json").write_text(json.dumps(blob.to_json()))
    spec = {"layers": [layer_descriptor(out)], "history": ["app"],
            "settings": {"entrypoint": ["/app/bin/run.sh"]}, "created_epoch": 0}
    return {"layer": blob, "image": assemble_json(spec, out / "image")}


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_byte_identical_across_incidental_differences(tmp_path: Path, compression: str) -> None:
    a = build_image(original(tmp_path / "a"), tmp_path / "out-a", compression)
    old = os.umask(0o077)
    try:
        b = build_image(perturbed(tmp_path / "elsewhere/deeper/b"), tmp_path / "out-b",
                        compression)
    finally:
        os.umask(old)
    assert a["layer"] == b["layer"]
    assert a["image"]["manifest_digest"] == b["image"]["manifest_digest"]
    blob = a["layer"].digest.split(":")[1]
    assert (tmp_path / "out-a/layer/blobs/sha256" / blob).read_bytes() == \
        (tmp_path / "out-b/layer/blobs/sha256" / blob).read_bytes()
    for name in ("index.json", "oci-layout"):
        assert (tmp_path / "out-a/image" / name).read_bytes() == \
            (tmp_path / "out-b/image" / name).read_bytes()


def test_content_changes_do_change_the_digest(tmp_path: Path) -> None:
    a = build_image(original(tmp_path / "a"), tmp_path / "out-a", "gzip")
    tree = original(tmp_path / "b")
    os.chmod(tree / "data/a.txt", 0o744)  # gaining an execute bit is a content change
    b = build_image(tree, tmp_path / "out-b", "gzip")
    assert a["layer"].diff_id != b["layer"].diff_id


LONG = "long-" * 25  # a directory name that needs a PAX header
GOLDEN_MTIME = 1700000000


def golden_tree(root: Path) -> Path:
    make_tree(root)
    write(root / LONG / "name.txt", b"long")
    write(root / "naïve.txt", b"utf-8")  # a non-ASCII name: so does this one
    return root


# The layer of `golden_tree` mapped to "app", as the header policy in ocibuild.layer.entries
# says it must be, written out by hand: every parent directory; paths sorted by component in
# UTF-8 byte order; owner 0:0 without names; files 0644 or 0755, directories 0755, symlinks 0777.
GOLDEN_ENTRIES = [
    ("app", tarfile.DIRTYPE, 0o755, None),
    ("app/bin", tarfile.DIRTYPE, 0o755, None),
    ("app/bin/run.sh", tarfile.REGTYPE, 0o755, b"#!/bin/sh\necho run\n"),
    ("app/data", tarfile.DIRTYPE, 0o755, None),
    ("app/data/a.txt", tarfile.REGTYPE, 0o644, b"a\n"),
    ("app/data/b.txt", tarfile.REGTYPE, 0o644, b"bee\n"),
    ("app/data/link", tarfile.SYMTYPE, 0o777, "a.txt"),
    ("app/data/nested", tarfile.DIRTYPE, 0o755, None),
    ("app/data/nested/deep", tarfile.DIRTYPE, 0o755, None),
    ("app/data/nested/deep/c.bin", tarfile.REGTYPE, 0o644, bytes(range(256)) * 40),
    ("app/data/up", tarfile.SYMTYPE, 0o777, "../bin/run.sh"),
    ("app/empty", tarfile.DIRTYPE, 0o755, None),
    (f"app/{LONG}", tarfile.DIRTYPE, 0o755, None),
    (f"app/{LONG}/name.txt", tarfile.REGTYPE, 0o644, b"long"),
    ("app/naïve.txt", tarfile.REGTYPE, 0o644, b"utf-8"),
]


def oracle_tar() -> bytes:
    """The expected tar stream, written by the standard library's `tarfile` (PAX format,
    UTF-8) from GOLDEN_ENTRIES: nothing of ocibuild is involved."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name, kind, mode, content in GOLDEN_ENTRIES:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, mode, GOLDEN_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if kind == tarfile.SYMTYPE:
                info.linkname = content
            data = content if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


def test_golden_layer_is_what_tarfile_writes_for_the_policy(tmp_path: Path) -> None:
    """The tar bytes are pinned by an independent oracle: a change to the header policy, the
    entry order or the header encoding shows up here, as a byte difference."""
    expected = oracle_tar()
    entries = collect_entries([(str(golden_tree(tmp_path / "in")), "app")])
    plain = build_layer(entries, str(tmp_path / "plain"), compression="none", mtime=GOLDEN_MTIME)
    blob = tmp_path / "plain/blobs/sha256" / plain.digest.split(":")[1]
    assert blob.read_bytes() == expected
    diff_id = "sha256:" + hashlib.sha256(expected).hexdigest()
    assert (plain.diff_id, plain.digest, plain.size) == (diff_id, diff_id, len(expected))
    # Compressed: the `gzip` module reads back the same tar; digest and size are the blob's.
    gz = build_layer(entries, str(tmp_path / "gz"), compression="gzip", mtime=GOLDEN_MTIME)
    blob = (tmp_path / "gz/blobs/sha256" / gz.digest.split(":")[1]).read_bytes()
    assert gzip.decompress(blob) == expected
    assert (gz.diff_id, gz.digest, gz.size) == (
        diff_id, "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob))
