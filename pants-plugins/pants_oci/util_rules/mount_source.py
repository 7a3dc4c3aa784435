"""Which repository of a registry a push mounts blobs from, so a base's layers go up once.

A registry holds a blob once; pushing it to another repository of the same registry only
needs a cross-repository mount (`POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<src>`),
which fails harmlessly into a normal upload when `src` lacks it. The candidates, in order:

1. the base image's own repository, when it was pulled from that registry (`oci_pull`, or
   an `oci_image` chain ending in one): its layers are there;
2. the repository a local `oci_image` base is published to in that registry;
3. the repository of another `oci_image` on the same base target that is published to that
   registry (a monorepo's services on one `debian_packages` base): the one before this image
   in address order, which `pants publish` pushed first, else the first after it (pushed by
   an earlier run, maybe).

Images whose settings cannot be read (a bad `registries` value, say) are passed over: their
own publish reports that.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.engine.addresses import Address, AddressInput
from pants.engine.internals.native_engine import (
    AddressParseException,
    InvalidAddressError,
    InvalidParametersError,
    InvalidSpecPathError,
    InvalidTargetNameError,
)
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import AllUnexpandedTargets, Target
from pants.engine.unions import UnionMembership

from pants_oci.subsystems.oci import OciSubsystem, select_registries
from pants_oci.target_types import (
    SCRATCH,
    OciImageBaseField,
    OciImageRegistriesField,
    OciImageSkipPushField,
    OciImageTarget,
)
from pants_oci.util_rules.base_image import BaseOrigin, BaseOriginRequest, base_of
from pants_oci.util_rules.image_names import ImageNameError, ImageNames, ImageNamesRequest

_BAD_ADDRESS = (AddressParseException, InvalidAddressError, InvalidParametersError,
                InvalidSpecPathError, InvalidTargetNameError)


@dataclass(frozen=True)
class MountSourceRequest:
    image: Address
    registry: str  # the registry's address, e.g. registry.example:5000


@dataclass(frozen=True)
class MountSource:
    repository: str | None


def _base_address(target: Target) -> Address | None:
    """The address a target's `base` names, parsed without resolving it (None: scratch or
    not an address)."""
    base = target[OciImageBaseField].value
    if not base or base == SCRATCH:
        return None
    try:
        parsed = AddressInput.parse(base, relative_to=target.address.spec_path,
                                    description_of_origin=f"the `base` of {target.address}")
        return parsed.dir_to_address()
    except _BAD_ADDRESS:  # a sibling's bad base is its own build's error
        return None


async def _repository_in(target: Target, registry: str, oci: OciSubsystem) -> str | None:
    """The repository `target` is published to in `registry`, if it is published there."""
    if target[OciImageSkipPushField].value:
        return None
    try:
        registries = select_registries(oci.registries(), target[OciImageRegistriesField].value)
    except ValueError:
        return None
    for entry in registries:
        if entry.address == registry and not entry.skip_push:
            try:
                names = await Get(ImageNames, ImageNamesRequest(target.address))
                return names.for_registry(entry, "[oci].registries").repository
            except ImageNameError:  # its own publish names the error
                return None
    return None


@rule
async def mount_source(request: MountSourceRequest, oci: OciSubsystem,
                       union_membership: UnionMembership) -> MountSource:
    origin = await Get(BaseOrigin, BaseOriginRequest(request.image))
    if origin.reference is not None and origin.reference.registry == request.registry:
        return MountSource(origin.reference.repository)
    base_tgt = await base_of(request.image, union_membership)
    if base_tgt is None:
        return MountSource(None)
    if isinstance(base_tgt, OciImageTarget):
        published = await _repository_in(base_tgt, request.registry, oci)
        if published is not None:
            return MountSource(published)
    # Only now, and unexpanded (an oci_image is never generated): reading every BUILD file is
    # the one cost here, and expanding generators would redo it after each source edit.
    all_targets = await Get(AllUnexpandedTargets)
    siblings = sorted(
        (t for t in all_targets if isinstance(t, OciImageTarget) and t.address != request.image
         and _base_address(t) == base_tgt.address),
        key=lambda t: t.address,
    )
    before = [t for t in siblings if t.address < request.image]
    after = [t for t in siblings if t.address > request.image]
    for sibling in [*reversed(before), *after]:
        repository = await _repository_in(sibling, request.registry, oci)
        if repository is not None:
            return MountSource(repository)
    return MountSource(None)


def rules():
    return collect_rules()
