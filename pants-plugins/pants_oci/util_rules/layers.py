"""Build one image layer per dependency in a sandboxed, cached `ocibuild layer` process."""

from __future__ import annotations

from dataclasses import dataclass

from ocibuild.layer.whiteouts import whiteout_component
from ocibuild.protocol.layer import LayerDescriptor, LayerMapping, LayerRequest
from pants.engine.addresses import Address
from pants.engine.fs import Digest, DigestEntries, DigestSubset, FileEntry, PathGlobs
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci_tool import Compressor, OcibuildResult, OcibuildRun
from pants_oci.util_rules.layer_content import LayerContent, OciDependencyError


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


def executables_of(entries: DigestEntries) -> tuple[str, ...]:
    """The files Pants records as executable: the layer's modes come from these, never from
    the sandbox (a large file is hardlinked there from the store as 0555; a remote worker
    writes 0644 or 0755; `ocibuild.layer.entries` has the details)."""
    return tuple(sorted(e.path for e in entries if isinstance(e, FileEntry) and e.is_executable))


def check_no_whiteouts(content: LayerContent, image: Address) -> None:
    """The core refuses whiteout names too (every path, link and directory); this names the
    target in Pants' terms for the usual case, a file or a destination."""
    for path in (*content.image_paths, *(dest for _, dest in content.mappings)):
        name = whiteout_component(path)
        if name is not None:
            raise OciDependencyError(
                f"The dependency {content.dependency} of the oci_image {image} puts /{path} "
                f"in the image, and {name!r} is a whiteout name (.wh.*): unpacking the layer "
                "would delete or hide files of the base instead. Rename the file (or the "
                "`dest`, `destination` or `output_path` that makes the name), or leave it out.")


def layer_request(request: BuildLayerRequest, compressor: Compressor,
                  executables: tuple[str, ...] = ()) -> LayerRequest:
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
        executables=executables,
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
    check_no_whiteouts(request.content, request.image)
    part = f" ({request.content.part})" if request.content.part else ""
    entries = await Get(DigestEntries, Digest, request.content.digest)
    return await built_layer(
        OcibuildRun(
            layer_request(request, compressor, executables_of(entries)),
            request.content.digest,
            description=f"Building the layer for {dependency} in {request.image}",
            context=f"building the layer for {dependency} in the oci_image {request.image}",
        ),
        created_by=f"pants-oci: {dependency}{part}",
    )


def rules():
    from pants_oci.util_rules import base_tree

    return (*collect_rules(), *base_tree.rules())
