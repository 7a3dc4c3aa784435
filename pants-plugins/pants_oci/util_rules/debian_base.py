"""A `debian_packages` base: the locked .deb files as layers, assembled into an OCI layout.

Every locked file is fetched by Pants' downloader, which checks SHA-256 and size and caches
by digest (so a package is downloaded once for all bases and machines sharing the cache):
from its suite's mirror, else from each fallback mirror in turn (`fallback_mirrors`, then
`[oci].debian_fallback_mirrors`), each try checked the same way.
The packages are grouped into at most `max_layers` layers (`ocibuild.debian.grouping`: the
largest alone, the rest in name-hashed buckets); each group becomes a layer in its own cached
`ocibuild debian-layer` process, keyed by its .debs' digests (and file names) alone: an
unchanged group is a cache hit, and bases that share a group share its layer, in the store
and in registries. Layer order: the root layer (merged-/usr symlinks), the groups by their
first package's name, then the config layer (passwd, group, and what maintainer scripts would
have made: CA bundle, alternatives, tzdata's /etc/localtime, /etc/os-release; see
ocibuild.debian.effects); the root and config layers do not count against `max_layers`.

A lockfile resolved from an index whose signature was not verified is refused unless the
target sets `allow_unsigned_index=True` (`lockfile.check_signature`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ocibuild.assemble import DEFAULT_PLATFORM
from ocibuild.debian import lockfile
from ocibuild.debian.base import BASE_REF_NAME, base_request, plan_layers
from ocibuild.debian.fallback import fallback_urls
from ocibuild.errors import OciBuildError
from ocibuild.platform import parse_platform
from ocibuild.protocol.debian import DebianLayerRequest
from pants.engine.fs import (
    Digest,
    DigestContents,
    DownloadFile,
    FileDigest,
    MergeDigests,
    PathGlobs,
)
from pants.engine.internals.native_engine import EngineError
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci import OciSubsystem
from pants_oci.subsystems.oci_tool import Compressor, OcibuildRun
from pants_oci.target_types import (
    DebianAllowUnsignedIndexField,
    DebianArchitecturesField,
    DebianComponentsField,
    DebianFallbackMirrorsField,
    DebianMaxLayersField,
    DebianPackagesField,
    DebianPackagesTarget,
)
from pants_oci.util_rules.base_image import BaseImage, BaseImageProvider, OciBaseError
from pants_oci.util_rules.assemble import AssembledImage, AssembleImage
from pants_oci.util_rules.layers import BuiltLayer, built_layer


def lock_request(target: DebianPackagesTarget) -> dict:
    return lockfile.request_of(
        sources=target.debian_sources(),
        components=target[DebianComponentsField].value,
        architectures=target[DebianArchitecturesField].value,
        packages=target[DebianPackagesField].value,
    )


@dataclass(frozen=True)
class DebianPackagesBase(BaseImageProvider):
    target_type = DebianPackagesTarget


@dataclass(frozen=True)
class DebianLayerBuild:
    request: DebianLayerRequest  # its compressor is filled in by the rule
    input_digest: Digest
    what: str
    created_by: str


@rule(desc="Build a Debian package layer", level=LogLevel.DEBUG)
async def debian_layer(build: DebianLayerBuild, compressor: Compressor) -> BuiltLayer:
    return await built_layer(
        OcibuildRun(
            dataclasses.replace(build.request, compressor=compressor.version),
            build.input_digest,
            description=f"Building the layer of {build.what}",
            context=f"building the layer of {build.what}",
        ),
        created_by=build.created_by,
    )


@dataclass(frozen=True)
class DebDownload:
    urls: tuple[str, ...]  # the primary mirror's, then each fallback's
    sha256: str
    size: int
    origin: str
    lockfile: str
    fix: str


@dataclass(frozen=True)
class DownloadedDeb:
    digest: Digest


@rule(desc="Download a Debian package", level=LogLevel.DEBUG)
async def download_deb(request: DebDownload) -> DownloadedDeb:
    """The first of `urls` that serves the locked bytes: each try is checked against the
    locked SHA-256 and size, so a fallback can only supply the same file."""
    failures = []
    for url in request.urls:
        try:
            digest = await Get(Digest, DownloadFile(url, FileDigest(request.sha256, request.size)))
        except EngineError as err:
            failures.append(f"{url}: {err}")
            continue
        return DownloadedDeb(digest)
    tried = "\n  ".join(failures)
    raise OciBaseError(
        f"{request.origin}: downloading the locked package {request.urls[0]} failed:\n  {tried}\n"
        f"A file whose size or SHA-256 differs from {request.lockfile} is refused: the mirror "
        f"changed it (lock again with `{request.fix}` if that is expected) or something "
        "between corrupts it. A mirror that dropped it: lock again, or add a fallback mirror "
        "that keeps old files (`fallback_mirrors`, `[oci].debian_fallback_mirrors`, e.g. "
        '"https://snapshot.debian.org/archive/{archive}/{timestamp}").'
    )


def deb_urls(doc: dict, package: dict, fallbacks: tuple[str, ...], oci: OciSubsystem
             ) -> tuple[str, ...]:
    """Where `package` (a lockfile entry) may be fetched, in order: its suite's mirror
    (through `[oci].debian_mirrors`), then each fallback template."""
    source = lockfile.source_of(doc, package["suite"])
    primary = f"{oci.debian_mirror(source['mirror'])}/{package['filename']}"
    return (primary, *fallback_urls(fallbacks, source, package["filename"]))


@rule(desc="Build a base image from Debian packages", level=LogLevel.DEBUG)
async def debian_base(request: DebianPackagesBase, oci: OciSubsystem) -> BaseImage:
    target = request.target
    origin = f"the debian_packages {target.address}"
    path = target.lockfile_path()
    fix = f"pants debian-lock {target.address}"
    found = await Get(DigestContents, PathGlobs([path]))
    if not found:
        raise OciBaseError(f"{origin}: no lockfile at {path}; create it with `{fix}`")
    try:
        doc = lockfile.load(found[0].content, path, fix)
        lockfile.check_current(doc, lock_request(target), path, fix)
        lockfile.check_signature(doc, target[DebianAllowUnsignedIndexField].value, path, fix)
        platform = parse_platform(request.platform) if request.platform else DEFAULT_PLATFORM
        arch = lockfile.debian_arch(platform.architecture, platform.variant or "")
        packages = lockfile.packages_for(doc, arch, path)
    except OciBuildError as err:
        raise OciBaseError(f"{origin}: {err}") from err
    try:
        fallbacks = (*(target[DebianFallbackMirrorsField].value or ()), *oci.debian_fallbacks())
        urls = [deb_urls(doc, p, fallbacks, oci) for p in packages]
    except ValueError as err:
        raise OciBaseError(f"{origin}: {err}") from err
    downloads = await MultiGet(
        Get(DownloadedDeb, DebDownload(u, p["sha256"], p["size"], origin, path, fix))
        for p, u in zip(packages, urls)
    )
    deb_of = {p["name"]: d.digest for p, d in zip(packages, downloads)}
    plan = plan_layers(doc, packages, target[DebianMaxLayersField].value)
    inputs = await MultiGet(
        Get(Digest, MergeDigests(deb_of[p["name"]] for p in layer.packages)) for layer in plan
    )
    layer_builds = [
        DebianLayerBuild(layer.request, digest, layer.what, layer.created_by)
        for layer, digest in zip(plan, inputs)
    ]
    layers = await MultiGet(Get(BuiltLayer, DebianLayerBuild, b) for b in layer_builds)
    assembled = await Get(
        AssembledImage,
        AssembleImage(
            base_request(str(platform), target.address.spec.replace(":", "/").lower()),
            layers=tuple(layers),
            base=None,
            what=origin,
        ),
    )
    return BaseImage(assembled.layout, BASE_REF_NAME, target.address.spec)


def rules():
    return (*collect_rules(), UnionRule(BaseImageProvider, DebianPackagesBase))
