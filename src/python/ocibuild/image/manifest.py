"""Descriptors and OCI image manifests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ocibuild import mediatypes

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict | None = None
    annotations: dict | None = None

    def to_json(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    @classmethod
    def from_json(cls, raw: dict) -> "Descriptor":
        return cls(raw["mediaType"], raw["digest"], int(raw["size"]), raw.get("platform"),
                   raw.get("annotations"))


def image_manifest(config: Descriptor, layers: Sequence[Descriptor],
                   annotations: dict | None = None) -> dict:
    manifest: dict = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return manifest


def image_index(manifests: Sequence[Descriptor]) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [m.to_json() for m in manifests],
    }
