"""The base's directories and symlinks, as an unpacker leaves them (ocibuild.layer.base_tree).

Checked against a real unpacker: generated stacks of layers (directories, files, symlinks,
replacements, whiteouts, opaque directories) are unpacked by `umoci unpack --rootless`, and
the tree read from the blobs must be the rootfs umoci made.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import List, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild import canonical_json, mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import REF_NAME, Descriptor
from ocibuild.layer.base_tree import MAX_RATIO, base_tree
from ocibuild.layout import OciLayout

from .conftest import need, run_ocibuild, run_tool

Member = Tuple[str, str, str]  # (name, "dir" | "file" | "symlink", link target)


def tar_of(members: Sequence[Member]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            info.type = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE,
                         "symlink": tarfile.SYMTYPE}[kind]
            info.linkname = target
            tar.addfile(info, io.BytesIO(b"") if kind == "file" else None)
    return out.getvalue()


def layout_of(path: Path, layers: List[bytes]) -> OciLayout:
    """A one-image layout, ref name "latest", of gzip layers of these tars."""
    layout = OciLayout(path)
    blobs = [layout.write_blob_bytes(gzip.compress(t, mtime=0), mediatypes.OCI_LAYER_GZIP)
             for t in layers]
    config = {"os": "linux", "architecture": "amd64", "config": {},
              "rootfs": {"type": "layers",
                         "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]},
              "history": [{"created": "2020-01-01T00:00:00Z"} for _ in layers]}
    config_desc = layout.write_blob_bytes(canonical_json.dumps(config), mediatypes.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                "config": config_desc.to_json(), "layers": [b.to_json() for b in blobs]}
    desc = layout.write_blob_bytes(canonical_json.dumps(manifest), mediatypes.OCI_MANIFEST)
    layout.write_index([Descriptor(desc.media_type, desc.digest, desc.size,
                                   annotations={REF_NAME: "latest"})])
    layout.write_oci_layout_file()
    return layout


def tree_by_cli(tmp_path: Path, layout: Path) -> dict:
    (tmp_path / "req.json").write_text(json.dumps(
        {"version": 1, "kind": "base-tree", "layout": str(layout), "ref_name": "latest"}))
    proc = run_ocibuild("run", "--request", "req.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


MERGED_USR = [
    [("usr/", "dir", ""), ("usr/bin/", "dir", ""), ("usr/bin/sh", "file", ""),
     ("usr/lib/", "dir", ""), ("usr/lib/libc.so", "file", ""), ("bin", "symlink", "usr/bin"),
     ("lib", "symlink", "usr/lib"), ("./opt/x/", "dir", ""), ("/tmp/", "dir", ""),
     ("srv", "symlink", "/data"), ("../evil/", "dir", "")],
    [("opt/.wh.x", "file", ""), ("usr/lib/.wh..wh..opq", "file", ""), ("usr/lib/new/", "dir", ""),
     ("srv/", "dir", ""), ("srv/www/", "dir", ""), ("tmp", "symlink", "/var/tmp")],
]


def test_a_merged_usr_base_with_whiteouts(tmp_path: Path) -> None:
    layout = layout_of(tmp_path / "base", [tar_of(m) for m in MERGED_USR])
    assert tree_by_cli(tmp_path, layout.path) == {
        "version": 1, "kind": "base-tree-result",
        # opt/x whited out, usr/lib emptied and refilled, the srv link replaced by a
        # directory, tmp replaced by a link, `../evil` skipped as unpackers skip it.
        "directories": ["opt", "srv", "srv/www", "usr", "usr/bin", "usr/lib", "usr/lib/new"],
        "symlinks": [["bin", "usr/bin"], ["lib", "usr/lib"], ["tmp", "/var/tmp"]],
    }


def test_a_hostile_base_is_one_error(tmp_path: Path) -> None:
    # A 100 MiB file of zeros in ~100 KiB: past 200 times its size and the 64 MiB of slack.
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 100 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    big = gzip.compress(out.getvalue(), mtime=0)
    cases = [
        (b"not gzip at all", "cannot be read as a application/vnd.oci.image.layer.v1.tar+gzip "
         "(BadGzipFile); the base image is damaged"),
        (big, f"decompresses to more than {MAX_RATIO} times its size; the base image is "
         "hostile or damaged: use another"),
    ]
    for blob, message in cases:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        with pytest.raises(OciBuildError) as err:
            base_tree([(digest, mediatypes.OCI_LAYER_GZIP, len(blob), io.BytesIO(blob))])
        assert str(err.value) == f"the base's layer {digest} {message}"


_PARTS = st.sampled_from(["a", "b", "c"])
_PATHS = st.lists(_PARTS, min_size=1, max_size=3).map("/".join)


@st.composite
def layer_stacks(draw):
    """Stacks real layer writers make: no member under what is, at that point, a file or a
    link (umoci, like other unpackers, refuses to unpack through one)."""
    kinds: dict = {}  # path -> kind, as the stack so far leaves it

    def drop(prefix: str, itself: bool) -> None:
        for path in [p for p in kinds if p.startswith(prefix + "/") or (itself and p == prefix)]:
            del kinds[path]

    layers = []
    for _ in range(draw(st.integers(1, 3))):
        ops = [(draw(_PATHS), draw(st.sampled_from(["dir", "file", "symlink", "whiteout",
                                                     "opaque"]))) for _ in range(draw(st.integers(1, 6)))]
        written = {p for p, k in ops if k not in ("whiteout", "opaque")}
        members, seen = [], set()
        # Whiteouts first, as layer writers put them, never of what the layer itself writes.
        for path, kind in sorted(ops, key=lambda op: op[1] not in ("whiteout", "opaque")):
            parents = [path.rsplit("/", n)[0] for n in range(1, path.count("/") + 1)]
            near = any(w == path or w.startswith(path + "/") or path.startswith(w + "/")
                       for w in written)
            if path in seen or any(kinds.get(p, "dir") != "dir" for p in parents):
                continue
            if kind == "whiteout" and not near:
                head, _, name = path.rpartition("/")
                members.append((f"{head}/.wh.{name}" if head else f".wh.{name}", "file", ""))
                drop(path, itself=True)
            elif kind == "opaque" and not near and kinds.get(path, "dir") == "dir":
                members.append((f"{path}/.wh..wh..opq", "file", ""))
                drop(path, itself=False)
            elif kind in ("dir", "file", "symlink"):
                members.append((path, kind, "x" if kind == "symlink" else ""))
                if kind != "dir" or kinds.get(path) != "dir":
                    drop(path, itself=True)
                for parent in parents:
                    kinds.setdefault(parent, "dir")
                kinds[path] = kind
            else:
                continue
            seen.add(path)
        layers.append(members)
    return layers


def _rootfs_kinds(rootfs: Path) -> dict:
    directories, links = [], []
    for here, dirs, files in os.walk(rootfs):
        for name in dirs + files:
            path = Path(here) / name
            relative = str(path.relative_to(rootfs))
            if path.is_symlink():
                links.append([relative, os.readlink(path)])
            elif path.is_dir():
                directories.append(relative)
    return {"directories": sorted(directories), "symlinks": sorted(links)}


GENERATED = 30


@settings(max_examples=GENERATED, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(stack=layer_stacks())
def test_the_tree_is_what_umoci_unpacks(stack, tmp_path_factory) -> None:
    umoci = need("umoci")
    work = tmp_path_factory.mktemp("stack")
    tars = [tar_of(m) for m in stack]
    layout = layout_of(work / "base", tars)
    run_tool([umoci, "unpack", "--rootless", "--image", f"{layout.path}:latest",
              str(work / "bundle")])
    expected = _rootfs_kinds(work / "bundle/rootfs")
    got = tree_by_cli(work, layout.path)
    assert {k: got[k] for k in ("directories", "symlinks")} == expected, stack
