"""`ocibuild index`: images already assembled (one per platform) under one image index; the
index and its images' digests back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ocibuild.protocol.assemble import Pairs, _ref_names
from ocibuild.protocol.document import Document, Part


@dataclass(frozen=True)
class IndexRequest(Document):
    KIND = "index"

    # Layout directories, each holding one image (its manifest and config; layer blobs need
    # not be present): the index lists them in this order, under their configs' platforms.
    images: Tuple[str, ...] = field(metadata={"check": lambda images: None if images else
                                              "lists no image layouts"})
    ref_names: Tuple[str, ...] = field(default=("latest",), metadata={"check": _ref_names})
    annotations: Pairs = ()
    repository: Optional[str] = None  # passed through to the result


@dataclass(frozen=True)
class IndexedImage(Part):
    platform: str
    manifest_digest: str
    config_digest: str


@dataclass(frozen=True)
class IndexResult(Document):
    KIND = "index-result"

    manifest_digest: str  # the index's
    ref_name: str
    ref_names: Tuple[str, ...]
    repository: Optional[str]
    manifests: Tuple[IndexedImage, ...]
