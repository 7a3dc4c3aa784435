"""`ocibuild run` of an `sbom` request: the SBOMs of one image (SPDX 2.3 and CycloneDX 1.6
JSON), from the lockfiles and PEX-INFOs that decided its content; the files and their
digests back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ocibuild.digest import validate_digest
from ocibuild.errors import OciBuildError
from ocibuild.protocol.document import Document, Part

FORMATS = ("spdx", "cyclonedx")


def _digest(value: str) -> Optional[str]:
    try:
        validate_digest(value)
    except OciBuildError:
        return 'must be "sha256:" and 64 lowercase hex digits'
    return None


def _formats(values: Tuple[str, ...]) -> Optional[str]:
    if not values or any(v not in FORMATS for v in values) or len(set(values)) != len(values):
        return f"must list some of {', '.join(FORMATS)}, each once, e.g. [\"spdx\"]"
    return None


@dataclass(frozen=True)
class SbomImage(Part):
    manifest_digest: str = field(metadata={"check": _digest})
    platform: str  # os/arch[/variant]: which architecture of the Debian lockfiles is read
    name: Optional[str] = None  # the repository it is published to, e.g. registry.example/app
    tags: Tuple[str, ...] = ()


@dataclass(frozen=True)
class SbomBase(Part):
    manifest_digest: str = field(metadata={"check": _digest})
    name: Optional[str] = None  # as the BUILD file names it, e.g. docker.io/library/debian


@dataclass(frozen=True)
class SbomPex(Part):
    # A PEX-INFO file, or a PEX (packed or loose directory, or zipapp) holding one.
    pex: str
    # The Pants lockfile the PEX was resolved from: where the wheels' SHA-256s come from.
    lockfile: Optional[str] = None


@dataclass(frozen=True)
class SbomArtifact(Part):
    address: str  # the Pants address of the target that built it
    digest: str = field(metadata={"check": _digest})
    path: Optional[str] = None  # where it is in the image, e.g. /app/src/greet/cli.py


@dataclass(frozen=True)
class SbomRequest(Document):
    KIND = "sbom"

    image: SbomImage
    base: Optional[SbomBase] = None
    debian_lockfiles: Tuple[str, ...] = ()
    pexes: Tuple[SbomPex, ...] = ()
    artifacts: Tuple[SbomArtifact, ...] = ()
    formats: Tuple[str, ...] = field(default=FORMATS, metadata={"check": _formats})
    # SOURCE_DATE_EPOCH: the documents' creation time (their only time).
    epoch: int = field(default=0, metadata={"check": lambda e: None if e >= 0 else
                                            "must be seconds since 1970, >= 0"})


@dataclass(frozen=True)
class SbomFile(Part):
    format: str
    path: str  # relative to the output directory
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class SbomResult(Document):
    KIND = "sbom-result"

    image_manifest_digest: str
    files: Tuple[SbomFile, ...]
    debian_packages: int
    python_distributions: int
    artifacts: int
