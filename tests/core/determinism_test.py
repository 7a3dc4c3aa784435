"""The same input gives byte-identical layers and images, whatever the incidental state:
umask, mtimes, owners, directory listing order, checkout path, hard links in the sandbox."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ocibuild.layer.builder import build_layer
from ocibuild.layer.entries import collect_entries

from .conftest import make_tree, write
from .layouts import assemble_json, layer_descriptor

# Checked identical on CPython 3.9, 3.10, 3.11, 3.12 and 3.13.
GOLDEN_DIFF_ID = "sha256:a625d916b8d8b991403911fd0fd1b4f269f2b8db913298fe2e5fad5f355da5ec"


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


def golden_tree(root: Path) -> Path:
    make_tree(root)
    write(root / ("long-" * 25) / "name.txt", b"long")  # needs a PAX header
    write(root / "naïve.txt", b"utf-8")  # so does this
    return root


def test_golden_diff_id(tmp_path: Path) -> None:
    """The tar bytes are pinned: a change to the header policy, the entry order or `tarfile`'s
    output shows up here. (Compressed digests also depend on zlib, so only the diff_id.)"""
    entries = collect_entries([(str(golden_tree(tmp_path / "in")), "app")])
    blob = build_layer(entries, str(tmp_path / "out"), compression="none", mtime=1700000000)
    assert blob.diff_id == GOLDEN_DIFF_ID
