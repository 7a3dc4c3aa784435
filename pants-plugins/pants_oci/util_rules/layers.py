"""Build one image layer per dependency in a sandboxed, cached `ocibuild layer` process."""

from __future__ import annotations

from dataclasses import dataclass

from ocibuild.protocol.layer import LayerDescriptor, LayerMapping, LayerRequest
from pants.engine.addresses import Address
from pants.engine.fs import Digest, DigestSubset, PathGlobs
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci_tool import Compressor, OcibuildResult, OcibuildRun
from pants_oci.util_rules.layer_content import LayerContent


@dataclass(frozen=True)
class BuildLayerRequest:
    content: LayerContent
    image: Address
    compression: str
    mtime: int


@dataclass(frozen=True)
class BuiltLayer:
    """A layer blob at `blobs/sha256/<hex>` (rooted at the digest root) and its descriptor."""

    blob: Digest
    descriptor: LayerDescriptor
    created_by: str


def layer_request(request: BuildLayerRequest, compressor: Compressor) -> LayerRequest:
    content = request.content
    mode = int(content.file_mode, 8) if content.file_mode else None
    compression = content.compression or request.compression
    owner = tuple(int(n) for n in content.owner.split(":")) if content.owner else None
    return LayerRequest(
        mappings=tuple(LayerMapping(src, dest, mode) for src, dest in content.mappings),
        # "gzip-zlib": gzip from the system zlib rather than libdeflate.
        compression="gzip" if compression == "gzip-zlib" else compression,
        gzip_engine="zlib" if compression == "gzip-zlib" else None,
        mtime=request.mtime,
        owner=owner,  # type: ignore[arg-type]
        compressor=compressor.version,
    )


async def built_layer(request: OcibuildRun, created_by: str) -> BuiltLayer:
    """Run a layer request (`ocibuild layer` or `debian-layer`): its blob and descriptor."""
    result = await Get(OcibuildResult, OcibuildRun, request)
    descriptor = result.result
    assert isinstance(descriptor, LayerDescriptor)
    blob = await Get(Digest, DigestSubset(result.output_digest, PathGlobs(["blobs/**"])))
    return BuiltLayer(blob, descriptor, created_by)


@rule(desc="Build an OCI image layer", level=LogLevel.DEBUG)
async def build_layer(request: BuildLayerRequest, compressor: Compressor) -> BuiltLayer:
    dependency = request.content.dependency
    part = f" ({request.content.part})" if request.content.part else ""
    return await built_layer(
        OcibuildRun(
            layer_request(request, compressor),
            request.content.digest,
            description=f"Building the layer for {dependency} in {request.image}",
            context=f"building the layer for {dependency} in the oci_image {request.image}",
        ),
        created_by=f"pants-oci: {dependency}{part}",
    )


def rules():
    return collect_rules()
