"""Assemble an image from a base layout, new layer descriptors and settings.

Spec (JSON), every key but `layers` optional:

    {"base": null | {"layout": DIR, "ref_name": null | NAME, "name": "display name"},
     "platform": null | "linux/amd64",
     "layers": [PATH of a layer.json written by `ocibuild layer`, ...],
     "history": ["created_by for each new layer", ...],
     "settings": {"entrypoint", "cmd", "env" (object), "workdir", "user", "labels",
                  "exposed_ports", "volumes", "stop_signal"},
     "annotations": {KEY: VALUE}, "created_epoch": 0,
     "ref_name": "latest", "ref_names": [NAME, ...] (instead of ref_name: one index entry each),
     "repository": "team/app" (passed through to the metadata),
     "metadata_out": PATH}

Only the base's manifest and config are read; its layer blobs need not be present (the
caller merges them in from `base_blobs`). Writes the new config and manifest blobs,
index.json and oci-layout to `out_dir`, and the metadata JSON to `metadata_out`:

    {"manifest_digest", "config_digest", "platform", "ref_name", "ref_names", "repository",
     "layers": [{"digest", "size", "diff_id", "media_type", "from_base"}],
     "base_blobs": [digests of the base's layer blobs the new manifest references]}

The platform defaults to the base's, or to linux/amd64 on scratch: a fixed value, so the
digest never depends on the building machine. A multi-platform base is resolved for the
asked-for platform, or linux/amd64.

The spec and the layer.json files are read capped and type-checked; the base is read as
`ocibuild.layout` reads any untrusted layout, and its config is type-checked before settings
are merged into it (`ocibuild.image.config.check_base_config`).

The base is read as an `Image` (or scratch), the new image derived from it with
`ocibuild.image.mutate` (platform, created, settings, layers with history, annotations) and
written with `ocibuild.layout.write`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import List, Optional, Tuple

from ocibuild.atomic import atomic_write
from ocibuild.errors import OciBuildError
from ocibuild.digest import validate_digest
from ocibuild.image import mutate
from ocibuild.image.config import ImageSettings, check_base_config, rfc3339
from ocibuild.image.image import Image
from ocibuild.image.layer import Layer
from ocibuild.image.manifest import Descriptor
from ocibuild.layout import OciLayout, resolve_image, write
from ocibuild.platform import Platform, from_config, parse_platform
from ocibuild.untrusted import field, load_json_file, local_path, str_list, str_map
from ocibuild.validate import validate_annotation_key

DEFAULT_PLATFORM = Platform("linux", "amd64")
SPEC_KEYS = ("base", "platform", "layers", "history", "settings", "annotations",
             "created_epoch", "ref_name", "ref_names", "repository", "metadata_out")
# `ocibuild layer` writes layer.json as four short fields; anything bigger is not one.
_MAX_LAYER_JSON = 64 << 10


def _base(spec: dict, asked: Optional[Platform]) -> Tuple[Optional[Image], Platform]:
    """The base image (None for scratch) and the platform of the new image."""
    base = spec.get("base")
    if not base:
        return None, asked or DEFAULT_PLATFORM
    if not isinstance(base, dict) or not isinstance(base.get("layout"), str):
        raise OciBuildError(f'assemble spec: base {base!r} must be null or an object with a '
                            '"layout" directory, e.g. {"layout": "base", "ref_name": "latest"}')
    local_path(base["layout"], "assemble spec: base layout")
    ref_name = field(base, "ref_name", str, "assemble spec: base")
    name = field(base, "name", str, "assemble spec: base") or base["layout"]
    image = resolve_image(OciLayout(base["layout"]), ref_name=ref_name,
                          platform=asked or DEFAULT_PLATFORM)
    check_base_config(image.config, _config_where(base, image))
    base_platform = from_config(image.config, where=f"the base {name!r}")
    if asked is not None and not asked.matches(base_platform.to_json()):
        raise OciBuildError(
            f"platform {asked} was asked for, but the base {name!r} is {base_platform}; "
            f"drop the platform setting or use a base built for {asked}"
        )
    diff_ids = (image.config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(image.layers):
        raise OciBuildError(f"the base {name!r} lists {len(diff_ids)} diff_ids for "
                            f"{len(image.layers)} layers; the image is broken, use another")
    # The base's own spelling ("arm64/v8" or "arm64") keeps its config unchanged.
    return image, base_platform


def _config_where(base: dict, image: Image) -> str:
    """Names the base's config blob in errors, e.g. "the base '//:base' (layout 'base',
    config blob sha256:...)"."""
    name = base.get("name") or base["layout"]
    return (f"the base {name!r} (layout {base['layout']!r}, config blob "
            f"{image.config_descriptor.digest})")


def _read_layer(path: object) -> Layer:
    if not isinstance(path, str):
        raise OciBuildError(f"assemble spec: layers: {path!r} must be the path of a layer.json")
    local_path(path, "assemble spec: layers")
    layer = load_json_file(path, "the layer", _MAX_LAYER_JSON)
    Descriptor.from_json(layer, where=f"layer {path!r}")
    if not isinstance(layer.get("diffID"), str):
        raise OciBuildError(f"layer {path!r} has no diffID; write it with `ocibuild layer`")
    try:
        validate_digest(layer["diffID"])
    except OciBuildError as err:
        raise OciBuildError(f"layer {path!r}: diffID: {err}") from None
    return Layer(layer["mediaType"], layer["digest"], layer["size"], layer["diffID"])


def _with_history(spec: dict, layers: List[Layer]) -> List[Layer]:
    """Each new layer with its history entry (by default, naming its layer.json)."""
    history = spec.get("history")
    created_by = [f"ocibuild layer {p}" for p in spec.get("layers") or []] if history is None \
        else history
    if len(created_by) != len(layers):
        raise OciBuildError(f"history has {len(created_by)} entries for {len(layers)} new "
                            "layers; give one per layer")
    return [replace(layer, created_by=by) for layer, by in zip(layers, created_by)]


def _check_spec(spec: object) -> dict:
    if not isinstance(spec, dict):
        raise OciBuildError("the assemble spec must be a JSON object; see `ocibuild.assemble`")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise OciBuildError(f"assemble spec: unknown key(s) {', '.join(unknown)}; known: "
                            f"{', '.join(SPEC_KEYS)}")
    where = "assemble spec"
    field(spec, "layers", list, where)
    str_list(spec, "history", where)
    str_map(spec, "annotations", where)
    for key in ("platform", "ref_name", "repository", "metadata_out"):
        field(spec, key, str, where)
    if spec.get("metadata_out"):
        local_path(spec["metadata_out"], f"{where}: metadata_out")
    return spec


def _ref_names(spec: dict) -> List[str]:
    names = field(spec, "ref_names", list, "assemble spec") or [spec.get("ref_name") or "latest"]
    if not all(isinstance(n, str) and n for n in names):
        raise OciBuildError(f'ref names {names!r}: must be non-empty strings, e.g. ["latest"]')
    return list(names)


def assemble_image(spec: dict, out_dir: str) -> dict:
    spec = _check_spec(spec)
    # Everything is checked before the first write, so a bad spec leaves no output behind.
    ref_names = _ref_names(spec)
    annotations = {validate_annotation_key(k): v
                   for k, v in (spec.get("annotations") or {}).items()}
    asked = parse_platform(spec["platform"]) if spec.get("platform") else None
    base, platform = _base(spec, asked)
    new_layers = [_read_layer(p) for p in spec.get("layers") or []]
    created = rfc3339(spec.get("created_epoch") or 0)
    settings = ImageSettings.from_json(spec.get("settings") or {})
    new_layers = _with_history(spec, new_layers)
    image = mutate.with_platform(base or Image.scratch(), platform)
    image = mutate.with_settings(mutate.with_created(image, created), settings)
    image = mutate.add_layers(image, new_layers, created=created)
    image = mutate.with_annotations(image, {
        **(mutate.base_annotations(spec["base"].get("name") or None,
                                   base.manifest_descriptor.digest) if base else {}),
        **annotations})
    write(OciLayout(out_dir), image, ref_names)
    base_layers = base.layers if base else ()
    metadata = {
        "manifest_digest": image.manifest_descriptor.digest,
        "config_digest": image.config_descriptor.digest,
        "platform": str(platform),
        "ref_name": ref_names[0],
        "ref_names": ref_names,
        "repository": spec.get("repository"),
        "layers": [
            {"digest": d.digest, "size": d.size, "media_type": d.media_type,
             "diff_id": d.diff_id, "from_base": i < len(base_layers)}
            for i, d in enumerate(image.layers)
        ],
        "base_blobs": sorted({d.digest for d in base_layers}),
    }
    if spec.get("metadata_out"):
        # Indented for the humans who read it in dist/; sorted keys keep it deterministic.
        text = json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        atomic_write(spec["metadata_out"], text.encode("utf-8"))
    return metadata
