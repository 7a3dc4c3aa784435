"""SLSA provenance of an image: an in-toto Statement v1 (https://in-toto.io/Statement/v1)
whose predicate is SLSA Provenance v1 (https://slsa.dev/provenance/v1).

It says how the image was built from what Pants knows, never from what it guesses: the target
and platforms asked for (`externalParameters`), and the digest of everything that decided
the content (`resolvedDependencies`): the base image's manifest, the git commit of a clean
checkout, the Debian and Python lockfiles, and all source files. Its bytes are canonical
JSON and hold no clock, host, user or invocation id, so one build gives one provenance
digest on any machine; the only time is SOURCE_DATE_EPOCH, when it is set.

`BUILD_TYPE` says how to read `externalParameters` and `resolvedDependencies`; it is
documented in docs/supply-chain.md and changes (v2) if their meaning ever does.
"""

from __future__ import annotations

import os
from typing import Dict, List

from ocibuild import canonical_json
from ocibuild.atomic import atomic_write
from ocibuild.digest import bytes_digest, hex_of
from ocibuild.errors import OciBuildError
from ocibuild.image.config import rfc3339
from ocibuild.platform import parse_platform
from ocibuild.protocol.provenance import ProvenanceFile, ProvenanceRequest, ProvenanceResult

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
MEDIA_TYPE = "application/vnd.in-toto+json"
_DOCS = "https://github.com/pants-oci/pants-oci/blob/main/docs/supply-chain.md"
BUILD_TYPE = f"{_DOCS}#build-type-oci_image-v1"
BUILDER_ID = f"{_DOCS}#builder-pants-oci"
FILE_NAME = "provenance.json"
# On each resolved dependency: what it is to the build (SLSA leaves `annotations` to the
# build type).
ROLE = "role"


def sources_digest(sources: tuple) -> str:
    """One digest for all the source files: sha256 of the canonical JSON object mapping each
    path (from the build root) to its `sha256:<hex>`. Anyone can recompute it from a checkout,
    and any change to any file, or a file added or removed, changes it."""
    table: Dict[str, str] = {}
    for source in sources:
        if table.setdefault(source.path, source.digest) != source.digest:
            raise OciBuildError(f"provenance request: the source {source.path!r} is listed twice "
                                "with different digests")
    return bytes_digest(canonical_json.dumps(table))


def _sha256(digest: str) -> dict:
    return {"sha256": hex_of(digest)}


def _git_uri(source: str) -> str:
    """SLSA's VCS locator (`git+https://host/repo`) for a URL; scp-like remotes as they are."""
    return source if source.startswith("git") or "://" not in source else f"git+{source}"


def _lockfile(file: ProvenanceFile) -> dict:
    return {"name": file.path, "digest": _sha256(file.digest), "annotations": {ROLE: file.role}}


def resolved_dependencies(request: ProvenanceRequest) -> List[dict]:
    """In a fixed order: base image, source revision, lockfiles (by path), sources."""
    found: List[dict] = []
    if request.base is not None:
        found.append({"name": request.base.name or "base image",
                      "digest": _sha256(request.base.manifest_digest),
                      "annotations": {ROLE: "base-image"}})
    if request.revision:
        git = {"digest": {"gitCommit": request.revision}, "annotations": {ROLE: "source-revision"}}
        found.append({"uri": _git_uri(request.source), **git} if request.source
                     else {"name": "git", **git})
    for file in sorted(request.lockfiles, key=lambda f: (f.path, f.role or "")):
        if file.role is None:
            raise OciBuildError(f"provenance request: the lockfile {file.path!r} has no role; "
                                "give one of debian-lockfile, python-lockfile")
        found.append(_lockfile(file))
    files = len({s.path for s in request.sources})
    found.append({"name": "sources", "digest": _sha256(sources_digest(request.sources)),
                  "annotations": {ROLE: "sources", "files": files}})
    return found


def statement(request: ProvenanceRequest) -> dict:
    platform = str(parse_platform(request.platform))
    external: dict = {"target": request.target, "platform": platform}
    if request.platforms:
        external["platforms"] = [str(parse_platform(p)) for p in request.platforms]
    if request.epoch is not None:
        external["sourceDateEpoch"] = request.epoch
    builder: dict = {"id": BUILDER_ID}
    if request.builder_version:
        builder["version"] = dict(request.builder_version)
    run: dict = {"builder": builder}
    if request.epoch is not None:  # the build's declared time, as the config's `created`
        run["metadata"] = {"startedOn": rfc3339(request.epoch),
                           "finishedOn": rfc3339(request.epoch)}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": request.subject.name,
                     "digest": _sha256(request.subject.manifest_digest)}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "resolvedDependencies": resolved_dependencies(request),
            },
            "runDetails": run,
        },
    }


def provenance(request: ProvenanceRequest, out_dir: str) -> ProvenanceResult:
    data = canonical_json.dumps(statement(request))
    os.makedirs(out_dir, exist_ok=True)
    atomic_write(os.path.join(out_dir, FILE_NAME), data)
    return ProvenanceResult(FILE_NAME, MEDIA_TYPE, bytes_digest(data), len(data),
                            request.subject.manifest_digest, sources_digest(request.sources))
