"""assemble_image: scratch and base images, platforms, metadata; read back from the layout."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ocibuild import mediatypes
from ocibuild.assemble import assemble_image
from ocibuild.errors import OciBuildError
from ocibuild.layer.builder import build_layer
from ocibuild.layer.entries import collect_entries
from ocibuild.layout import OciLayout, resolve_image

from .conftest import write
from .layouts import add_image, multi_arch_layout, named, write_layout


@pytest.fixture
def layer_json(tmp_path: Path) -> Path:
    src = write(tmp_path / "src/app.txt", b"app")
    blob = build_layer(collect_entries([(str(src), "app/app.txt")]), str(tmp_path / "layer"))
    path = tmp_path / "layer/layer.json"
    path.write_text(json.dumps(blob.to_json()))
    return path


def layer_of(path: Path) -> dict:
    return json.loads(path.read_text())


def test_scratch_image(tmp_path: Path, layer_json: Path) -> None:
    layer = layer_of(layer_json)
    meta = assemble_image({
        "base": None, "layers": [str(layer_json)], "history": ["pants-oci: //:app"],
        "settings": {"cmd": ["/app/app.txt"]}, "annotations": {"org.example.x": "y"},
        "created_epoch": 0, "ref_name": "1.0", "metadata_out": str(tmp_path / "meta/image.json"),
    }, str(tmp_path / "out"))
    image = resolve_image(OciLayout(tmp_path / "out"), ref_name="1.0")
    assert image.config == {
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": ["/app/app.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [layer["diffID"]]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "pants-oci: //:app"}],
    }
    assert image.manifest == {
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": meta["config_digest"],
                   "size": os.path.getsize(OciLayout(tmp_path / "out").blob_path(
                       meta["config_digest"]))},
        "layers": [{"mediaType": layer["mediaType"], "digest": layer["digest"],
                    "size": layer["size"]}],
        "annotations": {"org.example.x": "y"},
    }
    assert meta == {
        "manifest_digest": image.manifest_descriptor.digest,
        "config_digest": image.config_descriptor.digest,
        "platform": "linux/amd64", "ref_name": "1.0", "ref_names": ["1.0"], "repository": None,
        "layers": [{"digest": layer["digest"], "size": layer["size"], "diff_id": layer["diffID"],
                    "media_type": layer["mediaType"], "from_base": False}],
        "base_blobs": [],
    }
    assert json.loads((tmp_path / "meta/image.json").read_text()) == meta
    assert (tmp_path / "out/oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}'
    # Only the new config and manifest: layer blobs are the caller's to merge in.
    assert len(os.listdir(tmp_path / "out/blobs/sha256")) == 2


def test_on_a_base_whose_layer_blobs_are_absent(tmp_path: Path, layer_json: Path) -> None:
    base_dir = tmp_path / "base"
    base_desc = add_image(base_dir, "base", docker=True)
    base_layout = write_layout(base_dir, [named(base_desc, "docker.io/library/busybox:1.36")])
    base = resolve_image(base_layout)
    for layer in base.layers:
        os.unlink(base_layout.blob_path(layer.digest))
    meta = assemble_image({
        "base": {"layout": str(base_dir), "ref_name": "1.36", "name": "//:busybox"},
        "layers": [str(layer_json)], "history": ["app"],
        "settings": {"env": {"APP": "1"}}, "ref_names": ["latest", "1.0"],
    }, str(tmp_path / "out"))
    out = OciLayout(tmp_path / "out")
    image = resolve_image(out, ref_name="1.0")
    assert image.manifest["annotations"] == {
        "org.opencontainers.image.base.name": "//:busybox",
        "org.opencontainers.image.base.digest": base_desc.digest,
    }
    # A Docker gzip layer is written under its OCI name, byte-identical blob.
    assert [(d.media_type, d.digest) for d in image.layers] == [
        (mediatypes.OCI_LAYER_GZIP, base.layers[0].digest),
        (mediatypes.OCI_LAYER_GZIP, layer_of(layer_json)["digest"]),
    ]
    assert image.config["config"]["Env"] == ["MARKER=base", "APP=1"]
    assert image.config["config"]["Cmd"] == ["/bin/sh"]
    assert [h["created_by"] for h in image.config["history"]] == ["ADD base", "app"]
    assert image.config["rootfs"]["diff_ids"] == [base.config["rootfs"]["diff_ids"][0],
                                                  layer_of(layer_json)["diffID"]]
    assert meta["base_blobs"] == [base.layers[0].digest]
    assert [layer["from_base"] for layer in meta["layers"]] == [True, False]
    refs = [m["annotations"]["org.opencontainers.image.ref.name"]
            for m in out.read_index()["manifests"]]
    assert refs == ["latest", "1.0"]


@pytest.mark.parametrize("platform, marker, variant, resolved", [
    (None, "MARKER=amd64", None, "linux/amd64"),
    ("linux/arm64", "MARKER=arm64", "v8", "linux/arm64/v8"),
])
def test_multi_platform_base(tmp_path: Path, layer_json: Path, platform, marker, variant,
                             resolved) -> None:
    multi_arch_layout(tmp_path / "base")
    meta = assemble_image({"base": {"layout": str(tmp_path / "base"), "name": "multi"},
                           "platform": platform, "layers": [str(layer_json)],
                           "history": ["app"]}, str(tmp_path / "out"))
    image = resolve_image(OciLayout(tmp_path / "out"))
    assert image.config["config"]["Env"] == [marker]
    assert image.config.get("variant") == variant  # the base's own spelling is kept
    assert meta["platform"] == resolved


def test_platform_contradicting_the_base(tmp_path: Path, layer_json: Path) -> None:
    base_dir = tmp_path / "base"
    write_layout(base_dir, [named(add_image(base_dir, "b"), "latest")])
    with pytest.raises(OciBuildError) as err:
        assemble_image({"base": {"layout": str(base_dir), "name": "//:base"},
                        "platform": "linux/arm64", "layers": [str(layer_json)],
                        "history": ["app"]}, str(tmp_path / "out"))
    assert str(err.value) == (
        "platform linux/arm64 was asked for, but the base '//:base' is linux/amd64; drop the "
        "platform setting or use a base built for linux/arm64"
    )


def test_spec_errors(tmp_path: Path, layer_json: Path) -> None:
    with pytest.raises(OciBuildError) as err:
        assemble_image({"layers": [], "platfrom": "linux/amd64"}, str(tmp_path / "out"))
    assert str(err.value) == (
        "assemble spec: unknown key(s) platfrom; known: base, platform, layers, history, "
        "settings, annotations, created_epoch, ref_name, ref_names, repository, metadata_out"
    )
    with pytest.raises(OciBuildError) as err:
        assemble_image({"layers": [str(tmp_path / "none.json")]}, str(tmp_path / "out"))
    assert str(err.value).startswith(f"cannot read the layer {str(tmp_path / 'none.json')!r}: ")
    with pytest.raises(OciBuildError) as err:
        assemble_image({"layers": [str(layer_json)], "annotations": {"": "x"}},
                       str(tmp_path / "out"))
    assert str(err.value).startswith("annotation key '': must be non-empty")


def test_history_must_match_layers(tmp_path: Path, layer_json: Path) -> None:
    with pytest.raises(OciBuildError) as err:
        assemble_image({"layers": [str(layer_json)], "history": []}, str(tmp_path / "out"))
    assert str(err.value) == "history has 0 entries for 1 new layers; give one per layer"
    assert not (tmp_path / "out").exists()
