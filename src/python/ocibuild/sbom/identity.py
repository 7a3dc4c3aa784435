"""What makes two SBOMs of one image byte-identical: names and times derived from the image,
never from the clock or a random generator."""

from __future__ import annotations

import hashlib
import re
import time
import uuid

from ocibuild.digest import validate_digest

# Fixed forever: changing it would give every image's SBOM a new identity.
_NAMESPACE = uuid.UUID("6c0f1d2e-5a43-5b7e-9b1c-0c1b5e0d5a11")


def document_uuid(manifest_digest: str) -> str:
    """`urn:uuid:...` named by the image's manifest digest (UUID v5): the same image always
    has the same SBOM identity, a different image a different one."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, validate_digest(manifest_digest))}"


def timestamp(epoch: int) -> str:
    """ISO 8601 UTC to the second, as both specs want it: SOURCE_DATE_EPOCH, not the clock."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def ref(kind: str, name: str, *unique: str) -> str:
    """A readable id unique within one SBOM (`deb-libstdc--6-3f2a9c0d1e2b`): the name with
    what neither spec allows replaced, and a hash of what tells two of one name apart."""
    key = hashlib.sha256("\0".join((kind, name, *unique)).encode()).hexdigest()[:12]
    return f"{kind}-{re.sub(r'[^A-Za-z0-9.-]', '-', name)}-{key}"
