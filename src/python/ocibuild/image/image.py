"""An image: its config blob, its layers and its manifest's annotations, as an immutable value.

The config is kept as bytes, the manifest computed from the value with canonical JSON, so
one value always gives the same digests. An image read from a layout keeps the exact
manifest bytes it was read with (`raw_manifest`): its digest is the one its tags name, even
when another tool wrote it with other whitespace or key order. Derive new images with
`ocibuild.image.mutate`, which drops `raw_manifest`: never `dataclasses.replace` a read image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional, Tuple

from ocibuild import canonical_json, mediatypes
from ocibuild.digest import bytes_digest
from ocibuild.image.config import Pairs
from ocibuild.image.layer import Layer
from ocibuild.image.manifest import Descriptor
from ocibuild.platform import Platform


@dataclass(frozen=True)
class Image:
    config_bytes: bytes  # the config blob, exactly
    layers: Tuple[Layer, ...] = ()
    annotations: Pairs = ()  # the manifest's
    media_type: str = mediatypes.OCI_MANIFEST
    config_media_type: str = mediatypes.OCI_CONFIG
    # The manifest's bytes as read from a layout; None for a derived image.
    raw_manifest: Optional[bytes] = field(default=None, repr=False)

    @classmethod
    def scratch(cls) -> "Image":
        """No layers and an empty config: the start of an image built from nothing."""
        return cls(canonical_json.dumps({}))

    @property
    def config(self) -> dict:
        """The config as JSON: a fresh copy, so changing it does not change the image."""
        return json.loads(self.config_bytes)

    @property
    def platform(self) -> Optional[Platform]:
        """The os/architecture[/variant] the config declares, or None if it declares none."""
        config = self.config
        values = [config.get(k) for k in ("os", "architecture", "variant")]
        if not all(isinstance(v, str) for v in values[:2]) or not all(values[:2]):
            return None
        return Platform(values[0], values[1], values[2] if isinstance(values[2], str) and
                        values[2] else None)

    @property
    def config_descriptor(self) -> Descriptor:
        return Descriptor(self.config_media_type, bytes_digest(self.config_bytes),
                          len(self.config_bytes))

    @cached_property
    def manifest_bytes(self) -> bytes:
        if self.raw_manifest is not None:
            return self.raw_manifest
        manifest: dict = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config_descriptor.to_json(),
            "layers": [layer.descriptor.to_json() for layer in self.layers],
        }
        if self.annotations:
            manifest["annotations"] = dict(self.annotations)
        return canonical_json.dumps(manifest)

    @property
    def manifest(self) -> dict:
        return json.loads(self.manifest_bytes)

    @property
    def manifest_descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, bytes_digest(self.manifest_bytes),
                          len(self.manifest_bytes))
