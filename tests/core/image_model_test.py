"""The image model: whole values, pure derivations, write -> read back; exact bytes kept."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from ocibuild import canonical_json, mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.image import mutate
from ocibuild.image.config import ImageSettings
from ocibuild.image.image import Image
from ocibuild.image.index import Child, Index
from ocibuild.image.layer import Layer
from ocibuild.image.manifest import Descriptor
from ocibuild.layout import OciLayout, read_ref, resolve_image, write
from ocibuild.platform import Platform

from .layouts import add_image, add_index, named, write_layout

DIFF = "sha256:" + "d" * 64
BLOB = "sha256:" + "b" * 64


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(n: int = 1, created_by: str = "app") -> Layer:
    return Layer(mediatypes.OCI_LAYER_GZIP, "sha256:" + f"{n:x}" * 64, 100 + n,
                 "sha256:" + f"{n + 1:x}" * 64, created_by)


def built(arch: str = "amd64") -> Image:
    image = mutate.with_platform(Image.scratch(), Platform("linux", arch))
    image = mutate.with_created(image, "1970-01-01T00:00:00Z")
    image = mutate.with_settings(image, ImageSettings(cmd=("/app",)))
    return mutate.add_layers(image, [layer()], created="1970-01-01T00:00:00Z")


def test_a_derived_image_is_computed_with_canonical_json() -> None:
    image = mutate.with_annotations(built(), {"org.example.x": "y"})
    config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
              "config": {"Cmd": ["/app"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "2" * 64]},
              "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "app"}]}
    assert image.config_bytes == canonical_json.dumps(config)
    assert image.config_descriptor == Descriptor(mediatypes.OCI_CONFIG,
                                                 sha256(image.config_bytes),
                                                 len(image.config_bytes))
    assert image.manifest_bytes == canonical_json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "config": image.config_descriptor.to_json(),
        "layers": [{"mediaType": mediatypes.OCI_LAYER_GZIP, "digest": "sha256:" + "1" * 64,
                    "size": 101}],
        "annotations": {"org.example.x": "y"}})
    assert image.manifest_descriptor == Descriptor(mediatypes.OCI_MANIFEST,
                                                   sha256(image.manifest_bytes),
                                                   len(image.manifest_bytes))
    assert image.platform == Platform("linux", "amd64")
    assert built() == built()  # a value: the same derivations give the same image


def test_derivations_leave_the_old_image_unchanged() -> None:
    old = built()
    before = (old.config_bytes, old.manifest_bytes)
    new = mutate.add_layers(old, [layer(3, "more")], created="1970-01-01T00:00:01Z")
    new = mutate.with_settings(new, ImageSettings(env=(("A", "1"),)))
    assert (old.config_bytes, old.manifest_bytes) == before
    assert [entry["created_by"] for entry in new.config["history"]] == ["app", "more"]
    assert new.config["config"] == {"Cmd": ["/app"], "Env": ["A=1"]}
    assert [(x.digest, x.diff_id, x.created_by) for x in new.layers] == [
        (x.digest, x.diff_id, x.created_by) for x in (layer(), layer(3, "more"))]
    with pytest.raises(dataclasses.FrozenInstanceError):
        old.layers = ()  # type: ignore[misc]
    config = old.config
    config["os"] = "windows"  # a copy: the image does not change
    assert old.config["os"] == "linux"


def test_annotations_are_replaced_and_base_annotations_named() -> None:
    image = mutate.with_annotations(built(), {"a": "1"})
    image = mutate.with_annotations(image, {**mutate.base_annotations("//:base", BLOB),
                                            "org.opencontainers.image.base.name": "mine"})
    assert image.manifest["annotations"] == {"org.opencontainers.image.base.name": "mine",
                                             "org.opencontainers.image.base.digest": BLOB}
    assert mutate.base_annotations(None, BLOB) == {
        "org.opencontainers.image.base.digest": BLOB}


def test_a_layer_without_diff_id_cannot_be_added() -> None:
    with pytest.raises(OciBuildError) as err:
        mutate.add_layers(built(), [dataclasses.replace(layer(5), diff_id=None)], created="x")
    assert str(err.value) == (f"layer(s) {'sha256:' + '5' * 64} have no diff_id; a layer added "
                              "to an image needs one (`ocibuild layer` writes it)")


def test_a_wrongly_typed_config_is_refused_by_derivations() -> None:
    image = Image(b'{"config":{"Env":"PATH=/bin"}}')
    with pytest.raises(OciBuildError) as err:
        mutate.with_settings(image, ImageSettings(env=(("A", "1"),)))
    assert str(err.value) == (f"the config {sha256(image.config_bytes)}, in `config`: `Env` "
                              "must be a JSON array, not string ('PATH=/bin')")


def test_read_keeps_exact_bytes_and_derivations_make_it_oci(tmp_path: Path) -> None:
    d = tmp_path / "docker"
    layout = write_layout(d, [named(add_image(d, "base", docker=True), "latest")])
    # Rewrite the manifest with other whitespace: a read image keeps these very bytes.
    base = resolve_image(layout)
    spaced = json.dumps(base.manifest, indent=3).encode()
    spaced_d = layout.write_blob_bytes(spaced, mediatypes.DOCKER_MANIFEST)
    write_layout(d, [named(spaced_d, "latest")])
    image = resolve_image(layout)
    assert image.manifest_bytes == spaced and image.manifest_descriptor == spaced_d
    assert (image.media_type, image.config_media_type) == (mediatypes.DOCKER_MANIFEST,
                                                           mediatypes.DOCKER_CONFIG)
    assert [(x.media_type, x.diff_id, x.created_by) for x in image.layers] == [
        (mediatypes.DOCKER_LAYER_GZIP, base.config["rootfs"]["diff_ids"][0], "ADD base")]
    # Written again unchanged: the same digest; derived: an OCI image of the same blobs.
    out = OciLayout(tmp_path / "out")
    assert write(out, image, ["1"]) == Descriptor(mediatypes.DOCKER_MANIFEST, spaced_d.digest,
                                                  len(spaced))
    assert Path(out.blob_path(spaced_d.digest)).read_bytes() == spaced
    derived = mutate.with_annotations(image, {})
    assert (derived.media_type, derived.config_media_type) == (mediatypes.OCI_MANIFEST,
                                                               mediatypes.OCI_CONFIG)
    assert derived.config_bytes == image.config_bytes
    assert [(x.media_type, x.digest) for x in derived.layers] == [
        (mediatypes.OCI_LAYER_GZIP, image.layers[0].digest)]


def test_index_write_and_read_back(tmp_path: Path) -> None:
    amd, arm = built(), mutate.with_platform(built(), Platform("linux", "arm64", "v8"))
    index = Index.of([amd, arm], annotations=(("org.example.set", "2"),))
    assert index.manifests == (Child(amd, Platform("linux", "amd64")),
                               Child(arm, Platform("linux", "arm64", "v8")))
    assert index.index_bytes == canonical_json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
        "manifests": [
            {**amd.manifest_descriptor.to_json(),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {**arm.manifest_descriptor.to_json(),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}],
        "annotations": {"org.example.set": "2"}})
    layout = OciLayout(tmp_path / "l")
    assert write(layout, index, ["multi", "1.0"]) == index.descriptor
    assert sorted(p.name for p in (tmp_path / "l/blobs/sha256").iterdir()) == sorted(
        d.digest[7:] for d in (index.descriptor, amd.manifest_descriptor,
                               amd.config_descriptor, arm.manifest_descriptor,
                               arm.config_descriptor))
    again = read_ref(layout, "1.0")
    assert isinstance(again, Index)
    assert (again.descriptor, again.index_bytes) == (index.descriptor, index.index_bytes)
    assert [(c.platform, c.image.manifest_bytes, c.image.config_bytes)
            for c in again.manifests] == [(c.platform, c.image.manifest_bytes,
                                           c.image.config_bytes) for c in index.manifests]
    arm_again = resolve_image(layout, ref_name="multi", platform=Platform("linux", "arm64"))
    assert arm_again.manifest_descriptor == arm.manifest_descriptor


def test_read_ref_of_an_image_and_of_an_index_of_indexes(tmp_path: Path) -> None:
    d = tmp_path / "l"
    one = add_image(d, "one")
    inner = add_index(d, [one])
    outer = add_index(d, [inner])
    layout = write_layout(d, [named(one, "image"), named(outer, "nested")])
    image = read_ref(layout, "image")
    assert isinstance(image, Image) and image.manifest_descriptor.digest == one.digest
    with pytest.raises(OciBuildError) as err:
        read_ref(layout, "nested")
    assert str(err.value) == (
        f"layout {str(d)!r}: index {outer.digest} lists another index ({inner.digest}); only "
        "an index of images is supported, not an index of indexes")
    with pytest.raises(OciBuildError) as err:
        read_ref(layout)
    assert str(err.value) == (f"layout {str(d)!r} has 2 images (tags: image, nested); choose "
                              "one by its ref name (tag)")
