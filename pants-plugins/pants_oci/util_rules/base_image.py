"""Resolve an `oci_image`'s `base` field to an OCI image layout in the store.

`scratch` has no layout; an `oci_image` base is built (and its layers reused); an
`oci_layout` base is read from the repository, unpacking a `.tar` in a cached process; an
`oci_pull` base is pulled from its registry (`pulled_base.py`).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ocibuild.reference import Reference, parse_reference
from pants.build_graph.address import ResolveError
from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.fs import Digest, DigestEntries, FileEntry, PathGlobs, RemovePrefix, Snapshot
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import Target, WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci_tool import OcibuildResult, OcibuildRun
from pants_oci.target_types import (
    SCRATCH,
    OciImageTarget,
    OciLayoutImageRefField,
    OciLayoutPathField,
    DebianPackagesTarget,
    OciImageBaseField,
    OciLayoutTarget,
    OciPullImageField,
    OciPullTarget,
)


class OciBaseError(Exception):
    """The `base` of an `oci_image` cannot be used."""


@dataclass(frozen=True)
class BaseImageRequest:
    image: Address
    base: str
    # The image's `platform` field: which image of a multi-platform base to use.
    platform: str | None = None


@dataclass(frozen=True)
class BaseImage:
    """An OCI image layout (rooted at the digest root) and which image in it to use."""

    layout: Digest | None
    ref_name: str | None
    # The `base` as written in the BUILD file, for error messages and history.
    spec: str

    @property
    def is_scratch(self) -> bool:
        return self.layout is None


@dataclass(frozen=True)
class OciLayoutRequest:
    target: OciLayoutTarget


@dataclass(frozen=True)
class DebianBaseRequest:
    """Answered in `debian_base.py`."""

    target: DebianPackagesTarget
    platform: str | None


@dataclass(frozen=True)
class OciPullRequest:
    """Answered in `pulled_base.py`."""

    target: OciPullTarget
    platform: str | None


@dataclass(frozen=True)
class OciImageLayoutRequest:
    """The built layout of an `oci_image`.

    Answered in `image.py`; declared here because that module imports this one.
    """

    address: Address


@dataclass(frozen=True)
class OciImageLayout:
    digest: Digest
    ref_name: str


async def _verify_blobs(layout: Digest, origin: str) -> None:
    """A vendored blob whose bytes do not match its name would make a corrupt image.

    The store already knows every file's SHA-256, so this reads no bytes.
    """
    entries = await Get(DigestEntries, Digest, layout)
    for entry in entries:
        parts = entry.path.split("/")
        if not isinstance(entry, FileEntry) or parts[:2] != ["blobs", "sha256"] or len(parts) != 3:
            continue
        if entry.file_digest.fingerprint != parts[2]:
            raise OciBaseError(
                f"{origin}: {entry.path} does not match its digest (its content is "
                f"sha256:{entry.file_digest.fingerprint}); the layout is corrupt, copy it again."
            )


@rule(desc="Read a vendored OCI image layout", level=LogLevel.DEBUG)
async def read_oci_layout(request: OciLayoutRequest) -> BaseImage:
    target = request.target
    rel = target[OciLayoutPathField].value.strip("/")
    path = posixpath.normpath(posixpath.join(target.address.spec_path, rel))
    origin = f"the `layout` field of the oci_layout {target.address}"
    if path.endswith(".tar"):
        archive = await Get(Snapshot, PathGlobs([path]))
        if not archive.files:
            raise OciBaseError(f"{origin}: no file at {path!r}. Point it at an OCI archive tar.")
        result = await Get(
            OcibuildResult,
            OcibuildRun(
                argv=("unpack-layout", "--archive", path, "--out-dir", "layout"),
                input_digest=archive.digest,
                description=f"Unpacking the OCI archive {path}",
                context=f"unpacking {path} ({origin})",
                output_directories=("layout",),
            ),
        )
        layout = await Get(Digest, RemovePrefix(result.output_digest, "layout"))
    else:
        snapshot = await Get(Snapshot, PathGlobs([f"{path}/**"]))
        if f"{path}/index.json" not in snapshot.files:
            raise OciBaseError(
                f"{origin}: {path!r} is not an OCI image layout (no {path}/index.json). "
                "Create one with `skopeo copy docker://IMAGE oci:DIR:TAG` and commit DIR."
            )
        layout = await Get(Digest, RemovePrefix(snapshot.digest, path))
    await _verify_blobs(layout, origin)
    return BaseImage(layout, target[OciLayoutImageRefField].value, target.address.spec)


async def _base_target(image: Address, base: str) -> Target:
    origin = f"the `base` field of the oci_image {image}"
    try:
        (address,) = await Get(
            Addresses,
            UnparsedAddressInputs([base], owning_address=image, description_of_origin=origin),
        )
        wrapped = await Get(
            WrappedTarget, WrappedTargetRequest(address, description_of_origin=origin)
        )
    except ResolveError as err:
        raise OciBaseError(
            f"{origin}: {base!r} is not a known target ({err}). Use \"scratch\", or the "
            "address of an oci_image, oci_pull, oci_layout or debian_packages."
        ) from err
    if address == image:
        raise OciBaseError(f"{origin}: an image cannot be its own base.")
    target = wrapped.target
    if not isinstance(target, (OciLayoutTarget, OciPullTarget, OciImageTarget, DebianPackagesTarget)):
        raise OciBaseError(
            f"{origin}: {address} is a `{target.alias}` target, which is not an image. Use "
            '"scratch", or the address of an oci_image, oci_pull, oci_layout or debian_packages.'
        )
    return target


@rule(desc="Resolve the base of an oci_image", level=LogLevel.DEBUG)
async def resolve_base_image(request: BaseImageRequest) -> BaseImage:
    if request.base == SCRATCH:
        return BaseImage(None, None, SCRATCH)
    target = await _base_target(request.image, request.base)
    if isinstance(target, OciLayoutTarget):
        return await Get(BaseImage, OciLayoutRequest(target))
    if isinstance(target, OciPullTarget):
        return await Get(BaseImage, OciPullRequest(target, request.platform))
    if isinstance(target, DebianPackagesTarget):
        return await Get(BaseImage, DebianBaseRequest(target, request.platform))
    built = await Get(OciImageLayout, OciImageLayoutRequest(target.address))
    return BaseImage(built.digest, built.ref_name, target.address.spec)


@dataclass(frozen=True)
class BaseOriginRequest:
    image: Address


@dataclass(frozen=True)
class BaseOrigin:
    """The registry image at the bottom of an image's base chain, if there is one: pushes to
    the same registry mount its blobs instead of uploading them."""

    reference: Reference | None


@rule
async def base_origin(request: BaseOriginRequest) -> BaseOrigin:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.image, description_of_origin="<infallible>")
    )
    base = wrapped.target[OciImageBaseField].value
    if base == SCRATCH:
        return BaseOrigin(None)
    target = await _base_target(request.image, base)
    if isinstance(target, OciPullTarget):
        return BaseOrigin(parse_reference(target[OciPullImageField].value))
    if isinstance(target, OciImageTarget):
        return await Get(BaseOrigin, BaseOriginRequest(target.address))
    return BaseOrigin(None)


def rules():
    return collect_rules()
