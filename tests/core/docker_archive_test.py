"""docker-archive tarballs: read back with tarfile; every reference resolves, digests match."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from ocibuild.digest import hex_of
from ocibuild.docker_archive import write_docker_archive
from ocibuild.errors import OciBuildError
from ocibuild.layout import OciLayout, resolve_image

from .layouts import add_image, named, write_layout


@pytest.fixture
def layout(tmp_path: Path) -> OciLayout:
    d = tmp_path / "layout"
    return write_layout(d, [named(add_image(d, "img"), "latest")])


def members(path: Path) -> dict:
    with tarfile.open(path) as tar:
        return {m.name: (m, tar.extractfile(m).read() if m.isfile() else None) for m in tar}


def test_archive_contents(tmp_path: Path, layout: OciLayout) -> None:
    image = resolve_image(layout)
    out = tmp_path / "dist/image.tar"
    write_docker_archive(layout, image, ["team/app:1.0", "app:latest"], str(out))
    found = members(out)
    blob = {d.digest: f"blobs/sha256/{hex_of(d.digest)}"
            for d in (image.manifest_descriptor, image.config_descriptor, *image.layers)}
    assert list(found) == ["blobs", "blobs/sha256", *sorted(blob.values()), "index.json",
                           "manifest.json", "oci-layout"]
    for info, _ in found.values():
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "", "", 0)
        assert info.mode == (0o755 if info.isdir() else 0o644)
    for digest, name in blob.items():
        assert "sha256:" + hashlib.sha256(found[name][1]).hexdigest() == digest
    (docker_manifest,) = json.loads(found["manifest.json"][1])
    assert docker_manifest == {
        "Config": blob[image.config_descriptor.digest],
        "RepoTags": ["team/app:1.0", "app:latest"],
        "Layers": [blob[d.digest] for d in image.layers],
    }
    assert all(path in found for path in [docker_manifest["Config"], *docker_manifest["Layers"]])
    md = image.manifest_descriptor
    assert json.loads(found["index.json"][1]) == {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": md.media_type, "digest": md.digest, "size": md.size,
             "annotations": {"io.containerd.image.name": "docker.io/team/app:1.0",
                             "org.opencontainers.image.ref.name": "1.0"}},
            {"mediaType": md.media_type, "digest": md.digest, "size": md.size,
             "annotations": {"io.containerd.image.name": "docker.io/library/app:latest",
                             "org.opencontainers.image.ref.name": "latest"}},
        ]}
    assert found["oci-layout"][1] == b'{"imageLayoutVersion":"1.0.0"}'
    # The tar is itself an OCI layout: it resolves to the same image.
    extracted = tmp_path / "extracted"
    with tarfile.open(out) as tar:
        # The "data" filter where this Python has it (3.12+ warns without a filter).
        tar.extractall(extracted, **({"filter": "data"} if hasattr(tarfile, "data_filter")
                                     else {}))
    again = resolve_image(OciLayout(extracted), ref_name="1.0")
    assert again.manifest_descriptor.digest == md.digest


def test_archive_is_deterministic(tmp_path: Path, layout: OciLayout) -> None:
    image = resolve_image(layout)
    write_docker_archive(layout, image, ["app:1"], str(tmp_path / "a.tar"))
    write_docker_archive(layout, image, ["app:1"], str(tmp_path / "b.tar"))
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_missing_and_corrupt_blobs(tmp_path: Path, layout: OciLayout) -> None:
    image = resolve_image(layout)
    layer = Path(layout.blob_path(image.layers[0].digest))
    good = layer.read_bytes()
    layer.write_bytes(bytes(len(good)))
    out = tmp_path / "out/image.tar"
    with pytest.raises(OciBuildError) as err:
        write_docker_archive(layout, image, ["app:1"], str(out))
    assert str(err.value) == (
        f"layout {layout.path!r}: blob {image.layers[0].digest} holds "
        f"sha256:{hashlib.sha256(bytes(len(good))).hexdigest()}; the layout is corrupt, "
        "build it again"
    )
    layer.unlink()
    with pytest.raises(OciBuildError) as err:
        write_docker_archive(layout, image, ["app:1"], str(out))
    assert str(err.value) == (
        f"layout {layout.path!r} lacks the blob {image.layers[0].digest} "
        f"({image.layers[0].media_type}); the layout is incomplete"
    )
    assert not (tmp_path / "out").exists()  # nothing partial left behind


@pytest.mark.parametrize("repo_tag", ["app", ":1.0", "localhost:5000/app"])
def test_bad_repo_tag(tmp_path: Path, layout: OciLayout, repo_tag: str) -> None:
    with pytest.raises(OciBuildError) as err:
        write_docker_archive(layout, resolve_image(layout), [repo_tag], str(tmp_path / "x.tar"))
    assert str(err.value) == (
        f'repo tag {repo_tag!r}: must be REPOSITORY:TAG, e.g. "team/app:1.0"'
    )
