"""An `oci_pull` base: one platform's image from a registry, as an OCI layout in the store.

Manifests are small: they are read in-process with the core's registry client and kept in a
content-addressed named cache. Config and layer blobs are fetched by Pants' own downloader
(`NativeDownloadFile`), which streams to the store and verifies the SHA-256 and size; it skips
blobs the store already has, and its cache is keyed by digest alone, so credentials (sent as
headers) never enter a cache key and rotating a token invalidates nothing. A warm build makes
no network request: blobs are first asked for without credentials, and a token is fetched only
when something is actually missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ocibuild import canonical_json
from ocibuild.assemble import DEFAULT_PLATFORM
from ocibuild.digest import hex_of
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor, image_index
from ocibuild.layout import OCI_LAYOUT_FILE
from ocibuild.platform import Platform, parse_platform
from ocibuild.reference import Reference, parse_reference
from ocibuild.registry import credentials
from ocibuild.registry.pull import (
    Manifest,
    blob_url,
    fetch_manifest,
    image_manifest,
    manifest_blobs,
    scope,
)
from ocibuild.registry.transport import Transport
from pants.base.build_root import BuildRoot
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    CreateDigest,
    Digest,
    FileContent,
    FileDigest,
    FileEntry,
    NativeDownloadFile,
)
from pants.engine.internals.native_engine import EngineError
from pants.engine.internals.selectors import MultiGet
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.option.global_options import NamedCachesDirOption
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci import OciSubsystem, Registry
from pants_oci.target_types import (
    OciPullDigestField,
    OciPullImageField,
    OciPullPlatformsField,
    OciPullTarget,
)
from pants_oci.util_rules.base_image import BaseImage, BaseImageProvider, OciBaseError

MANIFEST_CACHE = "pants_oci/manifests"


@dataclass(frozen=True)
class OciPullBase(BaseImageProvider):
    target_type = OciPullTarget


def registry_client(ref: Reference, oci: OciSubsystem, env: EnvironmentVars,
                    buildroot: str) -> Transport:
    configured = next(
        (r for r in oci.registries().values() if r.address == ref.registry),
        Registry(ref.registry, ref.registry),
    )
    ca_cert = os.path.join(buildroot, configured.ca_cert) if configured.ca_cert else None
    # Looked up only if the registry asks (a warm build never does): credential helpers may
    # themselves reach the network.
    return Transport(ref.api_host, insecure=configured.insecure, ca_cert=ca_cert,
                     credentials=lambda: credentials.lookup(ref.registry, env))


def chosen_platform(target: OciPullTarget, asked: str | None, origin: str) -> Platform:
    platform = parse_platform(asked) if asked else DEFAULT_PLATFORM
    allowed = target[OciPullPlatformsField].value
    if allowed and not any(platform.matches(parse_platform(p).to_json()) for p in allowed):
        raise OciBaseError(
            f"{origin}: platform {platform} is not among the `platforms` of the oci_pull "
            f"{target.address} ({', '.join(allowed)}); set the image's `platform` to one of "
            "them or add it there."
        )
    return platform


def layout_files(manifest: Manifest, blobs: list[Descriptor]) -> CreateDigest:
    """An OCI layout of one image: its manifest (bytes as pulled) and blobs already stored."""
    top = Descriptor(manifest.media_type, manifest.digest, len(manifest.content))
    return CreateDigest(
        [
            FileContent("oci-layout", canonical_json.dumps(OCI_LAYOUT_FILE)),
            FileContent("index.json", canonical_json.dumps(image_index([top]))),
            FileContent(f"blobs/sha256/{hex_of(manifest.digest)}", manifest.content),
            *(
                FileEntry(f"blobs/sha256/{hex_of(d.digest)}", FileDigest(hex_of(d.digest), d.size))
                for d in blobs
            ),
        ]
    )


async def _download(transport: Transport, ref: Reference, blobs: list[Descriptor],
                    headers: dict[str, str]) -> None:
    await MultiGet(
        Get(
            Digest,
            NativeDownloadFile(
                blob_url(transport, ref, d.digest),
                FileDigest(hex_of(d.digest), d.size),
                auth_headers=headers,
            ),
        )
        for d in blobs
    )


@rule(desc="Pull a base image", level=LogLevel.DEBUG)
async def pull_base_image(
    request: OciPullBase,
    oci: OciSubsystem,
    named_caches: NamedCachesDirOption,
    build_root: BuildRoot,
) -> BaseImage:
    target = request.target
    origin = f"the oci_pull {target.address}"
    ref = parse_reference(target[OciPullImageField].value)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(credentials.ENV_VARS))
    try:
        transport = registry_client(ref, oci, env, build_root.path)
        digest = target[OciPullDigestField].value
        if digest is None:
            current = fetch_manifest(transport, ref, ref.tag or "latest")
            raise OciBaseError(
                f"{origin} has no `digest`: base images must be pinned. {ref} points at "
                f'{current.digest} now: add `digest="{current.digest}"`, or run '
                f"`pants oci-pin {target.address}`."
            )
        platform = chosen_platform(target, request.platform, origin)
        cache_dir = os.path.join(str(named_caches.val), MANIFEST_CACHE)
        manifest = image_manifest(transport, ref, digest, platform, cache_dir)[-1]
        blobs = manifest_blobs(manifest, f"{ref.name}@{manifest.digest}")
    except OciBuildError as err:
        raise OciBaseError(f"{origin}: {err}") from err

    try:
        # Blobs already in the store are not fetched at all: try without credentials first.
        await _download(transport, ref, blobs, {})
    except EngineError:
        try:
            headers = transport.authorization(scope(ref.repository))
        except OciBuildError as err:
            raise OciBaseError(f"{origin}: {err}") from err
        try:
            await _download(transport, ref, blobs, headers)
        except EngineError as err:
            raise OciBaseError(
                f"{origin}: downloading its blobs failed: {err}\nBlobs are fetched by Pants' "
                "downloader, which trusts the CA bundle of [GLOBAL].ca_certs_path (add a private "
                "registry's CA there too) and needs a host name, not an IP address, for HTTPS."
            ) from err
    layout = await Get(Digest, CreateDigest, layout_files(manifest, blobs))
    return BaseImage(layout, None, target.address.spec)


def rules():
    return (*collect_rules(), UnionRule(BaseImageProvider, OciPullBase))
