"""What an image is made of, as one immutable value that both SBOM writers read.

Every list is kept sorted (`Inventory.of`), so two builds of the same inputs give the same
value whatever order the readers met things in, and the writers never sort again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

from ocibuild.sbom import purl


@dataclass(frozen=True)
class ImageRef:
    """The image the SBOM describes (or the base it was built on)."""

    manifest_digest: str  # sha256:<hex>; the SBOM's identity derives from the image's
    name: Optional[str] = None  # e.g. registry.example/app; None for an image never named
    platform: Optional[str] = None  # os/arch[/variant]; None for a base
    tags: Tuple[str, ...] = ()


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str
    architecture: str  # the package's own: "amd64", or "all"
    sha256: str  # of the .deb, hex
    size: int
    suite: str  # the suite it was locked from, e.g. trixie-security
    filename: str  # its pool path, e.g. pool/main/c/ca-certificates/ca-certificates_..._all.deb
    url: Optional[str] = None  # where it was downloaded from, when known

    @property
    def purl(self) -> str:
        return purl.deb(self.name, self.version, self.architecture, self.suite)


@dataclass(frozen=True)
class PythonDistribution:
    name: str
    version: str
    wheel: Optional[str] = None  # its file name, e.g. click-8.1.7-py3-none-any.whl
    sha256: Optional[str] = None  # of the wheel file, hex, when a lockfile says it
    # pex's fingerprint of the installed wheel (PEX-INFO `distributions`): not a hash of the
    # wheel file, so it is never written as a checksum, only noted.
    pex_fingerprint: Optional[str] = None

    @property
    def purl(self) -> str:
        return purl.pypi(self.name, self.version)


@dataclass(frozen=True)
class Artifact:
    """A first-party file in the image: what Pants built from one target."""

    address: str  # the Pants address, e.g. examples/python-cli:app
    digest: str  # sha256:<hex> of the file
    path: Optional[str] = None  # where it is in the image, e.g. /app/src/greet/cli.py


@dataclass(frozen=True)
class Inventory:
    image: ImageRef
    base: Optional[ImageRef] = None
    debian: Tuple[DebianPackage, ...] = ()
    python: Tuple[PythonDistribution, ...] = ()
    artifacts: Tuple[Artifact, ...] = ()

    @classmethod
    def of(cls, image: ImageRef, base: Optional[ImageRef] = None,
           debian: Iterable[DebianPackage] = (), python: Iterable[PythonDistribution] = (),
           artifacts: Iterable[Artifact] = ()) -> "Inventory":
        """Sorted and without repeats: the same package read twice (two PEXes sharing a
        wheel) is one package."""
        return cls(image, base,
                   tuple(sorted(set(debian), key=lambda p: (p.name, p.architecture, p.version))),
                   tuple(sorted(set(python), key=lambda d: (d.name, d.version, d.wheel or ""))),
                   tuple(sorted(set(artifacts), key=lambda a: (a.address, a.path or "",
                                                               a.digest))))
