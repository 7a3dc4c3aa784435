"""An `oci_image`'s layout with its SBOMs and provenance attached as OCI 1.1 referrers: what
`package` writes to dist/ and `publish` pushes (the image, then its referrers).

The SBOMs come from `sbom.py` (one pair per platform), the provenance from `provenance.py`
(one per platform); here they get their dist/ names and one cached `ocibuild run` of a
`ReferrersRequest` adds their blobs and artifact manifests to the layout and lists them,
unnamed, in a new index.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
from pants_oci.util_rules.provenance import ImageProvenance
from pants_oci.util_rules.sbom import ImageSbom

# What dist/ calls each format's file, and what the layout's index.json says it is.
SBOM_SUFFIXES = {"spdx": "spdx.json", "cyclonedx": "cdx.json"}
SBOM_NAMES = {"spdx": "SPDX SBOM", "cyclonedx": "CycloneDX SBOM"}
PROVENANCE_SUFFIX = "provenance.json"
PROVENANCE_NAME = "SLSA provenance"


@dataclass(frozen=True)
class ImageWithReferrersRequest:
    address: Address
    output_path: str  # the image's dist/ name: the referrers' files are named after it
    sbom: bool = True
    provenance: bool = True


@dataclass(frozen=True)
class ImageWithReferrers:
    image: OciImage
    layout: Digest  # the image's layout with the referrers, rooted at the digest root
    files: Digest  # the SBOM and provenance files at their dist/ paths
    artifacts: tuple[BuiltPackageArtifact, ...]


def sbom_stem(output_path: str, platform: str | None) -> str:
    """`<output_path>`, or `<output_path>.<os>-<arch>[-<variant>]` for one platform of many."""
    return output_path if platform is None else f"{output_path}.{platform.replace('/', '-')}"


@dataclass
class _Referrers:
    """The files (at their dist/ names), their dist/ log lines, and what attaches each."""

    files: list[FileContent] = field(default_factory=list)
    artifacts: list[BuiltPackageArtifact] = field(default_factory=list)
    blobs: list[ReferrerBlob] = field(default_factory=list)

    def add(self, name: str, content: bytes, media_type: str, subject: str, what: str) -> None:
        self.files.append(FileContent(name, content))
        self.artifacts.append(BuiltPackageArtifact(name, (f"    {media_type} of {subject}",)))
        self.blobs.append(ReferrerBlob(name, media_type, subject, what))


async def _referrer_files(request: ImageWithReferrersRequest) -> _Referrers:
    """Each platform's SBOM files (renamed from the core's `sbom.<suffix>`), then its
    provenance (from `provenance.json`), at their dist/ names."""
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="<infallible>")
    )
    platforms = wrapped.target[OciImagePlatformsField].value or (None,)
    sboms = await MultiGet(
        Get(ImageSbom, OciImageRequest(request.address, p))
        for p in (platforms if request.sbom else ()))
    provenances = await MultiGet(
        Get(ImageProvenance, OciImageRequest(request.address, p))
        for p in (platforms if request.provenance else ()))
    found = _Referrers()
    for i, platform in enumerate(platforms):
        stem = sbom_stem(request.output_path, platform)
        if request.sbom:
            sbom = sboms[i]
            contents = {c.path: c.content for c in await Get(DigestContents, Digest, sbom.files)}
            for file in sbom.result.files:
                found.add(f"{stem}.{SBOM_SUFFIXES[file.format]}", contents[file.path],
                          file.media_type, sbom.result.image_manifest_digest,
                          SBOM_NAMES[file.format])
        if request.provenance:
            provenance = provenances[i]
            (content,) = await Get(DigestContents, Digest, provenance.file)
            found.add(f"{stem}.{PROVENANCE_SUFFIX}", content.content,
                      provenance.result.media_type, provenance.result.subject, PROVENANCE_NAME)
    return found


@rule(desc="Attach the SBOMs and provenance of an OCI image", level=LogLevel.DEBUG)
async def image_with_referrers(request: ImageWithReferrersRequest) -> ImageWithReferrers:
    image = await Get(OciImage, OciImageRequest(request.address))
    found = await _referrer_files(request)
    files = await Get(Digest, CreateDigest(found.files))
    if not found.blobs:
        return ImageWithReferrers(image, image.layout, files, ())
    layout = await Get(Digest, AddPrefix(image.layout, "layout"))
    run = await Get(
        OcibuildResult,
        OcibuildRun(
            ReferrersRequest("layout", tuple(found.blobs)),
            await Get(Digest, MergeDigests([layout, files])),
            description=f"Attaching the SBOMs and provenance of {request.address} to its layout",
            context=f"attaching the SBOMs and provenance of {request.address} to its OCI layout",
        ),
    )
    # index.json is the core's (the image's entries, then the referrers); the rest is kept.
    kept = await Get(Digest, DigestSubset(image.layout, PathGlobs(["**", "!index.json"])))
    return ImageWithReferrers(
        image,
        await Get(Digest, MergeDigests([kept, run.output_digest])),
        files,
        tuple(found.artifacts),
    )


def rules():
    return collect_rules()
