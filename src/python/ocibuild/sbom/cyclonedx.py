"""CycloneDX 1.6 JSON of an inventory.

The image is `metadata.component` (a container, its base as its pedigree's ancestor); every
Debian package, Python distribution and first-party artifact is a component it depends on.
Hashes go in `hashes` (SHA-256), the purl in `purl`, a .deb's download URL in
`externalReferences` (distribution); what neither has a field for (the Debian suite, pex's
fingerprint, the Pants address, a first-party file's path in the image) in `properties`.
"""

from __future__ import annotations

from typing import List, Optional

from ocibuild import canonical_json
from ocibuild.digest import hex_of
from ocibuild.sbom import identity, purl
from ocibuild.sbom.inventory import ImageRef, Inventory

MEDIA_TYPE = "application/vnd.cyclonedx+json"


def _hashes(sha256: Optional[str]) -> dict:
    return {"hashes": [{"alg": "SHA-256", "content": sha256}]} if sha256 else {}


def _properties(**values: Optional[str]) -> dict:
    pairs = [{"name": k.replace("_", ":", 1), "value": v} for k, v in sorted(values.items())
             if v is not None]
    return {"properties": pairs} if pairs else {}


def _image(ref: str, image: ImageRef, architecture: Optional[str]) -> dict:
    extra = {"purl": purl.oci(image.name, image.manifest_digest, architecture)} if image.name \
        else {}
    return {"type": "container", "bom-ref": ref, "name": image.name or image.manifest_digest,
            "version": image.manifest_digest, **_hashes(hex_of(image.manifest_digest)), **extra}


def document(inventory: Inventory, epoch: int = 0) -> dict:
    image = inventory.image
    architecture = image.platform.split("/")[1] if image.platform else None
    subject = _image("image", image, architecture)
    subject.update(_properties(oci_platform=image.platform,
                               oci_tags=",".join(image.tags) or None))
    if inventory.base:
        subject["pedigree"] = {"ancestors": [_image("base", inventory.base, architecture)]}
    components: List[dict] = []
    for deb in inventory.debian:
        download = ({"externalReferences": [{"type": "distribution", "url": deb.url,
                                             **_hashes(deb.sha256)}]} if deb.url else {})
        components.append({
            "type": "library", "name": deb.name, "version": deb.version, "purl": deb.purl,
            "bom-ref": identity.ref("deb", deb.name, deb.architecture, deb.version),
            **_hashes(deb.sha256), **download,
            **_properties(debian_suite=deb.suite, debian_filename=deb.filename,
                          debian_size=str(deb.size))})
    for dist in inventory.python:
        components.append({
            "type": "library", "name": dist.name, "version": dist.version, "purl": dist.purl,
            "bom-ref": identity.ref("pypi", dist.name, dist.version, dist.wheel or ""),
            **_hashes(dist.sha256),
            **_properties(python_wheel=dist.wheel, pex_fingerprint=dist.pex_fingerprint)})
    for artifact in inventory.artifacts:
        components.append({
            "type": "file", "name": artifact.address, "version": artifact.digest,
            "bom-ref": identity.ref("file", artifact.address, artifact.digest,
                                    *filter(None, [artifact.path])),
            **_hashes(hex_of(artifact.digest)),
            **_properties(pants_address=artifact.address, oci_path=artifact.path)})
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": identity.document_uuid(image.manifest_digest),
        "version": 1,
        "metadata": {"timestamp": identity.timestamp(epoch), "component": subject,
                     "tools": {"components": [{"type": "application", "name": "ocibuild"}]}},
        "components": components,
        "dependencies": [{"ref": "image", "dependsOn": [c["bom-ref"] for c in components]},
                         *({"ref": c["bom-ref"]} for c in components)],
    }


def dumps(inventory: Inventory, epoch: int = 0) -> bytes:
    """Canonical JSON: the same inventory and epoch give the same bytes."""
    return canonical_json.dumps(document(inventory, epoch))
