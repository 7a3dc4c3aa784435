"""The Debian packages of an image, read from the lockfile that decided them.

The lockfile names each .deb with its SHA-256 and size, and `pants package` refused any
download that did not match, so these are the exact files in the image, not a guess from
dpkg's status file.
"""

from __future__ import annotations

from typing import List

from ocibuild.debian import lockfile
from ocibuild.sbom.inventory import DebianPackage


def read_lockfile(data: bytes, architecture: str, where: str) -> List[DebianPackage]:
    """The packages locked for `architecture` (Debian's name: amd64, arm64, armhf, ...);
    every field is checked by `lockfile.load`."""
    doc = lockfile.load(data, where)
    return [DebianPackage(name=p["name"], version=p["version"], architecture=p["architecture"],
                          sha256=p["sha256"], size=p["size"], suite=p["suite"],
                          filename=p["filename"], url=p["url"])
            for p in lockfile.packages_for(doc, architecture, where)]
