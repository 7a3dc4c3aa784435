"""`ocibuild run` of a `provenance` request: the SLSA provenance of one image (an in-toto
Statement v1 whose predicate is SLSA Provenance v1), from what the plugin knows about how it
was built; the file and its digest back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ocibuild.protocol.document import Document, Part
from ocibuild.protocol.sbom import SbomBase as ProvenanceBase  # the same: digest and name
from ocibuild.protocol.sbom import _digest

__all__ = ["ProvenanceBase", "ProvenanceFile", "ProvenanceRequest", "ProvenanceResult",
           "ProvenanceSubject"]

ROLES = ("debian-lockfile", "python-lockfile")


@dataclass(frozen=True)
class ProvenanceSubject(Part):
    manifest_digest: str = field(metadata={"check": _digest})  # one platform's image manifest
    name: str  # the repository it is published to, e.g. registry.example/app


@dataclass(frozen=True)
class ProvenanceFile(Part):
    """A file of the repository that decided the content: its path from the build root."""

    path: str
    digest: str = field(metadata={"check": _digest})
    # What it is, for a lockfile (one of ROLES); None for a source file.
    role: Optional[str] = field(default=None, metadata={"check": lambda r: None if r is None or
                                                        r in ROLES else
                                                        f"must be one of {', '.join(ROLES)}"})


@dataclass(frozen=True)
class ProvenanceRequest(Document):
    KIND = "provenance"

    subject: ProvenanceSubject
    target: str  # the Pants address of the oci_image
    platform: str  # os/arch[/variant] of the subject
    platforms: Tuple[str, ...] = ()  # all of the image's, when it is an index of several
    base: Optional[ProvenanceBase] = None
    # The image's org.opencontainers.image.source and .revision annotations, if it has them.
    source: Optional[str] = None
    revision: Optional[str] = None
    lockfiles: Tuple[ProvenanceFile, ...] = ()
    sources: Tuple[ProvenanceFile, ...] = ()  # every source file of the image's targets
    # The builder's versions, e.g. (("ocibuild", "sha256:..."), ("pants", "2.17.1")).
    builder_version: Tuple[Tuple[str, str], ...] = ()
    # SOURCE_DATE_EPOCH, when set: the statement's only time. None: it has none.
    epoch: Optional[int] = field(default=None, metadata={"check": lambda e: None if e is None or
                                                         e >= 0 else
                                                         "must be seconds since 1970, >= 0"})


@dataclass(frozen=True)
class ProvenanceResult(Document):
    KIND = "provenance-result"

    path: str  # relative to the output directory
    media_type: str
    digest: str
    size: int
    subject: str  # the image manifest digest it is about
    sources_digest: str  # the digest standing for all the source files (see ocibuild.provenance)
