"""`pants package` for `oci_image`: an OCI layout and its digests in dist/, its SBOMs and
provenance (unless `sbom=False`, `provenance=False`: beside the layout, and in it as OCI 1.1
referrers of the image), and a docker-archive tarball when the target asks for one
(`docker_archive=True`)."""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.package import (
    BuiltPackage,
    BuiltPackageArtifact,
    OutputPathField,
    PackageFieldSet,
)
from pants.engine.fs import AddPrefix, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from ocibuild.protocol.archive import DockerArchiveRequest
from pants_oci.subsystems.oci_tool import OUT_DIR, OcibuildResult, OcibuildRun
from pants_oci.target_types import (
    OciDockerfileSourceField,
    OciImageBaseField,
    OciImageDockerArchiveField,
    OciImageProvenanceField,
    OciImageSbomField,
)
from pants_oci.util_rules.image import OciImage, OciImageRequest
from pants_oci.util_rules.referrers import ImageWithReferrers, ImageWithReferrersRequest


@dataclass(frozen=True)
class OciImageFieldSet(PackageFieldSet):
    required_fields = (OciImageBaseField,)

    base: OciImageBaseField
    output_path: OutputPathField
    docker_archive: OciImageDockerArchiveField
    sbom: OciImageSbomField
    provenance: OciImageProvenanceField


def docker_archive_request(image: OciImage, out: str) -> DockerArchiveRequest:
    return DockerArchiveRequest(
        layout="layout",
        out=f"{OUT_DIR}/{out}",
        ref_name=image.tags[0],
        repo_tags=tuple(f"{image.repository}:{tag}" for tag in image.tags),
    )


@dataclass(frozen=True)
class OciDockerfileImageFieldSet(PackageFieldSet):
    """An `oci_dockerfile_image`: packaged as an `oci_image` is (its image is built by
    util_rules/dockerfile_image.py behind `OciImageRequest`)."""

    required_fields = (OciDockerfileSourceField,)

    source: OciDockerfileSourceField
    output_path: OutputPathField
    docker_archive: OciImageDockerArchiveField
    sbom: OciImageSbomField
    provenance: OciImageProvenanceField


async def package_image(field_set: OciImageFieldSet | OciDockerfileImageFieldSet
                        ) -> BuiltPackage:
    output_path = field_set.output_path.value_or_default(file_ending=None)
    image = await Get(OciImage, OciImageRequest(field_set.address))
    layout, digests, artifacts = image.layout, [], []
    if field_set.sbom.value or field_set.provenance.value:
        with_referrers = await Get(ImageWithReferrers, ImageWithReferrersRequest(
            field_set.address, output_path, field_set.sbom.value, field_set.provenance.value))
        layout = with_referrers.layout
        digests.append(with_referrers.files)
        artifacts.extend(with_referrers.artifacts)
    meta = await Get(
        Digest, CreateDigest([FileContent(f"{output_path}.json", image.metadata)])
    )
    digests += [await Get(Digest, AddPrefix(layout, output_path)), meta]
    artifacts[:0] = [
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
    digest = await Get(Digest, MergeDigests(digests))
    return BuiltPackage(digest, tuple(artifacts))


@rule(desc="Package an OCI image from a Dockerfile", level=LogLevel.DEBUG)
async def package_oci_dockerfile_image(field_set: OciDockerfileImageFieldSet) -> BuiltPackage:
    return await package_image(field_set)


@rule(desc="Package an OCI image", level=LogLevel.DEBUG)
async def package_oci_image(field_set: OciImageFieldSet) -> BuiltPackage:
    return await package_image(field_set)

def rules():
    return (*collect_rules(), UnionRule(PackageFieldSet, OciImageFieldSet),
            UnionRule(PackageFieldSet, OciDockerfileImageFieldSet))
