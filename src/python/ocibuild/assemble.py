"""Assemble an image from a base layout, new layer descriptors and settings.

`assemble(request, out_dir)` takes an `AssembleRequest` (ocibuild.protocol.assemble): the
base (a layout directory and which image in it; None for scratch), the new layers'
descriptors (as `ocibuild layer` answers them) with their history, settings, annotations,
the creation time and the ref names. Only the base's manifest and config are read; its layer
blobs and the new layers' blobs need not be present (the caller merges them in; the result's
`base_blobs` names the base's). It writes the new config and manifest blobs, index.json and
oci-layout to `out_dir`, and answers an `AssembleResult`.

The base is read as an `Image` (ocibuild.layout reads any untrusted layout so), the new image
derived from it with `ocibuild.image.mutate` (platform, created, settings, layers with
history, annotations: first the base-image ones, then the request's) and written with
`ocibuild.layout.write`. The platform defaults to the base's, or to linux/amd64 on scratch: a
fixed value, so the digest never depends on the building machine. A multi-platform base is
resolved for the asked-for platform, or linux/amd64.
"""

from __future__ import annotations

from typing import Optional, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.image import mutate
from ocibuild.image.config import ImageSettings, check_base_config, rfc3339
from ocibuild.image.image import Image
from ocibuild.image.layer import Layer
from ocibuild.layout import OciLayout, resolve_image, write
from ocibuild.platform import Platform, from_config, parse_platform
from ocibuild.protocol.assemble import AssembleRequest, AssembleResult, BaseRef, ImageLayer
from ocibuild.untrusted import local_path
from ocibuild.validate import validate_annotation_key

DEFAULT_PLATFORM = Platform("linux", "amd64")


def _base(base: Optional[BaseRef], asked: Optional[Platform]
          ) -> Tuple[Optional[Image], Platform]:
    """The base image (None for scratch) and the platform of the new image."""
    if base is None:
        return None, asked or DEFAULT_PLATFORM
    local_path(base.layout, "assemble request: base layout")
    name = base.name or base.layout
    image = resolve_image(OciLayout(base.layout), ref_name=base.ref_name,
                          platform=asked or DEFAULT_PLATFORM)
    check_base_config(image.config, f"the base {name!r} (layout {base.layout!r}, config blob "
                                    f"{image.config_descriptor.digest})")
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


def _new_layers(request: AssembleRequest) -> Tuple[Layer, ...]:
    history = request.history
    if history is not None and len(history) != len(request.layers):
        raise OciBuildError(f"history has {len(history)} entries for {len(request.layers)} "
                            "new layers; give one per layer")
    return tuple(Layer(d.media_type, d.digest, d.size, d.diff_id,
                       history[i] if history is not None else None)
                 for i, d in enumerate(request.layers))


def assemble(request: AssembleRequest, out_dir: str) -> AssembleResult:
    # Everything is checked before the first write, so a bad request leaves no output behind.
    annotations = {validate_annotation_key(k): v for k, v in request.annotations}
    asked = parse_platform(request.platform) if request.platform else None
    settings = ImageSettings.from_json(request.settings.to_json())
    base, platform = _base(request.base, asked)
    new_layers = _new_layers(request)
    created = rfc3339(request.created_epoch)
    image = mutate.with_platform(base or Image.scratch(), platform)
    image = mutate.with_settings(mutate.with_created(image, created), settings)
    image = mutate.add_layers(image, new_layers, created=created)
    from_base = mutate.base_annotations(request.base.name, base.manifest_descriptor.digest) \
        if base is not None and request.base is not None else {}
    image = mutate.with_annotations(image, {**from_base, **annotations})
    write(OciLayout(out_dir), image, list(request.ref_names))
    base_layers = base.layers if base else ()
    return AssembleResult(
        manifest_digest=image.manifest_descriptor.digest,
        config_digest=image.config_descriptor.digest,
        platform=str(platform),
        ref_name=request.ref_names[0],
        ref_names=request.ref_names,
        repository=request.repository,
        layers=tuple(ImageLayer(d.digest, d.size, d.media_type, str(d.diff_id),
                                i < len(base_layers)) for i, d in enumerate(image.layers)),
        base_blobs=tuple(sorted({d.digest for d in base_layers})),
    )
