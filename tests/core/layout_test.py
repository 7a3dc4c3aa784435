"""OCI layouts: write -> read back -> resolve by ref name and platform; exact errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ocibuild import mediatypes
from ocibuild.digest import bytes_digest
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import REF_NAME, Descriptor
from ocibuild.layout import OciLayout, resolve_image, tag_of
from ocibuild.platform import parse_platform

from .layouts import add_image, multi_arch_layout, named, write_layout


def marker(image) -> str:
    return image.config["config"]["Env"][0]


def error_of(*args, **kwargs) -> str:
    with pytest.raises(OciBuildError) as err:
        resolve_image(*args, **kwargs)
    return str(err.value)


def test_write_and_read_back(tmp_path: Path) -> None:
    layout = OciLayout(tmp_path / "l")
    desc = layout.write_blob_bytes(b'{"a":1}', mediatypes.OCI_CONFIG)
    assert desc == Descriptor(mediatypes.OCI_CONFIG, bytes_digest(b'{"a":1}'), 7)
    assert layout.read_blob_json(desc.digest) == {"a": 1}
    layout.write_index([named(desc, "x")])
    layout.write_oci_layout_file()
    assert (tmp_path / "l/oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    assert layout.read_index() == {
        "schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
        "manifests": [{"mediaType": mediatypes.OCI_CONFIG, "digest": desc.digest, "size": 7,
                       "annotations": {REF_NAME: "x"}}]}
    assert sorted(os.listdir(tmp_path / "l/blobs/sha256")) == [desc.digest[7:]]


def test_corrupt_and_missing_blobs(tmp_path: Path) -> None:
    layout = OciLayout(tmp_path / "l")
    desc = layout.write_blob_bytes(b"{}", mediatypes.OCI_CONFIG)
    Path(layout.blob_path(desc.digest)).write_bytes(b"{ }")
    with pytest.raises(OciBuildError) as err:
        layout.read_blob_json(desc.digest)
    assert str(err.value) == (
        f"layout {str(tmp_path / 'l')!r}: blob {desc.digest} does not match its digest "
        "(corrupt or edited); copy the layout again"
    )
    missing = bytes_digest(b"nothing")
    with pytest.raises(OciBuildError) as err:
        layout.read_blob_json(missing)
    assert str(err.value) == (
        f"layout {str(tmp_path / 'l')!r} lacks the blob {missing}: the layout is incomplete; "
        "copy it again"
    )


def test_not_a_layout(tmp_path: Path) -> None:
    assert error_of(OciLayout(tmp_path)) == (
        f"{str(tmp_path)!r} is not an OCI image layout: it has no index.json; create one with "
        "`skopeo copy docker://IMAGE oci:DIR:TAG`"
    )
    (tmp_path / "index.json").write_text("{nope")
    assert error_of(OciLayout(tmp_path)).startswith(
        f"layout {str(tmp_path)!r}: index.json is not valid JSON:")


def test_resolve_single_image(tmp_path: Path) -> None:
    d = tmp_path / "l"
    layout = write_layout(d, [named(add_image(d, "only"), None)])
    image = resolve_image(layout)
    assert marker(image) == "MARKER=only"
    assert image.manifest_descriptor.digest == json.loads((d / "index.json").read_text())[
        "manifests"][0]["digest"]
    assert [layer.media_type for layer in image.layers] == [mediatypes.OCI_LAYER_GZIP]
    assert os.path.isfile(layout.blob_path(image.layers[0].digest))


def test_resolve_by_ref_name(tmp_path: Path) -> None:
    d = tmp_path / "l"
    a, b = add_image(d, "a"), add_image(d, "b")
    layout = write_layout(d, [named(a, "example.com/team/x:1.0"), named(b, "latest")])
    assert marker(resolve_image(layout, ref_name="1.0")) == "MARKER=a"  # the tag part
    assert marker(resolve_image(layout, ref_name="example.com/team/x:1.0")) == "MARKER=a"
    assert marker(resolve_image(layout, ref_name="latest")) == "MARKER=b"
    assert marker(resolve_image(layout, ref_name="other.io/y:latest")) == "MARKER=b"
    assert error_of(layout, ref_name="2.0") == (
        f"layout {str(d)!r} has no image named '2.0'; it has: example.com/team/x:1.0, latest"
    )
    assert error_of(layout) == (
        f"layout {str(d)!r} has 2 images (tags: example.com/team/x:1.0, latest); choose one by "
        "its ref name (tag)"
    )


def test_same_manifest_under_two_names_is_one_image(tmp_path: Path) -> None:
    d = tmp_path / "l"
    a = add_image(d, "a")
    layout = write_layout(d, [named(a, "latest"), named(a, "1.0")])
    assert marker(resolve_image(layout)) == "MARKER=a"


def test_unnamed_images_are_listed_by_digest(tmp_path: Path) -> None:
    d = tmp_path / "l"
    a, b = add_image(d, "a"), add_image(d, "b")
    layout = write_layout(d, [named(a, None), named(b, "b")])
    assert error_of(layout) == (
        f"layout {str(d)!r} has 2 images (tags: {a.digest} (unnamed), b); choose one by its "
        "ref name (tag)"
    )


@pytest.mark.parametrize("docker", [False, True])
@pytest.mark.parametrize("platform, expected", [
    ("linux/amd64", "MARKER=amd64"), ("linux/arm64", "MARKER=arm64"),
    ("linux/arm64/v8", "MARKER=arm64"), ("linux/arm", "MARKER=arm"),
])
def test_resolve_platform_in_nested_index(tmp_path: Path, docker, platform, expected) -> None:
    layout = multi_arch_layout(tmp_path / "l", docker=docker)
    image = resolve_image(layout, ref_name="latest", platform=parse_platform(platform))
    assert marker(image) == expected
    assert image.manifest_descriptor.media_type == (
        mediatypes.DOCKER_MANIFEST if docker else mediatypes.OCI_MANIFEST)


def test_nested_index_errors(tmp_path: Path) -> None:
    d = tmp_path / "l"
    layout = multi_arch_layout(d)
    assert error_of(layout, platform=parse_platform("linux/s390x")) == (
        f"layout {str(d)!r}: image 'latest' has no image for platform linux/s390x; it has: "
        "linux/amd64, linux/arm64/v8, linux/arm/v7; choose one of those platforms"
    )
    assert error_of(layout, ref_name="latest") == (
        f"layout {str(d)!r}: image 'latest' holds 3 platforms (linux/amd64, linux/arm64/v8, "
        "linux/arm/v7); choose one of them"
    )


def test_top_level_entries_with_platforms(tmp_path: Path) -> None:
    d = tmp_path / "l"
    amd, arm = add_image(d, "amd"), add_image(d, "arm", arch="arm64")
    layout = write_layout(d, [named(amd, "latest", platform=True),
                              named(arm, "latest", platform=True)])
    image = resolve_image(layout, ref_name="latest", platform=parse_platform("linux/arm64"))
    assert marker(image) == "MARKER=arm"
    assert error_of(layout) == (
        f"layout {str(d)!r} has 2 images (tags: latest, latest); choose one by its ref name "
        "(tag) or its platform (linux/amd64, linux/arm64)"
    )


def test_tag_of() -> None:
    assert [tag_of(r) for r in ("1.0", "x:1.0", "example.com:5000/x:1.0",
                                "localhost:5000/x", "x")] == ["1.0", "1.0", "1.0",
                                                              "localhost:5000/x", "x"]
