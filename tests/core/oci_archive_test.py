"""unpack_oci_archive: an OCI layout kept as a tar, verified while it is unpacked."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from ocibuild import mediatypes
from ocibuild.docker_archive import write_docker_archive
from ocibuild.errors import OciBuildError
from ocibuild.layout import OciLayout, resolve_image
from ocibuild.oci_archive import unpack_oci_archive

from .layouts import add_image, named, write_layout


def test_round_trip_through_a_docker_archive(tmp_path: Path) -> None:
    d = tmp_path / "layout"
    layout = write_layout(d, [named(add_image(d, "img"), "latest")])
    image = resolve_image(layout)
    write_docker_archive(layout, image, ["app:1.0"], str(tmp_path / "a.tar"))
    unpack_oci_archive(str(tmp_path / "a.tar"), str(tmp_path / "unpacked"))
    assert sorted(p.name for p in (tmp_path / "unpacked").iterdir()) == [
        "blobs", "index.json", "oci-layout"]  # docker's manifest.json is not layout data
    unpacked = resolve_image(OciLayout(tmp_path / "unpacked"), ref_name="1.0")
    assert unpacked.manifest_descriptor.digest == image.manifest_descriptor.digest


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


def one_image_archive(tmp_path: Path) -> Path:
    d = tmp_path / "layout"
    layout = write_layout(d, [named(add_image(d, "img"), "latest")])
    archive = tmp_path / "a.tar"
    write_docker_archive(layout, resolve_image(layout), ["app:1.0"], str(archive))
    return archive


def bad_archive(tmp_path: Path) -> Path:
    with tarfile.open(tmp_path / "empty.tar", "w"):
        pass
    return tmp_path / "empty.tar"


def test_a_failed_unpack_leaves_an_existing_out_dir_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "blobs").mkdir(parents=True)
    (out / "mine.txt").write_text("the user's")
    with pytest.raises(OciBuildError, match="exists and is not empty"):
        unpack_oci_archive(str(bad_archive(tmp_path)), str(out))
    assert sorted(p.name for p in out.iterdir()) == ["blobs", "mine.txt"]
    assert (out / "mine.txt").read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tar", "out"]  # no temp dir


def test_a_failed_unpack_keeps_an_empty_out_dir(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(OciBuildError, match="holds no index.json"):
        unpack_oci_archive(str(bad_archive(tmp_path)), str(tmp_path / "out"))
    assert (tmp_path / "out").is_dir() and not any((tmp_path / "out").iterdir())


def test_unpack_into_an_empty_dir_and_refuse_a_full_one(tmp_path: Path) -> None:
    archive = one_image_archive(tmp_path)
    (tmp_path / "out").mkdir()
    unpack_oci_archive(str(archive), str(tmp_path / "out"))
    assert resolve_image(OciLayout(tmp_path / "out"), ref_name="1.0").layers
    before = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "out").rglob("*"))
    with pytest.raises(OciBuildError) as err:
        unpack_oci_archive(str(archive), str(tmp_path / "out"))
    assert str(err.value) == (
        f"the output directory {str(tmp_path / 'out')!r} exists and is not empty; it is left "
        "as it is: give a new directory, or remove it first")
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "out").rglob("*")) == before


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_in_an_archive_are_refused(tmp_path: Path, kind: bytes) -> None:
    name = "blobs/sha256/" + "0" * 64
    with tarfile.open(tmp_path / "links.tar", "w") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(OciBuildError) as err:
        unpack_oci_archive(str(tmp_path / "links.tar"), str(tmp_path / "out"))
    assert str(err.value) == (
        f"OCI archive {str(tmp_path / 'links.tar')!r}: {name!r} is a link or special file; an "
        "OCI layout holds regular files only.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["links.tar"]


def test_members_outside_the_layout_are_never_written(tmp_path: Path) -> None:
    archive = one_image_archive(tmp_path)
    with tarfile.open(archive, "a") as tar:
        for name in ("../escaped", "/abs/escaped", "blobs/sha256/../../escaped"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    (tmp_path / "work").mkdir()
    unpack_oci_archive(str(archive), str(tmp_path / "work/out"))
    assert not list(tmp_path.rglob("escaped"))
    assert sorted(p.name for p in (tmp_path / "work/out").iterdir()) == [
        "blobs", "index.json", "oci-layout"]


def test_a_truncated_archive_is_an_error(tmp_path: Path) -> None:
    archive = one_image_archive(tmp_path)
    data = archive.read_bytes()
    archive.write_bytes(data[: 3 * 512 + 100])  # in the first blob's bytes
    with pytest.raises(OciBuildError) as err:
        unpack_oci_archive(str(archive), str(tmp_path / "out"))
    assert str(err.value) == (
        f"OCI archive {str(archive)!r} is not a readable tar: unexpected end of data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar", "layout", "layout-src"]


def test_an_archive_without_the_manifests_its_index_lists_is_an_error(tmp_path: Path) -> None:
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 2}]})
    with tarfile.open(tmp_path / "cut.tar", "w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = len(index)
        tar.addfile(info, io.BytesIO(index.encode()))
    with pytest.raises(OciBuildError) as err:
        unpack_oci_archive(str(tmp_path / "cut.tar"), str(tmp_path / "out"))
    assert str(err.value) == (
        f"OCI archive {str(tmp_path / 'cut.tar')!r}: index.json lists sha256:{'a' * 64}, which "
        "the archive lacks: it is incomplete (cut short?); create it again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tar"]


def test_an_archive_whose_index_is_not_an_index_is_an_error(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "bad.tar", "w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"[]"))
    with pytest.raises(OciBuildError) as err:
        unpack_oci_archive(str(tmp_path / "bad.tar"), str(tmp_path / "out"))
    assert str(err.value) == (
        f"OCI archive {str(tmp_path / 'bad.tar')!r}: index.json must be a JSON object, not array")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar"]
