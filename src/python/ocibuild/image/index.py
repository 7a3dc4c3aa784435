"""An image index: several images (one per platform, usually) under one digest.

Like `Image`, an index read from a layout keeps the exact bytes it was read with
(`raw_index`); one built with `Index.of` computes them with canonical JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional, Sequence, Tuple

from ocibuild import canonical_json, mediatypes
from ocibuild.digest import bytes_digest
from ocibuild.image.config import Pairs
from ocibuild.image.image import Image
from ocibuild.image.manifest import Descriptor, image_index
from ocibuild.platform import Platform


@dataclass(frozen=True)
class Child:
    """One image of an index, with the platform the index says it is for."""

    image: Image
    platform: Optional[Platform] = None
    annotations: Pairs = ()

    @property
    def descriptor(self) -> Descriptor:
        image = self.image.manifest_descriptor
        return Descriptor(image.media_type, image.digest, image.size,
                          platform=self.platform.to_json() if self.platform else None,
                          annotations=dict(self.annotations) or None)


@dataclass(frozen=True)
class Index:
    manifests: Tuple[Child, ...]
    annotations: Pairs = ()
    media_type: str = mediatypes.OCI_INDEX
    # The index's bytes as read from a layout; None for a built index.
    raw_index: Optional[bytes] = field(default=None, repr=False)

    @classmethod
    def of(cls, images: Sequence[Image], *, annotations: Pairs = ()) -> "Index":
        """An index of `images`, each listed under the platform its config declares."""
        return cls(tuple(Child(image, image.platform) for image in images), annotations)

    @cached_property
    def index_bytes(self) -> bytes:
        if self.raw_index is not None:
            return self.raw_index
        return canonical_json.dumps(image_index([c.descriptor for c in self.manifests],
                                                annotations=dict(self.annotations)))

    @property
    def index(self) -> dict:
        return json.loads(self.index_bytes)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, bytes_digest(self.index_bytes), len(self.index_bytes))
