"""unpack_oci_archive: an OCI layout kept as a tar, verified while it is unpacked."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ocibuild.docker_archive import write_docker_archive
from ocibuild.errors import OciBuildError
from ocibuild.layout import OciLayout, resolve_image
from ocibuild.oci_archive import unpack_oci_archive

from .layouts import add_image, named, write_layout


def test_round_trip_through_a_docker_archive(tmp_path: Path) -> None:
    d = tmp_path / "layout"
    layout = write_layout(d, [named(add_image(d, "img"), "latest")])
    md = resolve_image(layout).manifest_descriptor
    write_docker_archive(layout.path, md, ["app:1.0"], str(tmp_path / "a.tar"))
    unpack_oci_archive(str(tmp_path / "a.tar"), str(tmp_path / "unpacked"))
    assert sorted(p.name for p in (tmp_path / "unpacked").iterdir()) == [
        "blobs", "index.json", "oci-layout"]  # docker's manifest.json is not layout data
    image = resolve_image(OciLayout(tmp_path / "unpacked"), ref_name="1.0")
    assert image.manifest_descriptor.digest == md.digest


def test_corrupt_blob_in_archive(tmp_path: Path) -> None:
    name = "blobs/sha256/" + "0" * 64
    with tarfile.open(tmp_path / "bad.tar", "w") as tar:
        info = tarfile.TarInfo(name)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(OciBuildError) as err:
        unpack_oci_archive(str(tmp_path / "bad.tar"), str(tmp_path / "out"))
    assert str(err.value).startswith(f"blob sha256:{'0' * 64} in the archive has the content of")
    assert not (tmp_path / "out").exists()  # nothing partial left behind


def test_archive_without_index(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "empty.tar", "w"):
        pass
    with pytest.raises(OciBuildError) as err:
        unpack_oci_archive(str(tmp_path / "empty.tar"), str(tmp_path / "out"))
    assert str(err.value) == (
        f"OCI archive {str(tmp_path / 'empty.tar')!r} holds no index.json: it is not an OCI "
        "image layout. Create one with `skopeo copy docker://IMAGE oci-archive:FILE.tar:TAG`."
    )
