"""Independent tools read what we write: umoci unpacks the image, skopeo inspects both the
layout and the docker-archive. Skipped where the tools are not installed."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from ocibuild.docker_archive import write_docker_archive
from ocibuild.layer.builder import build_layer
from ocibuild.layer.entries import collect_entries
from ocibuild.layout import OciLayout, resolve_image

from .conftest import make_tree, need, run_tool
from .layouts import assemble_json, layer_descriptor


def build_image(tmp_path: Path, compression: str) -> Path:
    tree = make_tree(tmp_path / "in")
    image_dir = tmp_path / "image"
    blob = build_layer(collect_entries([(str(tree), "app")]), str(image_dir),
                       compression=compression)
    (tmp_path / "layer.json").write_text(json.dumps(blob.to_json()))
    assemble_json({"layers": [layer_descriptor(tmp_path)], "history": ["app"],
                   "settings": {"entrypoint": ["/app/bin/run.sh"], "user": "65532"},
                   "ref_names": ["latest"]}, image_dir)
    return image_dir


def test_umoci_unpacks_the_layout(tmp_path: Path) -> None:
    umoci = need("umoci")
    image_dir = build_image(tmp_path, "gzip")
    bundle = tmp_path / "bundle"
    run_tool([umoci, "unpack", "--rootless", "--image", f"{image_dir}:latest", str(bundle)])
    rootfs = bundle / "rootfs/app"
    assert (rootfs / "bin/run.sh").read_bytes() == (tmp_path / "in/bin/run.sh").read_bytes()
    assert stat.S_IMODE((rootfs / "bin/run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((rootfs / "data/a.txt").stat().st_mode) == 0o644
    assert os.readlink(rootfs / "data/up") == "../bin/run.sh"
    assert (rootfs / "empty").is_dir()
    process = json.loads((bundle / "config.json").read_text())["process"]
    assert process["args"] == ["/app/bin/run.sh"]


def test_skopeo_reads_layout_and_docker_archive(tmp_path: Path) -> None:
    skopeo = need("skopeo")
    image_dir = build_image(tmp_path, "zstd")
    layout = OciLayout(image_dir)
    image = resolve_image(layout)
    md = image.manifest_descriptor
    from_layout = json.loads(run_tool([skopeo, "inspect", f"oci:{image_dir}:latest"]).stdout)
    assert (from_layout["Digest"], from_layout["Architecture"]) == (md.digest, "amd64")
    archive = tmp_path / "image.tar"
    write_docker_archive(layout, image, ["team/app:1.0"], str(archive))
    config = json.loads(run_tool([skopeo, "inspect", "--config",
                                  f"docker-archive:{archive}"]).stdout)
    assert config["config"]["User"] == "65532"


def test_multi_member_gzip_layers_read_everywhere(tmp_path: Path) -> None:
    """libdeflate gzip layers are one gzip member per MiB of tar: Go's gzip (umoci, skopeo,
    podman; containerd and docker use the same reader) must read all members, and check the
    uncompressed digest against the config's diff_id."""
    tree = make_tree(tmp_path / "in")
    big = b"".join(b"%d line of a multi-member layer\n" % i for i in range(120_000))  # 4 MB
    (tree / "data/big.txt").write_bytes(big)
    image_dir = tmp_path / "image"
    blob = build_layer(collect_entries([(str(tree), "app")]), str(image_dir))
    assert (image_dir / "blobs/sha256" / blob.digest[7:]).read_bytes().count(
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00") >= 4  # members, one per MiB
    (tmp_path / "layer.json").write_text(json.dumps(blob.to_json()))
    assemble_json({"layers": [layer_descriptor(tmp_path)], "history": ["app"],
                   "settings": {"entrypoint": ["/app/bin/run.sh"]}, "ref_names": ["latest"]},
                  image_dir)
    checked = []
    if shutil.which("umoci"):
        bundle = tmp_path / "bundle"
        run_tool(["umoci", "unpack", "--rootless", "--image", f"{image_dir}:latest", str(bundle)])
        assert (bundle / "rootfs/app/data/big.txt").read_bytes() == big
        checked.append("umoci")
    if shutil.which("skopeo"):
        # --dest-decompress makes skopeo read the whole stream and write the tar it holds.
        run_tool(["skopeo", "copy", "--dest-decompress", f"oci:{image_dir}:latest",
                  f"dir:{tmp_path / 'dir'}"])
        assert (tmp_path / "dir" / blob.diff_id[7:]).exists()
        checked.append("skopeo")
    if shutil.which("podman") and os.geteuid() == 0:
        runroot = tempfile.mkdtemp(prefix="podman-", dir="/tmp")  # podman: at most 50 chars
        try:
            flags = ["--root", str(tmp_path / "p-root"), "--runroot", runroot,
                     "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file"]
            run_tool(["podman", *flags, "pull", "-q", f"oci:{image_dir}:latest"])
            images = json.loads(run_tool(["podman", *flags, "images", "--format",
                                          "json"]).stdout)
            assert len(images) == 1, images  # podman decompressed every layer into its store
            run_tool(["podman", *flags, "rmi", "--all", "--force"])
        finally:
            shutil.rmtree(runroot, ignore_errors=True)
        checked.append("podman")
    if not checked:
        pytest.skip("none of umoci, skopeo, podman is installed")
