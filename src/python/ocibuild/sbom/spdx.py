"""SPDX 2.3 JSON of an inventory.

The image is the package the document DESCRIBES; it CONTAINS every Debian package, Python
distribution and first-party artifact, and is a DESCENDANT_OF its base. Each package's
SHA-256 goes in `checksums` and its purl in `externalRefs` (PACKAGE-MANAGER/purl), where
scanners look for them; a first-party file's path in the image goes in `packageFileName`.
`filesAnalyzed` is false: the packages are named by the lockfiles that decided them, not by
listing their files.
"""

from __future__ import annotations

import posixpath
from typing import List, Optional

from ocibuild import canonical_json
from ocibuild.digest import hex_of
from ocibuild.sbom import identity, purl
from ocibuild.sbom.inventory import ImageRef, Inventory

MEDIA_TYPE = "application/spdx+json"
TOOL = "Tool: ocibuild"
NOASSERTION = "NOASSERTION"


def _checksums(sha256: Optional[str]) -> dict:
    return {"checksums": [{"algorithm": "SHA256", "checksumValue": sha256}]} if sha256 else {}


def _purl(locator: str) -> dict:
    return {"externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": locator}]}


def _package(spdx_id: str, name: str, version: str, **more: object) -> dict:
    return {"SPDXID": spdx_id, "name": name, "versionInfo": version,
            "downloadLocation": NOASSERTION, "filesAnalyzed": False, **more}


def _image(spdx_id: str, image: ImageRef, architecture: Optional[str]) -> dict:
    extra = _purl(purl.oci(image.name, image.manifest_digest, architecture)) if image.name else {}
    # SPDX 2.3 has no field for an image's platform or tags: a comment says them.
    said = [f"platform {image.platform}"] if image.platform else []
    said += [f"tags {', '.join(image.tags)}"] if image.tags else []
    if said:
        extra["comment"] = "; ".join(said)
    return _package(spdx_id, image.name or image.manifest_digest, image.manifest_digest,
                    primaryPackagePurpose="CONTAINER",
                    **_checksums(hex_of(image.manifest_digest)), **extra)


def document(inventory: Inventory, epoch: int = 0) -> dict:
    image = inventory.image
    architecture = image.platform.split("/")[1] if image.platform else None
    packages = [_image("SPDXRef-Image", image, architecture)]
    relationships = [("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image")]
    if inventory.base:
        packages.append(_image("SPDXRef-Base", inventory.base, architecture))
        relationships.append(("SPDXRef-Image", "DESCENDANT_OF", "SPDXRef-Base"))
    contained: List[dict] = []
    for deb in inventory.debian:
        contained.append(_package(
            "SPDXRef-" + identity.ref("deb", deb.name, deb.architecture, deb.version),
            deb.name, deb.version, downloadLocation=deb.url or NOASSERTION,
            packageFileName=posixpath.basename(deb.filename),
            sourceInfo=f"locked from the Debian suite {deb.suite} ({deb.size} bytes)",
            **_checksums(deb.sha256), **_purl(deb.purl)))
    for dist in inventory.python:
        note = ({"comment": f"pex fingerprint of the installed wheel: {dist.pex_fingerprint}"}
                if dist.pex_fingerprint else {})
        contained.append(_package(
            "SPDXRef-" + identity.ref("pypi", dist.name, dist.version, dist.wheel or ""),
            dist.name, dist.version, **({"packageFileName": dist.wheel} if dist.wheel else {}),
            **_checksums(dist.sha256), **_purl(dist.purl), **note))
    for artifact in inventory.artifacts:
        where = {"packageFileName": artifact.path} if artifact.path else {}
        contained.append(_package(
            "SPDXRef-" + identity.ref("file", artifact.address, artifact.digest,
                                      *filter(None, [artifact.path])),
            artifact.address, artifact.digest, primaryPackagePurpose="FILE", **where,
            **_checksums(hex_of(artifact.digest))))
    packages += contained
    relationships += [("SPDXRef-Image", "CONTAINS", p["SPDXID"]) for p in contained]
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{image.name or 'image'}@{image.manifest_digest}",
        "documentNamespace": identity.document_uuid(image.manifest_digest),
        "creationInfo": {"created": identity.timestamp(epoch), "creators": [TOOL]},
        "packages": packages,
        "relationships": [{"spdxElementId": a, "relationshipType": kind,
                           "relatedSpdxElement": b} for a, kind, b in relationships],
    }


def dumps(inventory: Inventory, epoch: int = 0) -> bytes:
    """Canonical JSON: the same inventory and epoch give the same bytes."""
    return canonical_json.dumps(document(inventory, epoch))
