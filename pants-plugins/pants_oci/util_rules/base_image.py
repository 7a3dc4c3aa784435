"""Resolve an `oci_image`'s `base` field to an OCI image layout in the store.

`scratch` has no layout; any other base is a target whose type a `BaseImageProvider` member
names: an `oci_layout` is read from the repository, unpacking a `.tar` in a cached process
(here); an `oci_pull` is pulled from its registry (`pulled_base.py`); a `debian_packages` is
built from its lockfile (`debian_base.py`); an `oci_image` is built (`image.py`), and its
layers reused.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import ClassVar, Iterable

from ocibuild.errors import EscapedError
from ocibuild.protocol.archive import UnpackLayoutRequest
from ocibuild.reference import Reference, parse_reference
from pants.build_graph.address import ResolveError
from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.fs import Digest, DigestEntries, FileEntry, PathGlobs, RemovePrefix, Snapshot
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import Target, WrappedTarget, WrappedTargetRequest
from pants.engine.environment import EnvironmentName
from pants.engine.unions import UnionMembership, UnionRule, union
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci_tool import OcibuildResult, OcibuildRun
from pants_oci.target_types import (
    SCRATCH,
    OciImageBaseField,
    OciImageTarget,
    OciLayoutImageRefField,
    OciLayoutPathField,
    OciLayoutTarget,
    OciPullImageField,
    OciPullTarget,
)


# An OCI archive, plain or compressed: the core reads its compression from its first bytes
# and bounds what it decompresses (ocibuild.bounded_decompress).
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")


class OciBaseError(EscapedError):
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


@union(in_scope_types=[EnvironmentName])
@dataclass(frozen=True)
class BaseImageProvider:
    """An extension point: a kind of target an `oci_image` can be built on.

    A member names its target type and has a rule from itself to `BaseImage`. Here:
    `oci_layout` (below), `oci_pull` (`pulled_base.py`), `debian_packages` (`debian_base.py`)
    and `oci_image` (`image.py`). Another backend adds one with
    `UnionRule(BaseImageProvider, MyBase)` and a `@rule` from `MyBase` to `BaseImage`.
    """

    target_type: ClassVar[type[Target]]

    target: Target
    # The image's `platform` field: which image of a multi-platform base to use.
    platform: str | None


@dataclass(frozen=True)
class OciLayoutBase(BaseImageProvider):
    target_type = OciLayoutTarget


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
async def read_oci_layout(request: OciLayoutBase) -> BaseImage:
    target = request.target
    rel = target[OciLayoutPathField].value.strip("/")
    path = posixpath.normpath(posixpath.join(target.address.spec_path, rel))
    origin = f"the `layout` field of the oci_layout {target.address}"
    if path.endswith(ARCHIVE_SUFFIXES):
        archive = await Get(Snapshot, PathGlobs([path]))
        if not archive.files:
            raise OciBaseError(f"{origin}: no file at {path!r}. Point it at an OCI archive tar.")
        result = await Get(
            OcibuildResult,
            OcibuildRun(
                UnpackLayoutRequest(path),
                archive.digest,
                description=f"Unpacking the OCI archive {path}",
                context=f"unpacking {path} ({origin})",
            ),
        )
        layout = result.output_digest
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


def _kinds(providers: Iterable[type[BaseImageProvider]]) -> str:
    return ", ".join(sorted(p.target_type.alias for p in providers))


async def base_target(image: Address, base: str, union_membership: UnionMembership
                       ) -> tuple[Target, type[BaseImageProvider]]:
    origin = f"the `base` field of the oci_image {image}"
    providers = union_membership.get(BaseImageProvider)
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
            f"address of one of: {_kinds(providers)}."
        ) from err
    if address == image:
        raise OciBaseError(f"{origin}: an image cannot be its own base.")
    target = wrapped.target
    provider = next((p for p in providers if isinstance(target, p.target_type)), None)
    if provider is None:
        raise OciBaseError(
            f"{origin}: {address} is a `{target.alias}` target, which is not an image. Use "
            f'"scratch", or the address of one of: {_kinds(providers)}.'
        )
    return target, provider


@rule(desc="Resolve the base of an oci_image", level=LogLevel.DEBUG)
async def resolve_base_image(request: BaseImageRequest, union_membership: UnionMembership
                             ) -> BaseImage:
    if request.base == SCRATCH:
        return BaseImage(None, None, SCRATCH)
    target, provider = await base_target(request.image, request.base, union_membership)
    return await Get(BaseImage, BaseImageProvider, provider(target, request.platform))


@dataclass(frozen=True)
class BaseOriginRequest:
    image: Address


@dataclass(frozen=True)
class BaseOrigin:
    """The registry image at the bottom of an image's base chain, if there is one: pushes to
    the same registry mount its blobs instead of uploading them."""

    reference: Reference | None


async def base_of(image: Address, union_membership: UnionMembership) -> Target | None:
    """The target the `base` of the oci_image at `image` names; None for scratch."""
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(image, description_of_origin="<infallible>")
    )
    if not wrapped.target.has_field(OciImageBaseField):  # a Dockerfile's: its FROM images
        return None
    base = wrapped.target[OciImageBaseField].value
    if base == SCRATCH:
        return None
    target, _ = await base_target(image, base, union_membership)
    return target


@rule
async def base_origin(request: BaseOriginRequest, union_membership: UnionMembership
                      ) -> BaseOrigin:
    target = await base_of(request.image, union_membership)
    if isinstance(target, OciPullTarget):
        return BaseOrigin(parse_reference(target[OciPullImageField].value))
    if isinstance(target, OciImageTarget):
        return await Get(BaseOrigin, BaseOriginRequest(target.address))
    return BaseOrigin(None)


def rules():
    return (*collect_rules(), UnionRule(BaseImageProvider, OciLayoutBase))
