"""Build one image layer per dependency in a sandboxed, cached `ocibuild layer` process."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pants.engine.addresses import Address
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.rules import Get, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci_tool import Compressor, OcibuildResult, OcibuildRun
from pants_oci.util_rules.layer_content import LayerContent

_OUT = "out"


@dataclass(frozen=True)
class BuildLayerRequest:
    content: LayerContent
    image: Address
    compression: str
    mtime: int


@dataclass(frozen=True)
class BuiltLayer:
    """A layer blob at `blobs/sha256/<hex>` and its descriptor from `layer.json`."""

    blob: Digest
    descriptor: FrozenDict[str, object]
    created_by: str


def layer_spec(request: BuildLayerRequest, compressor: Compressor) -> bytes:
    content = request.content
    mode = {"mode": content.file_mode} if content.file_mode else {}
    compression = content.compression or request.compression
    spec = {
        "mappings": [{"source": src, "dest": dest, **mode} for src, dest in content.mappings],
        "compression": compression,
        "mtime": request.mtime,
        "compressor": compressor.version,
    }
    if compression == "gzip-zlib":  # gzip from the system zlib rather than libdeflate
        spec.update(compression="gzip", gzip_engine="zlib")
    if content.owner:
        spec["owner"] = [int(n) for n in content.owner.split(":")]
    return json.dumps(spec, sort_keys=True).encode()


@rule(desc="Build an OCI image layer", level=LogLevel.DEBUG)
async def build_layer(request: BuildLayerRequest, compressor: Compressor) -> BuiltLayer:
    dependency = request.content.dependency
    spec = await Get(
        Digest, CreateDigest([FileContent("layer-spec.json", layer_spec(request, compressor))])
    )
    inputs = await Get(Digest, MergeDigests([spec, request.content.digest]))
    result = await Get(
        OcibuildResult,
        OcibuildRun(
            argv=("layer", "--spec", "layer-spec.json", "--out-dir", _OUT),
            input_digest=inputs,
            description=f"Building the layer for {dependency} in {request.image}",
            context=f"building the layer for {dependency} in the oci_image {request.image}",
            output_directories=(_OUT,),
        ),
    )
    descriptor_digest = await Get(
        Digest, DigestSubset(result.output_digest, PathGlobs([f"{_OUT}/layer.json"]))
    )
    (descriptor_file,) = await Get(DigestContents, Digest, descriptor_digest)
    blobs = await Get(
        Digest, DigestSubset(result.output_digest, PathGlobs([f"{_OUT}/blobs/**"]))
    )
    return BuiltLayer(
        blob=await Get(Digest, RemovePrefix(blobs, _OUT)),
        descriptor=FrozenDict(json.loads(descriptor_file.content)),
        created_by=f"pants-oci: {dependency}"
        + (f" ({request.content.part})" if request.content.part else ""),
    )


def rules():
    return collect_rules()
