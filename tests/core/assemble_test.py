"""assemble: scratch and base images, platforms, the result; read back from the layout."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ocibuild import mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.layer.builder import build_layer
from ocibuild.layer.entries import collect_entries
from ocibuild.layout import OciLayout, resolve_image
from ocibuild.protocol.assemble import AssembleRequest, AssembleResult

from .conftest import write
from .layouts import (add_image, assemble_json, layer_descriptor, multi_arch_layout, named,
                      write_layout)


@pytest.fixture
def layer(tmp_path: Path) -> dict:
    """A real layer's descriptor, as `ocibuild layer` writes it to layer.json."""
    src = write(tmp_path / "src/app.txt", b"app")
    blob = build_layer(collect_entries([(str(src), "app/app.txt")]), str(tmp_path / "layer"))
    (tmp_path / "layer/layer.json").write_text(json.dumps(blob.to_json()))
    return layer_descriptor(tmp_path / "layer")


def test_scratch_image(tmp_path: Path, layer: dict) -> None:
    spec = {
        "base": None, "layers": [layer], "history": ["pants-oci: //:app"],
        "settings": {"cmd": ["/app/app.txt"]}, "annotations": [["org.example.x", "y"]],
        "created_epoch": 0, "ref_names": ["1.0"],
    }
    meta = assemble_json(spec, tmp_path / "out")
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
        "version": 1, "kind": "assemble-result",
        "manifest_digest": image.manifest_descriptor.digest,
        "config_digest": image.config_descriptor.digest,
        "platform": "linux/amd64", "ref_name": "1.0", "ref_names": ["1.0"], "repository": None,
        "layers": [{"digest": layer["digest"], "size": layer["size"], "diff_id": layer["diffID"],
                    "media_type": layer["mediaType"], "from_base": False}],
        "base_blobs": [],
    }
    assert AssembleResult.from_json(meta, "the result").to_json() == meta
    # The request round-trips through its JSON (what the plugin writes and the CLI reads).
    request = AssembleRequest.from_json(spec, "spec")
    assert AssembleRequest.from_json(request.to_json(), "again") == request
    assert (tmp_path / "out/oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}'
    # Only the new config and manifest: layer blobs are the caller's to merge in.
    assert len(os.listdir(tmp_path / "out/blobs/sha256")) == 2


def test_on_a_base_whose_layer_blobs_are_absent(tmp_path: Path, layer: dict) -> None:
    base_dir = tmp_path / "base"
    base_desc = add_image(base_dir, "base", docker=True)
    base_layout = write_layout(base_dir, [named(base_desc, "docker.io/library/busybox:1.36")])
    base = resolve_image(base_layout)
    for base_layer in base.layers:
        os.unlink(base_layout.blob_path(base_layer.digest))
    meta = assemble_json({
        "base": {"layout": str(base_dir), "ref_name": "1.36", "name": "//:busybox"},
        "layers": [layer], "history": ["app"],
        "settings": {"env": [["APP", "1"]]}, "ref_names": ["latest", "1.0"],
    }, tmp_path / "out")
    out = OciLayout(tmp_path / "out")
    image = resolve_image(out, ref_name="1.0")
    assert image.manifest["annotations"] == {
        "org.opencontainers.image.base.name": "//:busybox",
        "org.opencontainers.image.base.digest": base_desc.digest,
    }
    # A Docker gzip layer is written under its OCI name, byte-identical blob.
    assert [(d.media_type, d.digest) for d in image.layers] == [
        (mediatypes.OCI_LAYER_GZIP, base.layers[0].digest),
        (mediatypes.OCI_LAYER_GZIP, layer["digest"]),
    ]
    assert image.config["config"]["Env"] == ["MARKER=base", "APP=1"]
    assert image.config["config"]["Cmd"] == ["/bin/sh"]
    assert [h["created_by"] for h in image.config["history"]] == ["ADD base", "app"]
    assert image.config["rootfs"]["diff_ids"] == [base.config["rootfs"]["diff_ids"][0],
                                                  layer["diffID"]]
    assert meta["base_blobs"] == [base.layers[0].digest]
    assert [layer["from_base"] for layer in meta["layers"]] == [True, False]
    refs = [m["annotations"]["org.opencontainers.image.ref.name"]
            for m in out.read_index()["manifests"]]
    assert refs == ["latest", "1.0"]


@pytest.mark.parametrize("platform, marker, variant, resolved", [
    (None, "MARKER=amd64", None, "linux/amd64"),
    ("linux/arm64", "MARKER=arm64", "v8", "linux/arm64/v8"),
])
def test_multi_platform_base(tmp_path: Path, layer: dict, platform, marker, variant,
                             resolved) -> None:
    multi_arch_layout(tmp_path / "base")
    meta = assemble_json({"base": {"layout": str(tmp_path / "base"), "name": "multi"},
                          "platform": platform, "layers": [layer],
                          "history": ["app"]}, tmp_path / "out")
    image = resolve_image(OciLayout(tmp_path / "out"))
    assert image.config["config"]["Env"] == [marker]
    assert image.config.get("variant") == variant  # the base's own spelling is kept
    assert meta["platform"] == resolved


def test_platform_contradicting_the_base(tmp_path: Path, layer: dict) -> None:
    base_dir = tmp_path / "base"
    write_layout(base_dir, [named(add_image(base_dir, "b"), "latest")])
    with pytest.raises(OciBuildError) as err:
        assemble_json({"base": {"layout": str(base_dir), "name": "//:base"},
                       "platform": "linux/arm64", "layers": [layer],
                       "history": ["app"]}, tmp_path / "out")
    assert str(err.value) == (
        "platform linux/arm64 was asked for, but the base '//:base' is linux/amd64; drop the "
        "platform setting or use a base built for linux/arm64"
    )


def error_of(spec: dict, out: Path) -> str:
    with pytest.raises(OciBuildError) as err:
        assemble_json(spec, out)
    assert not out.exists()
    return str(err.value)


KNOWN = ("layers, base, platform, history, settings, annotations, created_epoch, ref_names, "
         "repository")


def test_request_errors(tmp_path: Path, layer: dict) -> None:
    out = tmp_path / "out"
    assert error_of({"layers": [], "platfrom": "linux/amd64"}, out) == (
        f"spec: unknown key(s) platfrom; known: {KNOWN}")
    # The old spec's keys are gone: the result is returned, the names are `ref_names`.
    assert error_of({"layers": [], "metadata_out": "meta.json"}, out) == (
        f"spec: unknown key(s) metadata_out; known: {KNOWN}")
    assert error_of({"layers": [], "ref_name": "1.0"}, out) == (
        f"spec: unknown key(s) ref_name; known: {KNOWN}")
    # Layers are inline descriptors now, not paths of layer.json files.
    assert error_of({"layers": [str(tmp_path / "layer/layer.json")]}, out) == (
        f"spec: `layers[0]` must be a JSON object, not string "
        f"({str(tmp_path / 'layer/layer.json')!r})")
    assert error_of({"layers": [{**layer, "digest": "x"}]}, out) == (
        "spec: `layers[0].digest` 'x' must be 'sha256:' and 64 lowercase hex digits")
    # Found by documents_fuzz_test: an empty media type made a manifest nothing reads back.
    for media_type in ("", mediatypes.OCI_CONFIG):
        assert error_of({"layers": [{**layer, "mediaType": media_type}]}, out).startswith(
            f"spec: `layers[0].mediaType` {media_type!r} must be an OCI layer media type: ")
    assert error_of({"layers": [{k: v for k, v in layer.items() if k != "diffID"}]}, out) == (
        "spec: `layers[0].diffID` is missing")
    assert error_of({"layers": [layer], "annotations": {"a": "x"}}, out) == (
        "spec: `annotations` must be a JSON array, not object ({'a': 'x'})")
    assert error_of({"layers": [layer], "annotations": [["", "x"]]}, out).startswith(
        "annotation key '': must be non-empty")
    assert error_of({"layers": [], "ref_names": []}, out) == (
        'spec: `ref_names` must be non-empty strings, at least one, e.g. ["latest"]')


def test_a_layer_descriptor_with_its_envelope(tmp_path: Path, layer: dict) -> None:
    """What `ocibuild layer` writes (version and kind included) is taken as it is."""
    enveloped = {"version": 1, "kind": "layer-descriptor", **layer}
    bare = {k: v for k, v in layer.items() if k not in ("version", "kind")}
    first = assemble_json({"layers": [enveloped], "history": ["app"]}, tmp_path / "a")
    second = assemble_json({"layers": [bare], "history": ["app"]}, tmp_path / "b")
    assert first == second


@pytest.mark.parametrize("envelope, message", [
    ({"kind": "layer"}, "`layers[0]` is a 'layer' document, not 'layer-descriptor'"),
    ({"version": 2}, "`layers[0]` is version 2 of the ocibuild protocol"),
])
def test_a_layer_descriptor_of_another_kind_or_version(tmp_path: Path, layer: dict,
                                                       envelope: dict, message: str) -> None:
    with pytest.raises(OciBuildError) as err:
        assemble_json({"layers": [{**layer, **envelope}]}, tmp_path / "out")
    assert message in str(err.value)


def test_no_history_means_no_created_by(tmp_path: Path, layer: dict) -> None:
    assemble_json({"layers": [layer, layer]}, tmp_path / "out")
    image = resolve_image(OciLayout(tmp_path / "out"))
    assert image.config["history"] == [{"created": "1970-01-01T00:00:00Z"}] * 2


def test_history_must_match_layers(tmp_path: Path, layer: dict) -> None:
    assert error_of({"layers": [layer], "history": []}, tmp_path / "out") == (
        "history has 0 entries for 1 new layers; give one per layer")
