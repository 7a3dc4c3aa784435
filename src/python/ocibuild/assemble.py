"""Assemble an image from a base layout, new layer descriptors and settings.

Writes only what is new (config and manifest blobs, index.json, oci-layout) to `out_dir`;
the caller merges in the layer blobs. Spec (JSON):

    {"base": null | {"layout": DIR, "ref_name": null | TAG, "name": "for history/errors"},
     "platform": null | "linux/amd64",
     "layers": [PATH to a layer.json written by `ocibuild layer`, ...],
     "history": ["created_by for each new layer", ...],
     "settings": {"entrypoint", "cmd", "env", "workdir", "user", "labels",
                  "exposed_ports", "volumes", "stop_signal"},
     "annotations": {...}, "created_epoch": 0,
     "ref_names": ["latest", ...], "repository": "team/app",
     "metadata_out": PATH}
"""

from __future__ import annotations

import json
import os

from ocibuild import canonical_json, mediatypes
from ocibuild.digest import file_digest
from ocibuild.errors import OciBuildError
from ocibuild.image.config import ImageSettings, apply_settings, rfc3339
from ocibuild.image.manifest import BASE_DIGEST, REF_NAME, Descriptor, image_manifest
from ocibuild.layout import OciLayout, ResolvedImage, atomic_write, resolve_image
from ocibuild.platform import Platform, from_config, parse_platform

DEFAULT_PLATFORM = Platform("linux", "amd64")


def _verify_blob(layout: OciLayout, layer: Descriptor, base_name: str) -> None:
    path = layout.blob_path(layer.digest)
    if not os.path.isfile(path):
        raise OciBuildError(f"the base {base_name!r} lacks its layer blob {layer.digest}")
    if file_digest(path) != (layer.digest, layer.size):
        raise OciBuildError(
            f"the base {base_name!r}: layer blob {layer.digest} does not match its digest "
            "or size (corrupt or truncated); re-create the base layout"
        )


def _base(spec: dict, platform: Platform | None) -> tuple[ResolvedImage | None, Platform]:
    base = spec.get("base")
    if not base:
        return None, platform or DEFAULT_PLATFORM
    layout = OciLayout(base["layout"])
    image = resolve_image(layout, ref_name=base.get("ref_name"),
                          platform=platform or DEFAULT_PLATFORM)
    base_platform = from_config(image.config)
    if platform is not None and not platform.matches(base_platform.to_json()):
        raise OciBuildError(
            f"platform {platform} was asked for, but the base {base['name']!r} is "
            f"{base_platform}; remove `platform` or pick a base built for {platform}"
        )
    for layer in image.layers:
        _verify_blob(layout, layer, base["name"])
    return image, platform or base_platform


def _read_layer(path: str) -> dict:
    with open(path, "rb") as f:
        return json.load(f)


def assemble_image(spec: dict, out_dir: str) -> dict:
    platform = parse_platform(spec["platform"]) if spec.get("platform") else None
    base, platform = _base(spec, platform)
    new_layers = [_read_layer(p) for p in spec.get("layers", [])]
    created = rfc3339(int(spec.get("created_epoch", 0)))
    config = apply_settings(
        base.config if base else {},
        ImageSettings.from_json(spec.get("settings") or {}),
        platform=platform,
        created=created,
        new_diff_ids=[layer["diffID"] for layer in new_layers],
        history=spec.get("history") or [f"layer {i}" for i in range(len(new_layers))],
    )
    out = OciLayout(out_dir)
    config_descriptor = out.write_blob_bytes(canonical_json.dumps(config), mediatypes.OCI_CONFIG)
    base_layers = list(base.layers) if base else []
    layers = base_layers + [
        Descriptor(layer["mediaType"], layer["digest"], layer["size"]) for layer in new_layers
    ]
    annotations = dict(spec.get("annotations") or {})
    if base:
        annotations.setdefault(BASE_DIGEST, base.manifest_descriptor.digest)
    manifest = image_manifest(config_descriptor, layers, annotations)
    manifest_descriptor = out.write_blob_bytes(canonical_json.dumps(manifest),
                                               mediatypes.OCI_MANIFEST)
    ref_names = spec.get("ref_names") or ["latest"]
    out.write_index([
        Descriptor(manifest_descriptor.media_type, manifest_descriptor.digest,
                   manifest_descriptor.size, annotations={REF_NAME: ref})
        for ref in ref_names
    ])
    metadata = {
        "manifest_digest": manifest_descriptor.digest,
        "config_digest": config_descriptor.digest,
        "platform": str(platform),
        "repository": spec.get("repository"),
        "tags": ref_names,
        "layers": [
            {"digest": d.digest, "size": d.size, "media_type": d.media_type,
             "diff_id": config["rootfs"]["diff_ids"][i], "from_base": i < len(base_layers)}
            for i, d in enumerate(layers)
        ],
        "base_blobs": sorted({d.digest for d in base_layers}),
    }
    if spec.get("metadata_out"):
        atomic_write(spec["metadata_out"], json.dumps(metadata, indent=2, sort_keys=True).encode()
                     + b"\n")
    return metadata
