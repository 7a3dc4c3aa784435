"""The SBOMs of a built image: the inputs gathered here, the documents written by the core.

This rule only collects what Pants knows and the core cannot find out: which image was
assembled (manifest digest, platform, names), what it was built on (the base's digest and
name from the manifest's base annotations; a `debian_packages` base's lockfile), which
dependencies are PEXes (their PEX-INFO and their resolve's lockfile) and which files the
other dependencies put in (address and SHA-256, known to the store without reading them).
One cached `ocibuild run` of an `SbomRequest` turns that into SPDX and CycloneDX JSON.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import PexLayoutField, PythonResolveField
from pants.engine.addresses import Address
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    AddPrefix,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileEntry,
    MergeDigests,
    PathGlobs,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import Target, WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionMembership
from pants.util.logging import LogLevel

from ocibuild.digest import hex_of
from ocibuild.image.manifest import BASE_DIGEST, BASE_NAME
from ocibuild.protocol.sbom import (
    SbomArtifact,
    SbomBase,
    SbomImage,
    SbomPex,
    SbomRequest,
    SbomResult,
)
from pants_oci.subsystems.oci_tool import OcibuildResult, OcibuildRun
from pants_oci.target_types import (
    DebianPackagesTarget,
    OciPythonAppTarget,
)
from pants_oci.util_rules.base_image import base_of
from pants_oci.util_rules.image import (
    OciImage,
    OciImageRequest,
    dependency_addresses,
    source_date_epoch,
)
from pants_oci.util_rules.layer_content import LayerContent, LayerContentRequest, LayerContents
from pants_oci.util_rules.python_app import (
    REQUIREMENTS_PEX,
    AppRequirements,
    AppRequirementsRequest,
)


@dataclass(frozen=True)
class ImageSbom:
    """The SBOM files (`sbom.spdx.json`, `sbom.cdx.json`, at the digest root) and what the
    core said about them (their media types, digests and counts)."""

    image: OciImage
    files: Digest
    result: SbomResult


def _base_of(manifest: bytes) -> SbomBase | None:
    """The base as the assembled manifest records it (buildkit's base annotations)."""
    annotations = json.loads(manifest).get("annotations") or {}
    digest = annotations.get(BASE_DIGEST)
    return SbomBase(digest, annotations.get(BASE_NAME)) if digest else None


def pex_root(content: LayerContent) -> str:
    """Where the PEX is in a packaged PEX's layer input: the packed directory (the parent of
    its top-level entries) or the zipapp file."""
    source = content.mappings[0][0]
    return posixpath.dirname(source) if content.part else source


async def _pex_inputs(target: Target, contents: tuple[LayerContent, ...], index: int,
                      python_setup: PythonSetup) -> tuple[SbomPex, list[Digest]]:
    """The PEX-INFO (alone, for a packed directory; the zipapp holds it) and its lockfile."""
    roots = sorted({pex_root(c) for c in contents})
    root = roots[0]
    merged = await Get(Digest, MergeDigests(c.digest for c in contents))
    # A zipapp is one file; a directory (packed or loose) needs only its PEX-INFO.
    subset = await Get(Digest, DigestSubset(merged, PathGlobs([root, f"{root}/PEX-INFO"])))
    return await _pex_with_lockfile(subset, root, index, python_lockfile(target, python_setup))


async def _pex_with_lockfile(pex_info: Digest, root: str, index: int, lockfile: str | None
                             ) -> tuple[SbomPex, list[Digest]]:
    prefix = f"pexes/{index}"
    digests = [await Get(Digest, AddPrefix(pex_info, prefix))]
    if lockfile:
        digests.append(await Get(Digest, PathGlobs([lockfile])))
    return SbomPex(posixpath.join(prefix, root), lockfile), digests


async def _app_inputs(target: Target, index: int, python_setup: PythonSetup
                      ) -> tuple[SbomPex, list[Digest]]:
    """An oci_python_app's distributions: the PEX-INFO of the requirements PEX its
    site-packages come from, and the resolve's lockfile (the wheels' hashes)."""
    app = await Get(AppRequirements, AppRequirementsRequest(target))
    root = REQUIREMENTS_PEX
    subset = await Get(Digest, DigestSubset(app.pex, PathGlobs([f"{root}/PEX-INFO"])))
    return await _pex_with_lockfile(subset, root, index, app_lockfile(app, python_setup))


def app_lockfile(app: AppRequirements, python_setup: PythonSetup) -> str | None:
    """The lockfile of the resolve an oci_python_app's code is in (None without resolves)."""
    return (python_setup.resolves.get(app.resolve) or None) if python_setup.enable_resolves \
        else None


def python_lockfile(target: Target, python_setup: PythonSetup) -> str | None:
    """The lockfile of the resolve a PEX target is built from (None without resolves)."""
    if not python_setup.enable_resolves:
        return None
    resolve = target[PythonResolveField].normalized_value(python_setup)
    return python_setup.resolves.get(resolve) or None


def image_path(path: str, mappings: tuple[tuple[str, str], ...]) -> str | None:
    """Where the file at `path` of a layer's input lands in the image, by its mappings."""
    for source, dest in mappings:
        source, dest = source.rstrip("/"), dest.strip("/")
        if path == source:
            return "/" + dest
        if path.startswith(source + "/"):
            return "/" + posixpath.join(dest, path[len(source) + 1 :])
    return None


async def _artifacts(contents: tuple[LayerContent, ...]) -> list[SbomArtifact]:
    """Every file a non-PEX dependency puts in, with its path in the image: the store knows
    each one's SHA-256."""
    entries = await MultiGet(Get(DigestEntries, Digest, c.digest) for c in contents)
    return [
        SbomArtifact(c.dependency.spec, f"sha256:{e.file_digest.fingerprint}",
                     image_path(e.path, c.mappings))
        for c, found in zip(contents, entries)
        for e in found
        if isinstance(e, FileEntry)
    ]


async def debian_lockfile(image: Address, union_membership: UnionMembership
                          ) -> tuple[str, Digest] | None:
    """The lockfile of the image's `debian_packages` base, if it has one: path, digest."""
    target = await base_of(image, union_membership)
    if not isinstance(target, DebianPackagesTarget):
        return None
    path = target.lockfile_path()
    return path, await Get(Digest, PathGlobs([path]))


@rule(desc="Write the SBOMs of an OCI image", level=LogLevel.DEBUG)
async def image_sbom(request: OciImageRequest, python_setup: PythonSetup,
                     union_membership: UnionMembership) -> ImageSbom:
    """The SBOMs of the image `request` builds (one platform's, for an image with
    `platforms`: an index has no SBOM of its own)."""
    image = await Get(OciImage, OciImageRequest, request)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["SOURCE_DATE_EPOCH"]))
    manifest = await Get(DigestContents, DigestSubset(
        image.layout, PathGlobs([f"blobs/sha256/{hex_of(image.manifest_digest)}"])))
    target = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="<infallible>")
    )
    dependencies = await dependency_addresses(target.target)
    wrapped = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(d, description_of_origin="<infallible>"))
        for d in dependencies
    )
    per_dependency = await MultiGet(
        Get(LayerContents, LayerContentRequest(d, request.address)) for d in dependencies
    )
    pexes, digests, others = [], [], []
    for w, found in zip(wrapped, per_dependency):
        packaged_pex = w.target.has_field(PexLayoutField) and all(c.packaged for c in found.contents)
        if packaged_pex:
            pex, inputs = await _pex_inputs(w.target, found.contents, len(pexes), python_setup)
            pexes.append(pex)
            digests.extend(inputs)
        elif isinstance(w.target, OciPythonAppTarget):
            pex, inputs = await _app_inputs(w.target, len(pexes), python_setup)
            pexes.append(pex)
            digests.extend(inputs)
            others.extend(c for c in found.contents if c.part == "sources")
        else:
            others.extend(found.contents)
    debian = await debian_lockfile(request.address, union_membership)
    if debian is not None:
        digests.append(debian[1])
    sbom_request = SbomRequest(
        image=SbomImage(image.manifest_digest, image.result.platform, image.repository,
                        image.tags),
        base=_base_of(manifest[0].content),
        debian_lockfiles=(debian[0],) if debian else (),
        pexes=tuple(pexes),
        artifacts=tuple(sorted(set(await _artifacts(tuple(others))),
                               key=lambda a: (a.address, a.path or "", a.digest))),
        epoch=source_date_epoch(env),
    )
    what = request.describe()
    run = await Get(
        OcibuildResult,
        OcibuildRun(
            sbom_request,
            await Get(Digest, MergeDigests(digests)),
            description=f"Writing the SBOMs of {what}",
            context=f"writing the SBOMs of {what}",
        ),
    )
    assert isinstance(run.result, SbomResult)
    return ImageSbom(image, run.output_digest, run.result)


def rules():
    return collect_rules()
