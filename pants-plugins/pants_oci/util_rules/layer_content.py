"""What one `oci_image` dependency puts in the image: files and where they land.

Placement is fixed and documented in the `dependencies` help: packaged artifacts at
`/app/<file name>`, loose files at their build-root-relative path. This module only decides
*what* and *where*; building the layer bytes is `layers.py`'s job.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, EnvironmentAwarePackageRequest, PackageFieldSet
from pants.core.target_types import (
    FilesGeneratingSourcesField,
    FileSourceField,
    RelocatedFilesSourcesField,
    ResourcesGeneratingSourcesField,
    ResourceSourceField,
)
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import Address
from pants.engine.fs import AddPrefix, Digest, MergeDigests, Snapshot
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    FieldSetsPerTarget,
    FieldSetsPerTargetRequest,
    SourcesField,
    Target,
    TransitiveTargets,
    TransitiveTargetsRequest,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.util.logging import LogLevel

from pants_oci.target_types import OciImageTarget

# Where packaged artifacts land: one well-known directory, like jib's /app or ko's /ko-app,
# so entrypoints never depend on Pants' dist/ naming.
PACKAGE_DIR = "app"
# Sandbox directory the layer process reads its inputs from.
INPUT_DIR = "in"

_LOOSE_FILE_FIELDS = (
    FileSourceField,
    ResourceSourceField,
    FilesGeneratingSourcesField,
    ResourcesGeneratingSourcesField,
    RelocatedFilesSourcesField,
)


class OciDependencyError(Exception):
    """A dependency of an `oci_image` that cannot become a layer."""


@dataclass(frozen=True)
class LayerContentRequest:
    dependency: Address
    image: Address


@dataclass(frozen=True)
class LayerContent:
    """Files under `in/` and where each lands: `(sandbox source, image path)` pairs."""

    dependency: Address
    digest: Digest
    mappings: tuple[tuple[str, str], ...]
    # Every regular file path the layer writes, for conflict checks between layers.
    image_paths: tuple[str, ...]


def _is_loose_files(target: Target) -> bool:
    return any(target.has_field(field) for field in _LOOSE_FILE_FIELDS)


def _nothing_to_package(target: Target, image: Address) -> OciDependencyError:
    return OciDependencyError(
        f"The dependency {target.address} (a `{target.alias}` target) of the oci_image {image} "
        "has nothing to put in an image. Depend on something that can be packaged "
        "(pex_binary, archive, ...) or on files, resources or relocated_files, and remove "
        f"{target.address} from the `dependencies` of {image}."
    )


async def _packaged_content(
    field_sets: tuple[PackageFieldSet, ...], request: LayerContentRequest
) -> LayerContent:
    packages = await MultiGet(
        Get(BuiltPackage, EnvironmentAwarePackageRequest(fs)) for fs in field_sets
    )
    digest = await Get(Digest, MergeDigests(p.digest for p in packages))
    snapshot = await Get(Snapshot, Digest, digest)
    mappings, image_paths = [], []
    for package in packages:
        for artifact in package.artifacts:
            if not artifact.relpath:
                continue
            dest = posixpath.join(PACKAGE_DIR, posixpath.basename(artifact.relpath.rstrip("/")))
            mappings.append((posixpath.join(INPUT_DIR, artifact.relpath), dest))
            prefix = artifact.relpath.rstrip("/") + "/"
            image_paths.extend(
                posixpath.join(dest, path[len(prefix) :]) if path.startswith(prefix) else dest
                for path in snapshot.files
                if path == artifact.relpath or path.startswith(prefix)
            )
    if not mappings:
        raise OciDependencyError(
            f"Packaging the dependency {request.dependency} of the oci_image {request.image} "
            "produced no artifact to put in the image."
        )
    return LayerContent(
        request.dependency,
        await Get(Digest, AddPrefix(digest, INPUT_DIR)),
        tuple(mappings),
        tuple(sorted(image_paths)),
    )


@rule(desc="Collect the content of an oci_image layer", level=LogLevel.DEBUG)
async def layer_content(request: LayerContentRequest) -> LayerContent:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(
            request.dependency, description_of_origin=f"the `dependencies` of {request.image}"
        ),
    )
    target = wrapped.target
    if isinstance(target, OciImageTarget):
        raise OciDependencyError(
            f"The oci_image {target.address} is listed in the `dependencies` of the oci_image "
            f"{request.image}. Images do not nest: to build on it, set "
            f'`base="{target.address.spec}"` instead.'
        )
    field_sets = await Get(
        FieldSetsPerTarget, FieldSetsPerTargetRequest(PackageFieldSet, [target])
    )
    if field_sets.field_sets:
        return await _packaged_content(tuple(field_sets.field_sets), request)
    if not _is_loose_files(target):
        raise _nothing_to_package(target, request.image)

    closure = await Get(
        TransitiveTargets,
        TransitiveTargetsRequest([request.dependency], include_special_cased_deps=False),
    )
    sources = await Get(
        SourceFiles,
        SourceFilesRequest(
            (t.get(SourcesField) for t in closure.closure),
            for_sources_types=(FileSourceField, ResourceSourceField),
            enable_codegen=True,
        ),
    )
    files = sources.snapshot.files
    if not files:
        raise OciDependencyError(
            f"The dependency {target.address} of the oci_image {request.image} matches no "
            "files: check its `sources` globs."
        )
    return LayerContent(
        request.dependency,
        await Get(Digest, AddPrefix(sources.snapshot.digest, INPUT_DIR)),
        tuple((posixpath.join(INPUT_DIR, f), f) for f in files),
        tuple(files),
    )


def check_no_conflicts(contents: tuple[LayerContent, ...], image: Address) -> None:
    """Two dependencies writing one path would silently shadow each other: refuse."""
    owners: dict[str, Address] = {}
    for content in contents:
        for path in content.image_paths:
            other = owners.setdefault(path, content.dependency)
            if other != content.dependency:
                raise OciDependencyError(
                    f"The dependencies {other} and {content.dependency} of the oci_image {image} "
                    f"both write /{path}. Each path may come from one dependency only: rename "
                    "one (its `output_path`), or move it with `relocated_files`."
                )
    files = set(owners)
    for path, owner in owners.items():
        parent = posixpath.dirname(path)
        while parent:
            if parent in files:
                raise OciDependencyError(
                    f"The dependency {owners[parent]} of the oci_image {image} writes the file "
                    f"/{parent}, but {owner} writes /{path} inside it as a directory. Move one "
                    "of them with `relocated_files`."
                )
            parent = posixpath.dirname(parent)


def rules():
    return collect_rules()
