"""A layer of an image: its blob's descriptor, the diff_id of its tar and its history entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ocibuild.image.config import Pairs
from ocibuild.image.manifest import Descriptor


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str  # of the blob as stored (compressed)
    size: int
    # The sha256 of the uncompressed tar, as the config's rootfs.diff_ids lists it.
    diff_id: Optional[str] = None
    # The `created_by` of the layer's history entry in the config (None: unknown or none).
    created_by: Optional[str] = None
    annotations: Pairs = ()

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size,
                          annotations=dict(self.annotations) or None)

    @classmethod
    def of(cls, descriptor: Descriptor, *, diff_id: Optional[str] = None,
           created_by: Optional[str] = None) -> "Layer":
        return cls(descriptor.media_type, descriptor.digest, descriptor.size, diff_id,
                   created_by, tuple((descriptor.annotations or {}).items()))
