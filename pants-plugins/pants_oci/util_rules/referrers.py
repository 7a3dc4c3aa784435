"""An `oci_image`'s layout with its SBOMs attached as OCI 1.1 referrers: what `package`
writes to dist/ and `publish` pushes (the image, then its referrers).

The SBOMs come from `sbom.py` (one pair per platform); here they get their dist/ names and
one cached `ocibuild run` of a `ReferrersRequest` adds their blobs and artifact manifests
to the layout and lists them, unnamed, in a new index.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.package import BuiltPackageArtifact
from pants.engine.addresses import Address
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from ocibuild.protocol.referrers import ReferrerBlob, ReferrersRequest
from pants_oci.subsystems.oci_tool import OcibuildResult, OcibuildRun
from pants_oci.target_types import OciImagePlatformsField
from pants_oci.util_rules.image import OciImage, OciImageRequest
from pants_oci.util_rules.sbom import ImageSbom

# What dist/ calls each format's file, and what the layout's index.json says it is.
SBOM_SUFFIXES = {"spdx": "spdx.json", "cyclonedx": "cdx.json"}
SBOM_NAMES = {"spdx": "SPDX SBOM", "cyclonedx": "CycloneDX SBOM"}


@dataclass(frozen=True)
class ImageWithSbomsRequest:
    address: Address
    output_path: str  # the image's dist/ name: the SBOMs are named after it


@dataclass(frozen=True)
class ImageWithSboms:
    image: OciImage
    layout: Digest  # the image's layout with the referrers, rooted at the digest root
    sboms: Digest  # the SBOM files at their dist/ paths
    artifacts: tuple[BuiltPackageArtifact, ...]


def sbom_stem(output_path: str, platform: str | None) -> str:
    """`<output_path>`, or `<output_path>.<os>-<arch>[-<variant>]` for one platform of many."""
    return output_path if platform is None else f"{output_path}.{platform.replace('/', '-')}"


async def _sbom_files(address: Address, output_path: str
                      ) -> tuple[Digest, list[BuiltPackageArtifact], tuple[ReferrerBlob, ...]]:
    """Each SBOM file, renamed from the core's `sbom.<suffix>` to its dist/ name, and what
    attaches it to its image."""
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(address, description_of_origin="<infallible>")
    )
    platforms = wrapped.target[OciImagePlatformsField].value or (None,)
    sboms = await MultiGet(Get(ImageSbom, OciImageRequest(address, p)) for p in platforms)
    files, artifacts, blobs = [], [], []
    for platform, sbom in zip(platforms, sboms):
        contents = {c.path: c.content for c in await Get(DigestContents, Digest, sbom.files)}
        for file in sbom.result.files:
            name = f"{sbom_stem(output_path, platform)}.{SBOM_SUFFIXES[file.format]}"
            files.append(FileContent(name, contents[file.path]))
            artifacts.append(BuiltPackageArtifact(
                name, (f"    {file.media_type} of {sbom.result.image_manifest_digest}",)))
            blobs.append(ReferrerBlob(name, file.media_type, sbom.result.image_manifest_digest,
                                      SBOM_NAMES[file.format]))
    return await Get(Digest, CreateDigest(files)), artifacts, tuple(blobs)


@rule(desc="Attach the SBOMs of an OCI image", level=LogLevel.DEBUG)
async def image_with_sboms(request: ImageWithSbomsRequest) -> ImageWithSboms:
    image = await Get(OciImage, OciImageRequest(request.address))
    sboms, artifacts, blobs = await _sbom_files(request.address, request.output_path)
    layout = await Get(Digest, AddPrefix(image.layout, "layout"))
    run = await Get(
        OcibuildResult,
        OcibuildRun(
            ReferrersRequest("layout", blobs),
            await Get(Digest, MergeDigests([layout, sboms])),
            description=f"Attaching the SBOMs of {request.address} to its layout",
            context=f"attaching the SBOMs of {request.address} to its OCI layout",
        ),
    )
    # index.json is the core's (the image's entries, then the referrers); the rest is kept.
    kept = await Get(Digest, DigestSubset(image.layout, PathGlobs(["**", "!index.json"])))
    return ImageWithSboms(
        image,
        await Get(Digest, MergeDigests([kept, run.output_digest])),
        sboms,
        tuple(artifacts),
    )


def rules():
    return collect_rules()
