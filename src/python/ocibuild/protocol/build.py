"""`ocibuild build`: base + files + settings into an image (one per platform, under an index
when several), written as a layout and/or pushed; what was built and where it went, back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ocibuild.protocol.assemble import Pairs, Settings
from ocibuild.accounts import Group, User
from ocibuild.debian.grouping import DEFAULT_MAX_LAYERS, MAX_MAX_LAYERS, MIN_MAX_LAYERS
from ocibuild.protocol.document import Document, Part
from ocibuild.protocol.index import IndexedImage
from ocibuild.protocol.layer import LayerMapping


@dataclass(frozen=True)
class DebianSource(Part):
    suite: str  # e.g. "trixie", "trixie-security"
    mirror: str  # as the lockfile records it, e.g. "http://deb.debian.org/debian"
    keyring: Optional[str] = None  # the OpenPGP keyring file; None: the Debian archive keyring


@dataclass(frozen=True)
class DebianContents(Part):
    """A base built from Debian packages, as a `debian_packages` target builds it."""

    sources: Tuple[DebianSource, ...]
    packages: Tuple[str, ...]
    lockfile: str  # the lockfile's path (`ocibuild lock` writes it, `build` reads it)
    components: Tuple[str, ...] = ("main",)
    max_layers: int = field(default=DEFAULT_MAX_LAYERS, metadata={
        "check": lambda n: None if MIN_MAX_LAYERS <= n <= MAX_MAX_LAYERS else
        f"must be from {MIN_MAX_LAYERS} to {MAX_MAX_LAYERS}, e.g. {DEFAULT_MAX_LAYERS}"})
    allow_unsigned_index: bool = False
    fallback_mirrors: Tuple[str, ...] = ()  # templates, as `[oci].debian_fallback_mirrors`


@dataclass(frozen=True)
class BuildRequest(Document):
    KIND = "build"

    # "scratch", "oci:DIR[:REF_NAME]" (an OCI layout) or a registry reference to pull.
    base: str
    # One layer per mapping, bottom first: a file at `dest`, or a directory's contents under it.
    layers: Tuple[LayerMapping, ...] = ()
    settings: Settings = Settings()
    annotations: Pairs = ()
    # "os/arch[/variant]"; none: the base's (linux/amd64 on scratch); several: an index.
    platforms: Tuple[str, ...] = ()
    tags: Tuple[str, ...] = ()  # ref names in the layout, tags pushed (besides push's own)
    output: Optional[str] = None  # an OCI layout directory, written whole or not at all
    push: Optional[str] = None  # REGISTRY/REPOSITORY[:TAG]
    docker_archive: Optional[str] = None  # a `docker load` tarball (one platform only)
    digest_file: Optional[str] = None  # the image's (or index's) digest is written here
    image_refs: Optional[str] = None  # REGISTRY/REPO:TAG@DIGEST lines (pushed images)
    compression: str = "gzip"
    # Layer mtimes and the config's `created`: SOURCE_DATE_EPOCH, else 0.
    created_epoch: int = field(default=0, metadata={"check": lambda n: None if n >= 0 else
                                                    "must be a whole number of seconds since "
                                                    "1970-01-01 UTC, e.g. 0"})
    insecure_registries: Tuple[str, ...] = ()  # hosts spoken to in plain HTTP
    ca_certs: Pairs = ()  # (host, PEM file): the CA bundle that signed that host's certificate
    # A base of Debian packages (then `base` is "scratch"); mirrors as named -> where to read
    # them (a local or corporate mirror serving the same files); the .deb and index cache.
    debian: Optional[DebianContents] = None
    debian_mirrors: Pairs = ()
    cache_dir: Optional[str] = None
    # Added to the base's /etc/passwd and /etc/group, in a layer below `layers`.
    users: Tuple[User, ...] = ()
    groups: Tuple[Group, ...] = ()


@dataclass(frozen=True)
class BuildResult(Document):
    KIND = "build-result"

    manifest_digest: str  # the image's, or the index's when several platforms were built
    images: Tuple[IndexedImage, ...]  # one per platform
    output: Optional[str]
    reference: Optional[str]  # REGISTRY/REPO@DIGEST, when pushed
    refs: Tuple[str, ...]  # REGISTRY/REPO:TAG@DIGEST, when pushed
    docker_archive: Optional[str]
    uploaded: Tuple[str, ...]  # blob digests uploaded
    mounted: Tuple[str, ...]  # blob digests mounted from the base's repository
