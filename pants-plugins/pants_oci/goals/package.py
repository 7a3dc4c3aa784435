"""`pants package` for `oci_image`: an OCI layout and its digests in dist/, its SBOMs (unless
`sbom=False`), and a docker-archive tarball when the target asks for one
(`docker_archive=True`)."""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.package import (
    BuiltPackage,
    BuiltPackageArtifact,
    OutputPathField,
    PackageFieldSet,
)
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    FileContent,
    MergeDigests,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from ocibuild.protocol.archive import DockerArchiveRequest
from pants_oci.subsystems.oci_tool import OUT_DIR, OcibuildResult, OcibuildRun
from pants_oci.target_types import (
    OciImageBaseField,
    OciImageDockerArchiveField,
    OciImagePlatformsField,
    OciImageSbomField,
)
from pants_oci.util_rules.image import OciImage, OciImageRequest
from pants_oci.util_rules.sbom import ImageSbom

# What the core names each format's file, and what dist/ calls it.
SBOM_SUFFIXES = {"spdx": "spdx.json", "cyclonedx": "cdx.json"}


@dataclass(frozen=True)
class OciImageFieldSet(PackageFieldSet):
    required_fields = (OciImageBaseField,)

    base: OciImageBaseField
    output_path: OutputPathField
    docker_archive: OciImageDockerArchiveField
    sbom: OciImageSbomField
    platforms: OciImagePlatformsField


def docker_archive_request(image: OciImage, out: str) -> DockerArchiveRequest:
    return DockerArchiveRequest(
        layout="layout",
        out=f"{OUT_DIR}/{out}",
        ref_name=image.tags[0],
        repo_tags=tuple(f"{image.repository}:{tag}" for tag in image.tags),
    )


def sbom_stem(output_path: str, platform: str | None) -> str:
    """`<output_path>`, or `<output_path>.<os>-<arch>[-<variant>]` for one platform of many."""
    return output_path if platform is None else f"{output_path}.{platform.replace('/', '-')}"


async def _sboms(field_set: OciImageFieldSet, output_path: str
                 ) -> tuple[Digest, list[BuiltPackageArtifact]]:
    """Each SBOM file, renamed from the core's `sbom.<suffix>` to its dist/ name."""
    platforms = field_set.platforms.value
    sboms = await MultiGet(
        Get(ImageSbom, OciImageRequest(field_set.address, p)) for p in (platforms or (None,))
    )
    files, artifacts = [], []
    for platform, sbom in zip(platforms or (None,), sboms):
        contents = {c.path: c.content for c in await Get(DigestContents, Digest, sbom.files)}
        for file in sbom.result.files:
            name = f"{sbom_stem(output_path, platform)}.{SBOM_SUFFIXES[file.format]}"
            files.append(FileContent(name, contents[file.path]))
            artifacts.append(BuiltPackageArtifact(
                name, (f"    {file.media_type} of {sbom.result.image_manifest_digest}",)))
    return await Get(Digest, CreateDigest(files)), artifacts


@rule(desc="Package an OCI image", level=LogLevel.DEBUG)
async def package_oci_image(field_set: OciImageFieldSet) -> BuiltPackage:
    image = await Get(OciImage, OciImageRequest(field_set.address))
    output_path = field_set.output_path.value_or_default(file_ending=None)
    meta = await Get(
        Digest, CreateDigest([FileContent(f"{output_path}.json", image.metadata)])
    )
    layout = await Get(Digest, AddPrefix(image.layout, output_path))
    digests = [layout, meta]
    artifacts = [
        BuiltPackageArtifact(
            output_path,
            (f"    OCI layout, {'index' if image.is_index else 'manifest'} "
             f"{image.manifest_digest}",),
        ),
        BuiltPackageArtifact(f"{output_path}.json"),
    ]
    if field_set.docker_archive.value:
        archive = await Get(
            OcibuildResult,
            OcibuildRun(
                docker_archive_request(image, f"{output_path}.tar"),
                await Get(Digest, AddPrefix(image.layout, "layout")),
                description=f"Writing the docker-archive of {field_set.address}",
                context=f"writing the docker-archive tarball of {field_set.address}",
            ),
        )
        digests.append(archive.output_digest)
        artifacts.insert(
            1, BuiltPackageArtifact(f"{output_path}.tar", ("    docker-archive (docker load)",))
        )
    if field_set.sbom.value:
        sbom_digest, sbom_artifacts = await _sboms(field_set, output_path)
        digests.append(sbom_digest)
        artifacts.extend(sbom_artifacts)
    digest = await Get(Digest, MergeDigests(digests))
    return BuiltPackage(digest, tuple(artifacts))


def rules():
    return (*collect_rules(), UnionRule(PackageFieldSet, OciImageFieldSet))
