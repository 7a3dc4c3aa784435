"""`ocibuild run` of a `referrers` request: blobs (SBOMs) attached to images of a layout as
OCI 1.1 artifact manifests; the new blobs and the layout's new index.json written to the
output directory, the manifests' digests back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

from ocibuild.protocol.document import Document, Part
from ocibuild.protocol.sbom import _digest


@dataclass(frozen=True)
class ReferrerBlob(Part):
    path: str  # the blob's file, e.g. sbom.spdx.json
    # Its media type, which is also the artifact manifest's `artifactType`.
    media_type: str = field(metadata={"check": lambda m: None if m and "/" in m else
                                      'must be a media type, e.g. "application/spdx+json"'})
    subject: str = field(metadata={"check": _digest})  # an image manifest in the layout
    what: str  # for the index.json annotation, e.g. "SPDX SBOM"


@dataclass(frozen=True)
class ReferrersRequest(Document):
    KIND = "referrers"

    layout: str
    blobs: Tuple[ReferrerBlob, ...] = field(metadata={"check": lambda b: None if b else
                                                      "lists no blob to attach"})


@dataclass(frozen=True)
class Referrer(Part):
    manifest_digest: str
    size: int
    artifact_type: str
    subject: str
    blob_digest: str


@dataclass(frozen=True)
class ReferrersResult(Document):
    KIND = "referrers-result"

    referrers: Tuple[Referrer, ...]
