"""SBOMs and provenance of an image, the smallest documents of each format that name the
image in the field their format gives it, attached to a layout as OCI 1.1 referrers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import List, Tuple

from ocibuild import canonical_json
from ocibuild.layout.referrers import attach
from ocibuild.protocol.referrers import ReferrerBlob, ReferrersRequest

SPDX = "application/spdx+json"
CYCLONEDX = "application/vnd.cyclonedx+json"
IN_TOTO = "application/vnd.in-toto+json"
SLSA = "https://slsa.dev/provenance/v1"


def spdx(digest: str) -> dict:
    return {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "app",
            "packages": [{"SPDXID": "SPDXRef-Image", "name": "app", "versionInfo": digest,
                          "checksums": [{"algorithm": "SHA256", "checksumValue": digest[7:]}]}],
            "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT",
                               "relationshipType": "DESCRIBES",
                               "relatedSpdxElement": "SPDXRef-Image"}]}


def cyclonedx(digest: str) -> dict:
    return {"bomFormat": "CycloneDX", "specVersion": "1.6",
            "metadata": {"component": {"type": "container", "name": "app", "version": digest,
                                       "hashes": [{"alg": "SHA-256", "content": digest[7:]}]}}}


def provenance(digest: str, builder: str = "https://example.test/builder",
               source: str = "git+https://example.test/app") -> dict:
    return {"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app", "digest": {"sha256": digest[7:]}}],
            "predicateType": SLSA,
            "predicate": {"buildDefinition": {
                "buildType": "https://example.test/build-type",
                "externalParameters": {"source": source},
                "resolvedDependencies": [{"uri": source, "digest": {"gitCommit": "a" * 40}}]},
                "runDetails": {"builder": {"id": builder}}}}


def documents(digest: str) -> List[Tuple[str, dict]]:
    return [(SPDX, spdx(digest)), (CYCLONEDX, cyclonedx(digest)), (IN_TOTO, provenance(digest))]


def attach_documents(layout_dir: Path, work: Path, subject: str,
                     docs: List[Tuple[str, object]]) -> Path:
    """A copy of `layout_dir` with `docs` (media type, JSON value or raw bytes) attached to
    `subject` as referrers."""
    work.mkdir(parents=True, exist_ok=True)
    blobs = []
    for i, (media_type, doc) in enumerate(docs):
        path = work / f"doc{i}.json"
        # Canonical, as the SBOM and provenance writers make them.
        path.write_bytes(doc if isinstance(doc, bytes) else canonical_json.dumps(doc))
        blobs.append(ReferrerBlob(str(path), media_type, subject, "doc"))
    attach(ReferrersRequest(str(layout_dir), tuple(blobs)), str(work / "out"))
    merged = work / "merged"
    shutil.copytree(layout_dir, merged)
    shutil.copytree(work / "out", merged, dirs_exist_ok=True)
    return merged
