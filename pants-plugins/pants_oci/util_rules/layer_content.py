"""What one `oci_image` dependency puts in the image: files and where they land.

Placement is fixed and documented in the `dependencies` help: packaged artifacts at
`/app/<file name>`, loose files at their build-root-relative path. This module only decides
*what* and *where*; building the layer bytes is `layers.py`'s job.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from typing import ClassVar

from ocibuild.errors import EscapedError
from pants.core.goals.package import BuiltPackage, EnvironmentAwarePackageRequest, PackageFieldSet
from pants.core.target_types import (
    FilesGeneratingSourcesField,
    FileSourceField,
    RelocatedFilesSourcesField,
    ResourcesGeneratingSourcesField,
    ResourceSourceField,
)
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.fs import (
    AddPrefix,
    Digest,
    DigestEntries,
    DigestSubset,
    FileEntry,
    MergeDigests,
    PathGlobs,
    Snapshot,
)
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
from pants.engine.environment import EnvironmentName
from pants.engine.unions import UnionMembership, UnionRule, union
from pants.util.logging import LogLevel

from pants_oci.target_types import (
    OciImageTarget,
    OciLayerCompressionField,
    OciLayerDependenciesField,
    OciLayerDestinationField,
    OciLayerFileModeField,
    OciLayerOwnerField,
    OciLayerTarget,
)

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


class OciDependencyError(EscapedError):
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
    # What the layer holds, when a dependency gives more than one (e.g. "requirements").
    part: str = ""
    # Packaged artifacts (under /app) rather than loose files (at their build-root path).
    packaged: bool = False
    # Set by an `oci_layer`: "uid:gid", an octal file mode, a compression.
    owner: str | None = None
    file_mode: str | None = None
    compression: str | None = None
    # The wheels installed in it whose names its image paths do not show (an oci_python_app's
    # site-packages), for the check that they run on the image's platform.
    wheels: tuple[str, ...] = ()


@dataclass(frozen=True)
class LayerContents:
    """The layers one dependency adds, bottom first: usually one; two for a packed PEX."""

    contents: tuple[LayerContent, ...]


@union(in_scope_types=[EnvironmentName])
@dataclass(frozen=True)
class LayerContentProvider:
    """An extension point: what a kind of dependency puts in an image.

    A member says which targets it takes (`applies_to`; the applicable member of highest
    `priority` wins) and has a rule from itself to `LayerContents`. Here: an `oci_layer`
    (30), anything Pants can package (20: pex_binary, archive, ...), loose files (10: files,
    resources, relocated_files). Another backend adds one with
    `UnionRule(LayerContentProvider, MyContent)` and a `@rule` from `MyContent` to
    `LayerContents`.
    """

    priority: ClassVar[int] = 0

    target: Target
    image: Address

    @classmethod
    def applies_to(cls, target: Target, union_membership: UnionMembership) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class OciLayerContent(LayerContentProvider):
    priority = 30

    @classmethod
    def applies_to(cls, target: Target, union_membership: UnionMembership) -> bool:
        return isinstance(target, OciLayerTarget)


@dataclass(frozen=True)
class PackagedContent(LayerContentProvider):
    """Packaged artifacts at /app/<file name>; a packed PEX as two layers."""

    priority = 20

    @classmethod
    def applies_to(cls, target: Target, union_membership: UnionMembership) -> bool:
        return any(fs.is_applicable(target) for fs in union_membership.get(PackageFieldSet))


@dataclass(frozen=True)
class LooseFilesContent(LayerContentProvider):
    """files, resources, relocated_files (and their transitive file dependencies) at their
    build-root-relative paths."""

    priority = 10

    @classmethod
    def applies_to(cls, target: Target, union_membership: UnionMembership) -> bool:
        return any(target.has_field(field) for field in _LOOSE_FILE_FIELDS)


def _nothing_to_package(target: Target, image: Address) -> OciDependencyError:
    return OciDependencyError(
        f"The dependency {target.address} (a `{target.alias}` target) of the oci_image {image} "
        "has nothing to put in an image. Depend on something that can be packaged "
        "(pex_binary, archive, ...) or on files, resources or relocated_files, and remove "
        f"{target.address} from the `dependencies` of {image}."
    )


def packed_pex_parts(artifact: str, files: tuple[str, ...]) -> tuple[list[str], list[str]] | None:
    """For a PEX built with `layout="packed"` (a directory with PEX-INFO and `.deps/`), the
    top-level entries of what changes rarely (third-party requirements and pex's own
    bootstrap code) and of the rest (PEX-INFO, `__main__.py`, first-party code); None for
    anything else."""
    prefix = artifact.rstrip("/") + "/"
    inside = [f[len(prefix) :] for f in files if f.startswith(prefix)]
    if "PEX-INFO" not in inside or not any(f.startswith(".deps/") for f in inside):
        return None
    tops = sorted({f.split("/", 1)[0] for f in inside})
    stable = [t for t in tops if t in (".bootstrap", ".deps")]
    return stable, [t for t in tops if t not in stable]


async def _pex_part_content(
    request: PackagedContent, snapshot: Snapshot, artifact: str, tops: list[str], part: str
) -> LayerContent:
    """Some top-level entries of a packed PEX directory, at the same place under /app: only
    those files are the layer process's input, so its cache key ignores the other part."""
    base = artifact.rstrip("/")
    roots = [f"{base}/{t}" for t in tops]
    files = tuple(f for f in snapshot.files if any(f == r or f.startswith(r + "/") for r in roots))
    digest = await Get(Digest, DigestSubset(snapshot.digest, PathGlobs(files)))
    dest = posixpath.join(PACKAGE_DIR, posixpath.basename(base))
    return LayerContent(
        request.target.address,
        await Get(Digest, AddPrefix(digest, INPUT_DIR)),
        tuple((posixpath.join(INPUT_DIR, r), posixpath.join(dest, t)) for r, t in zip(roots, tops)),
        tuple(sorted(posixpath.join(dest, f[len(base) + 1 :]) for f in files)),
        part,
        packaged=True,
    )


@rule(desc="Package a dependency of an oci_image", level=LogLevel.DEBUG)
async def packaged_content(request: PackagedContent) -> LayerContents:
    found = await Get(
        FieldSetsPerTarget, FieldSetsPerTargetRequest(PackageFieldSet, [request.target])
    )
    field_sets = found.field_sets
    packages = await MultiGet(
        Get(BuiltPackage, EnvironmentAwarePackageRequest(fs)) for fs in field_sets
    )
    digest = await Get(Digest, MergeDigests(p.digest for p in packages))
    snapshot = await Get(Snapshot, Digest, digest)
    artifacts = [a.relpath for p in packages for a in p.artifacts if a.relpath]
    if not artifacts:
        raise OciDependencyError(
            f"Packaging the dependency {request.target.address} of the oci_image {request.image} "
            "produced no artifact to put in the image."
        )
    if len(artifacts) == 1:
        parts = packed_pex_parts(artifacts[0], snapshot.files)
        if parts is not None:
            return LayerContents(
                tuple(
                    [
                        await _pex_part_content(request, snapshot, artifacts[0], tops, part)
                        for tops, part in zip(parts, ("requirements", "sources"))
                    ]
                )
            )
    mappings, image_paths = [], []
    for relpath in artifacts:
        dest = posixpath.join(PACKAGE_DIR, posixpath.basename(relpath.rstrip("/")))
        mappings.append((posixpath.join(INPUT_DIR, relpath), dest))
        prefix = relpath.rstrip("/") + "/"
        image_paths.extend(
            posixpath.join(dest, path[len(prefix) :]) if path.startswith(prefix) else dest
            for path in snapshot.files
            if path == relpath or path.startswith(prefix)
        )
    content = LayerContent(
        request.target.address,
        await Get(Digest, AddPrefix(digest, INPUT_DIR)),
        tuple(mappings),
        tuple(sorted(image_paths)),
        packaged=True,
    )
    return LayerContents((content,))


def _relocated(path: str, packaged: bool, destination: str) -> str:
    """Where an `oci_layer` with `destination` puts what would land at `path`."""
    if packaged:
        return posixpath.join(destination, path[len(PACKAGE_DIR) + 1 :])
    return posixpath.join(destination, path)


@rule(desc="Collect the content of an oci_layer", level=LogLevel.DEBUG)
async def oci_layer_content(request: OciLayerContent) -> LayerContents:
    target = request.target
    origin = f"the `dependencies` of the oci_layer {target.address}"
    raw = [d for d in (target[OciLayerDependenciesField].value or ()) if not d.startswith("!")]
    addresses = await Get(
        Addresses,
        UnparsedAddressInputs(raw, owning_address=target.address, description_of_origin=origin),
    )
    if not addresses:
        raise OciDependencyError(
            f"The oci_layer {target.address} has no `dependencies`: list what goes in the layer."
        )
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin=origin)) for a in addresses
    )
    nested = [w.target.address for w in wrapped if isinstance(w.target, OciLayerTarget)]
    if nested:
        raise OciDependencyError(
            f"The oci_layer {target.address} depends on the oci_layer {nested[0]}: layers do not "
            "nest; list the dependencies of both in one oci_layer, or both layers in the image."
        )
    per_dependency = await MultiGet(
        Get(LayerContents, LayerContentRequest(a, request.image)) for a in addresses
    )
    contents = [c for group in per_dependency for c in group.contents]
    check_no_conflicts(tuple(contents), request.image)
    destination = (target[OciLayerDestinationField].value or "").strip("/")
    mappings, image_paths = [], []
    for c in contents:
        move = (lambda p, c=c: _relocated(p, c.packaged, destination)) if destination else (lambda p: p)
        mappings.extend((src, move(dest)) for src, dest in c.mappings)
        image_paths.extend(move(p) for p in c.image_paths)
    digest = await Get(Digest, MergeDigests(c.digest for c in contents))
    return LayerContents(
        (
            LayerContent(
                target.address,
                digest,
                tuple(mappings),
                tuple(sorted(image_paths)),
                owner=target[OciLayerOwnerField].value,
                file_mode=target[OciLayerFileModeField].value,
                compression=target[OciLayerCompressionField].value,
                wheels=tuple(sorted({w for c in contents for w in c.wheels})),
            ),
        )
    )


@rule(desc="Collect the content of an oci_image layer", level=LogLevel.DEBUG)
async def layer_content(request: LayerContentRequest, union_membership: UnionMembership
                        ) -> LayerContents:
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
    providers = sorted(union_membership.get(LayerContentProvider), key=lambda p: -p.priority)
    provider = next((p for p in providers if p.applies_to(target, union_membership)), None)
    if provider is None:
        raise _nothing_to_package(target, request.image)
    return await Get(LayerContents, LayerContentProvider, provider(target, request.image))


@rule(desc="Collect loose files for an oci_image layer", level=LogLevel.DEBUG)
async def loose_files_content(request: LooseFilesContent) -> LayerContents:
    closure = await Get(
        TransitiveTargets,
        TransitiveTargetsRequest([request.target.address], include_special_cased_deps=False),
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
            f"The dependency {request.target.address} of the oci_image {request.image} matches "
            "no files: check its `sources` globs."
        )
    entries = await Get(DigestEntries, Digest, sources.snapshot.digest)
    parts = file_parts({e.path: e.file_digest.serialized_bytes_length for e in entries
                        if isinstance(e, FileEntry)})
    contents = []
    for label, part in parts:
        digest = sources.snapshot.digest if len(parts) == 1 else await Get(
            Digest, DigestSubset(sources.snapshot.digest, PathGlobs(part)))
        contents.append(LayerContent(
            request.target.address,
            await Get(Digest, AddPrefix(digest, INPUT_DIR)),
            tuple((posixpath.join(INPUT_DIR, f), f) for f in part),
            tuple(part),
            label,
        ))
    return LayerContents(tuple(contents))


# Files of one dependency beyond LARGE_PART bytes in all are split into layers by a hash of
# each path, so that changing one file rebuilds and pushes one part. The number of parts is a
# power of two, the smallest whose parts average at most LARGE_PART (at most MAX_PARTS): it
# changes only when the dependency doubles or halves, so the parts stay put under edits.
LARGE_PART = 64 << 20
MAX_PARTS = 16


def file_parts(sizes: dict[str, int]) -> list[tuple[str, list[str]]]:
    """(label, sorted paths) of each layer the files `{path: size}` take: one ("") when small;
    else "part K of N" for each non-empty bucket K of N, by sha256(path) mod N."""
    total, count = sum(sizes.values()), 1
    while count < MAX_PARTS and total > count * LARGE_PART:
        count *= 2
    if count == 1:
        return [("", sorted(sizes))]
    buckets: list[list[str]] = [[] for _ in range(count)]
    for path in sorted(sizes):
        buckets[int(hashlib.sha256(path.encode()).hexdigest(), 16) % count].append(path)
    return [(f"part {i + 1} of {count}", b) for i, b in enumerate(buckets) if b]


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
    return (
        *collect_rules(),
        UnionRule(LayerContentProvider, OciLayerContent),
        UnionRule(LayerContentProvider, PackagedContent),
        UnionRule(LayerContentProvider, LooseFilesContent),
    )
