"""`ocibuild debian-layer`: the files of .debs as one layer, or the base's root or config layer.
The answer is a `LayerDescriptor`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ocibuild.protocol.document import Document

PACKAGES, ROOT, CONFIG = "packages", "root", "config"


@dataclass(frozen=True)
class DebianLayerRequest(Document):
    KIND = "debian-layer"

    # PACKAGES: the files of `debs`; ROOT: merged-/usr symlinks and base directories;
    # CONFIG: /etc/passwd, /etc/group and the maintainer-script effects of `debs`.
    layer: str = field(metadata={"check": lambda v: None if v in (PACKAGES, ROOT, CONFIG)
                                 else f"{v!r} is not one of {PACKAGES}, {ROOT}, {CONFIG}"})
    debs: Tuple[str, ...] = ()
    # The Debian suite, for /etc/os-release when base-files is not in the set (CONFIG).
    suite: Optional[str] = None
    # The ca-certificates .deb among `debs`, if installed (CONFIG).
    ca_certificates: Optional[str] = None
    compression: str = "gzip"
    compressor: Optional[str] = None
