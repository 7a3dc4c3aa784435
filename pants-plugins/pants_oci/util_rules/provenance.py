"""The SLSA provenance of a built image: what Pants knows gathered here, the statement written
by the core (`ocibuild.provenance`).

Collected: which image was assembled (manifest digest, platform, repository), the target and
its platforms, what its manifest annotations say (the base's digest and name; the git source
and revision that `vcs.py` put there), the lockfiles that decided its packages (a
`debian_packages` base's, each PEX dependency's resolve), and the path and SHA-256 of every
source file of the image's transitive targets (known to the store without reading them). One
small cached `ocibuild run` of a `ProvenanceRequest` turns that into the statement.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import PexLayoutField
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    EMPTY_DIGEST,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileEntry,
    PathGlobs,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    SourcesField,
    TransitiveTargets,
    TransitiveTargetsRequest,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.engine.unions import UnionMembership
from pants.util.logging import LogLevel
from pants.version import VERSION

from ocibuild.digest import hex_of
from ocibuild.image.manifest import BASE_DIGEST, BASE_NAME
from ocibuild.protocol.provenance import (
    ProvenanceBase,
    ProvenanceFile,
    ProvenanceRequest,
    ProvenanceResult,
    ProvenanceSubject,
)
from ocibuild.provenance import sources_digest
from ocibuild.vcs import REVISION, SOURCE
from pants_oci.subsystems.oci_tool import OcibuildResult, OcibuildRun, ocibuild_sources
from pants_oci.target_types import OciImagePlatformsField, OciPythonAppTarget
from pants_oci.util_rules.image import (
    OciImage,
    OciImageRequest,
    declared_epoch,
    dependency_addresses,
)
from pants_oci.util_rules.python_app import AppRequirements, AppRequirementsRequest
from pants_oci.util_rules.sbom import app_lockfile, debian_lockfile, python_lockfile


@dataclass(frozen=True)
class ImageProvenance:
    """The statement (`provenance.json`, at the digest root) and what the core said of it."""

    image: OciImage
    file: Digest
    result: ProvenanceResult


@functools.lru_cache(maxsize=None)
def ocibuild_version() -> str:
    """The builder's own version: one digest of the core's sources (the code that wrote the
    image), computed as the provenance's sources digest is."""
    return sources_digest(tuple(
        ProvenanceFile(f.path, "sha256:" + hashlib.sha256(f.content).hexdigest())
        for f in ocibuild_sources()))


async def _file_digests(digest: Digest, role: str | None = None) -> list[ProvenanceFile]:
    entries = await Get(DigestEntries, Digest, digest)
    return [ProvenanceFile(e.path, f"sha256:{e.file_digest.fingerprint}", role)
            for e in entries if isinstance(e, FileEntry)]


async def _lockfiles(request: OciImageRequest, python_setup: PythonSetup,
                     union_membership: UnionMembership) -> list[ProvenanceFile]:
    found = []
    debian = await debian_lockfile(request.address, union_membership)
    if debian is not None:
        found.extend(await _file_digests(debian[1], "debian-lockfile"))
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="<infallible>")
    )
    dependencies = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(d, description_of_origin="<infallible>"))
        for d in await dependency_addresses(wrapped.target)
    )
    paths = {python_lockfile(d.target, python_setup) for d in dependencies
             if d.target.has_field(PexLayoutField)}
    for d in dependencies:
        if isinstance(d.target, OciPythonAppTarget):
            app = await Get(AppRequirements, AppRequirementsRequest(d.target))
            paths.add(app_lockfile(app, python_setup))
    for path in sorted(p for p in paths if p):
        found.extend(await _file_digests(await Get(Digest, PathGlobs([path])), "python-lockfile"))
    return found


async def _sources(request: OciImageRequest) -> list[ProvenanceFile]:
    closure = await Get(TransitiveTargets, TransitiveTargetsRequest([request.address]))
    files = await Get(SourceFiles, SourceFilesRequest(
        [t.get(SourcesField) for t in closure.closure]))
    return await _file_digests(files.snapshot.digest)


def _annotations(manifest: bytes) -> dict:
    return json.loads(manifest).get("annotations") or {}


@rule(desc="Write the provenance of an OCI image", level=LogLevel.DEBUG)
async def image_provenance(request: OciImageRequest, python_setup: PythonSetup,
                           union_membership: UnionMembership) -> ImageProvenance:
    """The provenance of the image `request` builds (one platform's, for an image with
    `platforms`: the index has none of its own, as with SBOMs)."""
    image = await Get(OciImage, OciImageRequest, request)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["SOURCE_DATE_EPOCH"]))
    manifest = await Get(DigestContents, DigestSubset(
        image.layout, PathGlobs([f"blobs/sha256/{hex_of(image.manifest_digest)}"])))
    annotations = _annotations(manifest[0].content)
    target = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="<infallible>")
    )
    base = annotations.get(BASE_DIGEST)
    provenance_request = ProvenanceRequest(
        subject=ProvenanceSubject(image.manifest_digest, image.repository),
        target=request.address.spec,
        platform=image.result.platform,
        platforms=tuple(target.target[OciImagePlatformsField].value or ()),
        base=ProvenanceBase(base, annotations.get(BASE_NAME)) if base else None,
        source=annotations.get(SOURCE),
        revision=annotations.get(REVISION),
        lockfiles=tuple(await _lockfiles(request, python_setup, union_membership)),
        sources=tuple(sorted(await _sources(request), key=lambda f: f.path)),
        builder_version=(("ocibuild", ocibuild_version()), ("pants", VERSION)),
        epoch=declared_epoch(env),
    )
    what = request.describe()
    run = await Get(
        OcibuildResult,
        OcibuildRun(
            provenance_request,
            EMPTY_DIGEST,
            description=f"Writing the provenance of {what}",
            context=f"writing the provenance of {what}",
        ),
    )
    assert isinstance(run.result, ProvenanceResult)
    return ImageProvenance(image, run.output_digest, run.result)


def rules():
    return collect_rules()
