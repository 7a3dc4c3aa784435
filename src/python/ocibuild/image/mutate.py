"""Pure transformations: each derives a new `Image` from an old one, which is left unchanged.

A derived image is an OCI image: its manifest is computed (the old one's exact bytes are
dropped), with OCI media types for the manifest, the config and Docker gzip layers (byte for
byte the same blobs; umoci, for one, refuses Docker layer types in an OCI manifest). Its
config is written with canonical JSON; a derivation that leaves the config alone keeps the
old config's bytes.

The old image's config is untrusted (a base image): every derivation that reads or extends it
first refuses wrongly typed fields (`ocibuild.image.config.check_base_config`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, Mapping, Optional, Sequence

from ocibuild import canonical_json, mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.image import config as configs
from ocibuild.image.config import ImageSettings
from ocibuild.image.image import Image
from ocibuild.image.layer import Layer
from ocibuild.image.manifest import BASE_DIGEST, BASE_NAME
from ocibuild.platform import Platform


def _config(image: Image) -> dict:
    config = image.config
    configs.check_base_config(config, f"the config {image.config_descriptor.digest}")
    return config


def _derived(image: Image, *, config: Optional[dict] = None,
             layers: Optional[Sequence[Layer]] = None,
             annotations: Optional[Mapping[str, str]] = None) -> Image:
    return Image(
        canonical_json.dumps(config) if config is not None else image.config_bytes,
        tuple(replace(layer, media_type=mediatypes.oci_layer_media_type(layer.media_type))
              for layer in (image.layers if layers is None else layers)),
        image.annotations if annotations is None else tuple(annotations.items()),
    )


def with_platform(image: Image, platform: Platform) -> Image:
    return _derived(image, config=configs.with_platform(_config(image), platform))


def with_created(image: Image, created: str) -> Image:
    """`created` in RFC 3339, e.g. `ocibuild.image.config.rfc3339(0)`."""
    return _derived(image, config=configs.with_created(_config(image), created))


def with_settings(image: Image, settings: ImageSettings) -> Image:
    return _derived(image, config=configs.with_settings(_config(image), settings))


def add_layers(image: Image, layers: Sequence[Layer], *, created: str) -> Image:
    """`layers` on top, each with its diff_id in the config and a history entry saying
    `created` and the layer's `created_by`."""
    missing = [layer.digest for layer in layers if layer.diff_id is None]
    if missing:
        raise OciBuildError(f"layer(s) {', '.join(missing)} have no diff_id; a layer added to "
                            "an image needs one (`ocibuild layer` writes it)")
    config = configs.with_layers(_config(image), [str(layer.diff_id) for layer in layers],
                                 created=created,
                                 created_by=[layer.created_by for layer in layers])
    return _derived(image, config=config, layers=[*image.layers, *layers])


def with_annotations(image: Image, annotations: Mapping[str, str]) -> Image:
    """The manifest's annotations replaced by `annotations`, not merged into them."""
    return _derived(image, annotations=dict(annotations))


def base_annotations(name: Optional[str], digest: Optional[str]) -> Dict[str, str]:
    """What an image was built on, as buildkit writes it into the manifest: the base's name
    (when it has one) and its manifest digest."""
    return {key: value for key, value in ((BASE_NAME, name), (BASE_DIGEST, digest)) if value}
