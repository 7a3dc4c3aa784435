"""The build context of an `oci_dockerfile_image`, laid out as Pants' docker backend lays it
out (pants/backend/docker/util_rules/docker_build_context.py, 2.17): every package of the
target's transitive dependencies at its output path, every file source of its direct
dependencies (codegen'd ones too) at its path from the build root; then `context_root`
selects the subtree the Dockerfile sees. Image targets are the Dockerfile's FROM and COPY
--from, not context files: they are left out (not packaged into the context).
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, EnvironmentAwarePackageRequest, PackageFieldSet
from pants.core.target_types import FileSourceField
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, Digest, DigestSubset, MergeDigests, PathGlobs, RemovePrefix
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    Dependencies,
    DependenciesRequest,
    FieldSetsPerTarget,
    FieldSetsPerTargetRequest,
    SourcesField,
    Targets,
    TransitiveTargets,
    TransitiveTargetsRequest,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.engine.unions import UnionMembership
from pants.util.logging import LogLevel

from pants_oci.target_types import OciDockerfileContextRootField
from pants_oci.util_rules.base_image import BaseImageProvider


@dataclass(frozen=True)
class DockerfileContextRequest:
    address: Address


@dataclass(frozen=True)
class DockerfileContext:
    digest: Digest  # rooted at the context root
    root: str  # the context root from the build root ("" for the build root)


def is_image(target, union_membership: UnionMembership) -> bool:
    return any(isinstance(target, p.target_type)
               for p in union_membership.get(BaseImageProvider))


@rule(desc="Gather the build context of a Dockerfile image", level=LogLevel.DEBUG)
async def dockerfile_context(request: DockerfileContextRequest,
                             union_membership: UnionMembership) -> DockerfileContext:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="<infallible>")
    )
    target = wrapped.target
    direct, transitive = await MultiGet(
        Get(Targets, DependenciesRequest(target[Dependencies])),
        Get(TransitiveTargets, TransitiveTargetsRequest([request.address])),
    )
    files = [t for t in direct if not is_image(t, union_membership)]
    packaged = [t for t in transitive.dependencies if not is_image(t, union_membership)]
    sources, field_sets = await MultiGet(
        Get(SourceFiles, SourceFilesRequest(
            [t.get(SourcesField) for t in files], for_sources_types=(FileSourceField,),
            enable_codegen=True)),
        Get(FieldSetsPerTarget, FieldSetsPerTargetRequest(PackageFieldSet, packaged)),
    )
    packages = await MultiGet(
        Get(BuiltPackage, EnvironmentAwarePackageRequest(fs)) for fs in field_sets.field_sets
    )
    merged = await Get(Digest, MergeDigests([sources.snapshot.digest,
                                             *(p.digest for p in packages)]))
    root = target[OciDockerfileContextRootField].root(target.address)
    if root:
        inside = await Get(Digest, DigestSubset(merged, PathGlobs([f"{root}/**"])))
        merged = await Get(Digest, RemovePrefix(inside, root)) if inside != EMPTY_DIGEST \
            else EMPTY_DIGEST
    return DockerfileContext(merged, root)


def rules():
    return collect_rules()
