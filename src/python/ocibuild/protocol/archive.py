"""`ocibuild docker-archive` (a layout's image as a `docker load` tarball) and
`ocibuild unpack-layout` (an OCI archive tarball into a layout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ocibuild.protocol.document import Document


@dataclass(frozen=True)
class DockerArchiveRequest(Document):
    KIND = "docker-archive"

    layout: str
    out: str
    ref_name: Optional[str] = None
    repo_tags: Tuple[str, ...] = ()


@dataclass(frozen=True)
class DockerArchiveResult(Document):
    KIND = "docker-archive-result"

    out: str
    manifest_digest: str


@dataclass(frozen=True)
class UnpackLayoutRequest(Document):
    KIND = "unpack-layout"

    archive: str


@dataclass(frozen=True)
class UnpackLayoutResult(Document):
    KIND = "unpack-layout-result"

    out_dir: str
