"""`ocibuild push`: one image (or index) of a layout to a registry; what went up, back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ocibuild.protocol.document import Document

_POSITIVE = {"check": lambda n: None if n >= 1 else f"{n} must be a whole number >= 1, e.g. 4"}


@dataclass(frozen=True)
class PushRequest(Document):
    KIND = "push"

    layout: str
    to: str  # REGISTRY/REPOSITORY[:TAG]
    ref_name: Optional[str] = None
    tags: Tuple[str, ...] = ()
    # A repository on the same registry to mount blobs from (the base image's).
    mount_from: Optional[str] = None
    jobs: int = field(default=4, metadata=_POSITIVE)
    # Blobs larger than this go up in PATCH chunks of this size.
    chunk_size: int = field(default=64 << 20, metadata=_POSITIVE)
    digest_file: Optional[str] = None  # the manifest digest is written here
    refs_file: Optional[str] = None  # REGISTRY/REPO:TAG@DIGEST lines are written here
    append_refs: bool = False
    insecure: bool = False  # plain HTTP
    ca_cert: Optional[str] = None  # the CA bundle that signed the registry's certificate


@dataclass(frozen=True)
class PushResult(Document):
    KIND = "push-result"

    reference: str
    manifest_digest: str
    refs: Tuple[str, ...]
    uploaded: Tuple[str, ...]
    mounted: Tuple[str, ...]
    tags_written: Tuple[str, ...]
    retries: int
    referrers: Tuple[str, ...] = ()  # the artifact manifests (SBOMs) pushed after the image
