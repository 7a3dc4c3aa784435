"""OCI 1.1 referrers: an artifact manifest that attaches one blob (an SBOM, later a signature
or a provenance statement) to the image manifest it is about, its `subject`.

The shape is image-spec 1.1's "guidelines for artifact usage": an image manifest whose
`artifactType` says what the artifact is, whose `config` is the empty descriptor (the
artifact has no config; the spec asks for exactly `{}` under this media type rather than a
made-up config), and whose one layer is the blob. Registries list such manifests under the
subject (`GET /v2/<name>/referrers/<digest>`, or the `sha256-<hex>` tag schema), so a
scanner finds an image's SBOM from the image's digest alone. Pure: bytes in, bytes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from ocibuild import canonical_json, mediatypes
from ocibuild.digest import bytes_digest, hex_of
from ocibuild.image.manifest import Descriptor

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
EMPTY = Descriptor(EMPTY_MEDIA_TYPE, bytes_digest(EMPTY_JSON), len(EMPTY_JSON))

# In a layout's index.json, on each artifact manifest: what it is and what it is about. No
# ref name: a tag names the image, and lookups by tag must never find an SBOM.
REFERRER = "dev.pants-oci.referrer"


@dataclass(frozen=True)
class ArtifactManifest:
    data: bytes  # canonical JSON: the same subject and blob give the same digest
    artifact_type: str
    subject: Descriptor

    @property
    def digest(self) -> str:
        return bytes_digest(self.data)

    def index_entry(self, what: str) -> dict:
        """Its descriptor as index.json lists it: with `artifactType` (image-spec 1.1) and
        a `REFERRER` annotation saying `what` it is and of which manifest."""
        return {"mediaType": mediatypes.OCI_MANIFEST, "digest": self.digest,
                "size": len(self.data), "artifactType": self.artifact_type,
                "annotations": {REFERRER: f"{what} of {self.subject.digest}"}}


def artifact_manifest(subject: Descriptor, blob: Descriptor,
                      annotations: Optional[Mapping[str, str]] = None) -> ArtifactManifest:
    """The manifest attaching `blob` (whose media type is also the artifact type) to
    `subject` (an image manifest's descriptor; its platform and annotations are left out:
    the subject field identifies a manifest, nothing more)."""
    subject = Descriptor(subject.media_type, subject.digest, subject.size)
    manifest: dict = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": blob.media_type,
        "config": EMPTY.to_json(),
        "layers": [Descriptor(blob.media_type, blob.digest, blob.size).to_json()],
        "subject": subject.to_json(),
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return ArtifactManifest(canonical_json.dumps(manifest), blob.media_type, subject)


def referrers_tag(subject_digest: str) -> str:
    """The tag a registry without the referrers API lists a subject's referrers under
    (image-spec 1.1's referrers tag schema): `sha256-<hex>`."""
    return f"sha256-{hex_of(subject_digest)}"
