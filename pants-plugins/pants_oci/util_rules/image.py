"""Assemble an `oci_image`: base + one layer per dependency + config, as an OCI layout.

Layers come from their own cached processes; assembly (`assemble.py`) only writes the small
config, manifest and index, and the layout is merged from digests already in the store. With
`platforms`, each platform's image is built so (the layer requests are the same for every
platform, so each layer is built once) and `ocibuild index` puts them under one image index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import AddPrefix, Digest, DigestSubset, MergeDigests, PathGlobs
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import Dependencies, Target, WrappedTarget, WrappedTargetRequest
from pants.engine.environment import EnvironmentName
from pants.engine.unions import UnionMembership, UnionRule, union
from pants.util.logging import LogLevel

from ocibuild import validate
from ocibuild.errors import EscapedError, OciBuildError
from ocibuild.platform import Platform, parse_platform
from ocibuild.protocol.assemble import AssembleRequest, AssembleResult, Settings
from ocibuild.protocol.index import IndexRequest, IndexResult
from ocibuild.protocol.document import pairs
from ocibuild.protocol.layer import BaseTree
from pants_oci.target_types import (
    OciImageBaseField,
    OciImageCmdField,
    OciImageEntrypointField,
    OciImageEnvField,
    OciImageExposedPortsField,
    OciImageLabelsField,
    OciImageLayerCompressionField,
    OciImagePlatformField,
    OciImagePlatformsField,
    OciImageStopSignalField,
    OciImageTarget,
    OciImageUserField,
    OciImageVolumesField,
    OciImageWorkdirField,
)
from pants_oci.subsystems.oci_tool import OcibuildResult, OcibuildRun
from pants_oci.util_rules.assemble import AssembledImage, AssembleImage
from pants_oci.util_rules.base_image import (
    BaseImage,
    BaseImageRequest,
    BaseImageProvider,
)
from pants_oci.util_rules.wheel_platforms import wheels_for_other_platforms, wheels_in
from pants_oci.util_rules.layer_content import (
    LayerContent,
    LayerContentRequest,
    LayerContents,
    check_no_conflicts,
)
from pants_oci.util_rules.image_names import ImageNames, ImageNamesRequest
from pants_oci.util_rules.base_tree import BaseTreeOf, check_base_kinds
from pants_oci.util_rules.layers import BuildLayerRequest, BuiltLayer
from pants_oci.util_rules.vcs import VcsAnnotations, VcsAnnotationsRequest


class SourceDateEpochError(Exception):
    pass


@dataclass(frozen=True)
class OciImageRequest:
    address: Address
    # One platform of an image with `platforms`; None: the image as its fields say.
    platform: str | None = None

    def describe(self) -> str:
        """For messages: "the oci_image app:image", "... for linux/arm64"."""
        return f"the oci_image {self.address}" + (f" for {self.platform}" if self.platform else "")


@dataclass(frozen=True)
class OciImage:
    """A built image or image index: its OCI layout (rooted at the digest root) and what
    assembling it said."""

    address: Address
    layout: Digest
    result: AssembleResult | IndexResult
    repository: str
    tags: tuple[str, ...]

    @property
    def is_index(self) -> bool:
        return isinstance(self.result, IndexResult)

    @property
    def manifest_digest(self) -> str:
        return self.result.manifest_digest

    @property
    def metadata(self) -> bytes:
        """The image.json written beside the layout in dist/: indented for the humans who read
        it, sorted keys keep it deterministic."""
        text = json.dumps(self.result.to_json(), indent=2, sort_keys=True, ensure_ascii=False)
        return (text + "\n").encode()


def source_date_epoch(env: EnvironmentVars) -> int:
    """Layer and config timestamps: SOURCE_DATE_EPOCH (reproducible-builds.org), else 0."""
    try:
        return validate.source_date_epoch(env.get("SOURCE_DATE_EPOCH"))
    except OciBuildError as err:
        raise SourceDateEpochError(str(err)) from None


def declared_epoch(env: EnvironmentVars) -> int | None:
    """SOURCE_DATE_EPOCH when it is set, else None: where a time is only written when the
    user declared one (epoch 0 is no one's creation time)."""
    return source_date_epoch(env) if env.get("SOURCE_DATE_EPOCH") else None


def vcs_annotations_request(address: Address, env: EnvironmentVars) -> VcsAnnotationsRequest:
    return VcsAnnotationsRequest(address, declared_epoch(env))


def image_settings(target: Target) -> Settings:
    def seq(field) -> tuple[str, ...] | None:
        value = target[field].value
        return None if value is None else tuple(value)

    env = target[OciImageEnvField].value
    return Settings(
        entrypoint=seq(OciImageEntrypointField),
        cmd=seq(OciImageCmdField),
        env=tuple((env or {}).items()),  # in the BUILD file's order: later ones see earlier
        workdir=target[OciImageWorkdirField].value,
        user=target[OciImageUserField].value,
        labels=pairs(target[OciImageLabelsField].value or {}),
        exposed_ports=seq(OciImageExposedPortsField) or (),
        volumes=seq(OciImageVolumesField) or (),
        stop_signal=target[OciImageStopSignalField].value,
    )


def assemble_request(target: Target, platform: str | None, created_epoch: int,
                     names: ImageNames, annotations: VcsAnnotations) -> AssembleRequest:
    """What `ocibuild assemble` is asked; the layers and base are added by `AssembleImage`."""
    return AssembleRequest(
        layers=(),
        platform=platform,
        settings=image_settings(target),
        annotations=annotations.pairs,
        created_epoch=created_epoch,
        ref_names=names.tags,
        repository=names.repository,
    )


async def dependency_addresses(target: Target) -> Addresses:
    raw = [d for d in (target[Dependencies].value or ()) if not d.startswith("!")]
    return await Get(
        Addresses,
        UnparsedAddressInputs(
            raw,
            owning_address=target.address,
            description_of_origin=f"the `dependencies` of the oci_image {target.address}",
        ),
    )


class OciPlatformError(EscapedError):
    """A dependency that cannot run on the image's platform."""


def check_wheels_serve(contents: tuple[LayerContent, ...], platform: Platform, what: str) -> None:
    for content in contents:
        wheels = wheels_in(content.image_paths) | set(content.wheels)
        wrong = wheels_for_other_platforms(wheels, platform)
        if not wrong:
            continue
        how = ("Build it with wheels for every platform of the image (the pex_binary's "
               "`complete_platforms`)" if not content.wheels else
               "An oci_python_app installs the wheels of the machine that builds it: build "
               "the image for that machine's platform, or use a pex_binary with "
               "`complete_platforms`")
        raise OciPlatformError(
            f"The dependency {content.dependency} of {what} holds {', '.join(wrong)}, which "
            f"cannot run on {platform}. {how}, or leave {platform} out of the image's "
            "`platform`/`platforms`."
        )


def _manifest_and_config(image: OciImage) -> PathGlobs:
    """The files of an image's layout that an index needs: its manifest and config."""
    result = image.result
    assert isinstance(result, AssembleResult)
    return PathGlobs(["index.json", "oci-layout", *(
        f"blobs/sha256/{digest.split(':', 1)[1]}"
        for digest in (result.manifest_digest, result.config_digest))])


async def _index(target: Target, platforms: tuple[str, ...]) -> OciImage:
    """One image per platform, then an index over them (`ocibuild index`)."""
    images = await MultiGet(
        Get(OciImage, OciImageRequest(target.address, platform)) for platform in platforms
    )
    inputs = await MultiGet(
        Get(Digest, DigestSubset(image.layout, _manifest_and_config(image))) for image in images
    )
    prefixed = await MultiGet(
        Get(Digest, AddPrefix(digest, f"images/{i}")) for i, digest in enumerate(inputs)
    )
    names = await Get(ImageNames, ImageNamesRequest(target.address))
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["SOURCE_DATE_EPOCH"]))
    annotations = await Get(VcsAnnotations, VcsAnnotationsRequest,
                            vcs_annotations_request(target.address, env))
    run = await Get(
        OcibuildResult,
        OcibuildRun(
            IndexRequest(
                images=tuple(f"images/{i}" for i in range(len(images))),
                ref_names=names.tags,
                annotations=annotations.pairs,
                repository=names.repository,
            ),
            await Get(Digest, MergeDigests(prefixed)),
            description=f"Indexing the platforms of {target.address}",
            context=f"indexing the platforms ({', '.join(platforms)}) of the oci_image "
            f"{target.address}",
        ),
    )
    blobs = await MultiGet(
        Get(Digest, DigestSubset(image.layout, PathGlobs(["blobs/**"]))) for image in images
    )
    result = run.result
    assert isinstance(result, IndexResult)
    return OciImage(
        address=target.address,
        layout=await Get(Digest, MergeDigests([run.output_digest, *blobs])),
        result=result,
        repository=names.repository,
        tags=names.tags,
    )


@union(in_scope_types=[EnvironmentName])
@dataclass(frozen=True)
class OciImageBuilder:
    """An extension point: a target type whose image another rule builds (the
    `oci_dockerfile_image`, dockerfile_image.py), so `package`, `publish`, a `base` and every
    other user of `OciImage` take it as they take an `oci_image`."""

    target_type: ClassVar[type[Target]]

    request: OciImageRequest


@rule(desc="Build an OCI image", level=LogLevel.DEBUG)
async def build_oci_image(request: OciImageRequest, union_membership: UnionMembership
                          ) -> OciImage:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="<infallible>")
    )
    target = wrapped.target
    for builder in union_membership.get(OciImageBuilder):
        if isinstance(target, builder.target_type):
            return await Get(OciImage, OciImageBuilder, builder(request))
    platforms = target[OciImagePlatformsField].value
    if platforms and request.platform is None:
        return await _index(target, platforms)
    platform = request.platform or target[OciImagePlatformField].value
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["SOURCE_DATE_EPOCH"]))
    epoch = source_date_epoch(env)

    base = await Get(
        BaseImage, BaseImageRequest(request.address, target[OciImageBaseField].value, platform)
    )
    dependencies = await dependency_addresses(target)
    per_dependency = await MultiGet(
        Get(LayerContents, LayerContentRequest(dep, request.address)) for dep in dependencies
    )
    contents = tuple(c for layers_of in per_dependency for c in layers_of.contents)
    check_no_conflicts(contents, request.address)
    compression = target[OciImageLayerCompressionField].value
    # The same requests for every platform: each layer is built once and shared.
    layers = await MultiGet(
        Get(BuiltLayer, BuildLayerRequest(c, request.address, compression, epoch))
        for c in contents
    )
    names = await Get(ImageNames, ImageNamesRequest(request.address))
    annotations = await Get(VcsAnnotations, VcsAnnotationsRequest,
                            vcs_annotations_request(request.address, env))
    what = f"the oci_image {request.address}" + (f" for {platform}" if platforms else "")
    assembled = await Get(
        AssembledImage,
        AssembleImage(
            assemble_request(target, platform, epoch, names, annotations),
            layers=tuple(layers),
            base=None if base.is_scratch else base,
            what=what,
        ),
    )
    check_wheels_serve(contents, parse_platform(assembled.result.platform), what)
    if not base.is_scratch:  # after assembling, which names a base's missing blobs
        tree = await Get(BaseTree, BaseTreeOf(base, platform))
        check_base_kinds(contents, tree, request.address, base.spec)
    return OciImage(
        address=request.address,
        layout=assembled.layout,
        result=assembled.result,
        repository=names.repository,
        tags=names.tags,
    )


@dataclass(frozen=True)
class OciImageBase(BaseImageProvider):
    target_type = OciImageTarget


@rule
async def oci_image_base(request: OciImageBase) -> BaseImage:
    image = await Get(OciImage, OciImageRequest(request.target.address))
    return BaseImage(image.layout, image.tags[0], request.target.address.spec)


def rules():
    return (*collect_rules(), UnionRule(BaseImageProvider, OciImageBase))
