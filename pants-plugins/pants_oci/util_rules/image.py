"""Assemble an `oci_image`: base + one layer per dependency + config, as an OCI layout.

Layers come from their own cached processes; assembly only writes the small config,
manifest and index, and the layout is merged from digests already in the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    Snapshot,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import Dependencies, Target, WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci_tool import OcibuildResult, OcibuildRun
from pants_oci.target_types import (
    OciImageAnnotationsField,
    OciImageBaseField,
    OciImageCmdField,
    OciImageEntrypointField,
    OciImageEnvField,
    OciImageExposedPortsField,
    OciImageLabelsField,
    OciImageLayerCompressionField,
    OciImagePlatformField,
    OciImageStopSignalField,
    OciImageUserField,
    OciImageVolumesField,
    OciImageWorkdirField,
)
from pants_oci.util_rules.base_image import (
    BaseImage,
    BaseImageRequest,
    OciImageLayout,
    OciImageLayoutRequest,
)
from pants_oci.util_rules.layer_content import (
    LayerContentRequest,
    LayerContents,
    check_no_conflicts,
)
from pants_oci.util_rules.image_names import ImageNames, ImageNamesRequest
from pants_oci.util_rules.layers import BuildLayerRequest, BuiltLayer


class SourceDateEpochError(Exception):
    pass


class OciImageError(Exception):
    """An image that cannot be assembled as asked."""


@dataclass(frozen=True)
class OciImageRequest:
    address: Address


@dataclass(frozen=True)
class OciImage:
    """A built image: its OCI layout (rooted at the digest root) and `image.json` metadata."""

    address: Address
    layout: Digest
    metadata: bytes
    repository: str
    tags: tuple[str, ...]

    @property
    def manifest_digest(self) -> str:
        return str(json.loads(self.metadata)["manifest_digest"])


def source_date_epoch(env: EnvironmentVars) -> int:
    """Layer and config timestamps: SOURCE_DATE_EPOCH (reproducible-builds.org), else 0."""
    raw = env.get("SOURCE_DATE_EPOCH")
    if not raw:
        return 0
    if not raw.isdigit():
        raise SourceDateEpochError(
            f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds since 1970-01-01 UTC; "
            "set it to e.g. $(git log -1 --format=%ct) or unset it."
        )
    return int(raw)


def image_settings(target: Target) -> dict[str, object]:
    def seq(field) -> list[str] | None:
        value = target[field].value
        return None if value is None else list(value)

    env = target[OciImageEnvField].value
    return {
        "entrypoint": seq(OciImageEntrypointField),
        "cmd": seq(OciImageCmdField),
        # Pairs, not an object: the spec is written with sorted keys, and env order matters.
        "env": [[k, v] for k, v in (env or {}).items()],
        "workdir": target[OciImageWorkdirField].value,
        "user": target[OciImageUserField].value,
        "labels": dict(target[OciImageLabelsField].value or {}),
        "exposed_ports": seq(OciImageExposedPortsField) or [],
        "volumes": seq(OciImageVolumesField) or [],
        "stop_signal": target[OciImageStopSignalField].value,
    }


def assemble_spec(
    target: Target,
    base: BaseImage,
    layers: tuple[BuiltLayer, ...],
    created_epoch: int,
    names: ImageNames,
) -> dict[str, object]:
    tags = names.tags
    return {
        "base": None
        if base.is_scratch
        else {"layout": "base", "ref_name": base.ref_name, "name": base.spec},
        "platform": target[OciImagePlatformField].value,
        "layers": [f"layers/{i}/layer.json" for i in range(len(layers))],
        "history": [layer.created_by for layer in layers],
        "settings": image_settings(target),
        "annotations": dict(target[OciImageAnnotationsField].value or {}),
        "created_epoch": created_epoch,
        "ref_name": tags[0],
        "ref_names": list(tags),
        "repository": names.repository,
        "metadata_out": "meta/image.json",
    }


async def _dependency_addresses(target: Target) -> Addresses:
    raw = [d for d in (target[Dependencies].value or ()) if not d.startswith("!")]
    return await Get(
        Addresses,
        UnparsedAddressInputs(
            raw,
            owning_address=target.address,
            description_of_origin=f"the `dependencies` of the oci_image {target.address}",
        ),
    )


@rule(desc="Assemble an OCI image", level=LogLevel.DEBUG)
async def build_oci_image(request: OciImageRequest) -> OciImage:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="<infallible>")
    )
    target = wrapped.target
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["SOURCE_DATE_EPOCH"]))
    epoch = source_date_epoch(env)

    base = await Get(
        BaseImage,
        BaseImageRequest(
            request.address, target[OciImageBaseField].value, target[OciImagePlatformField].value
        ),
    )
    dependencies = await _dependency_addresses(target)
    per_dependency = await MultiGet(
        Get(LayerContents, LayerContentRequest(dep, request.address)) for dep in dependencies
    )
    contents = tuple(c for layers_of in per_dependency for c in layers_of.contents)
    check_no_conflicts(contents, request.address)
    compression = target[OciImageLayerCompressionField].value
    layers = await MultiGet(
        Get(BuiltLayer, BuildLayerRequest(c, request.address, compression, epoch))
        for c in contents
    )

    names = await Get(ImageNames, ImageNamesRequest(request.address))
    spec = assemble_spec(target, base, layers, epoch, names)
    spec_digest = await Get(
        Digest,
        CreateDigest(
            [FileContent("assemble-spec.json", json.dumps(spec, sort_keys=True).encode())]
        ),
    )
    layer_jsons = await Get(
        Digest,
        CreateDigest(
            FileContent(f"layers/{i}/layer.json", json.dumps(dict(layer.descriptor)).encode())
            for i, layer in enumerate(layers)
        ),
    )
    base_input = await Get(Digest, AddPrefix(base.layout, "base")) if base.layout else None
    inputs = await Get(
        Digest, MergeDigests([spec_digest, layer_jsons, *([base_input] if base_input else [])])
    )
    result = await Get(
        OcibuildResult,
        OcibuildRun(
            argv=("assemble", "--spec", "assemble-spec.json", "--out-dir", "out"),
            input_digest=inputs,
            description=f"Assembling the image {request.address}",
            context=f"assembling the oci_image {request.address} (base {base.spec!r})",
            output_directories=("out", "meta"),
        ),
    )
    meta_digest = await Get(
        Digest, DigestSubset(result.output_digest, PathGlobs(["meta/image.json"]))
    )
    (meta,) = await Get(DigestContents, Digest, meta_digest)
    base_blobs = json.loads(meta.content)["base_blobs"]
    new_files = await Get(
        Digest, DigestSubset(result.output_digest, PathGlobs(["out/**"]))
    )
    parts = [await Get(Digest, RemovePrefix(new_files, "out")), *(l.blob for l in layers)]
    if base.layout and base_blobs:
        globs = [f"blobs/{d.replace(':', '/', 1)}" for d in base_blobs]
        blobs = await Get(Snapshot, DigestSubset(base.layout, PathGlobs(globs)))
        missing = sorted(set(globs) - set(blobs.files))
        if missing:
            raise OciImageError(
                f"The base {base.spec!r} of the oci_image {request.address} lacks the layer "
                f"blob(s) {', '.join(missing)}: the layout is incomplete. Copy it again with "
                "`skopeo copy` (which writes every blob)."
            )
        parts.append(blobs.digest)
    layout = await Get(Digest, MergeDigests(parts))
    return OciImage(
        address=request.address,
        layout=layout,
        metadata=meta.content,
        repository=names.repository,
        tags=names.tags,
    )


@rule
async def oci_image_layout(request: OciImageLayoutRequest) -> OciImageLayout:
    image = await Get(OciImage, OciImageRequest(request.address))
    return OciImageLayout(image.layout, image.tags[0])


def rules():
    return collect_rules()
