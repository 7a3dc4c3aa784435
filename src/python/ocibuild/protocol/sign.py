"""`ocibuild run` of a `sign` request (sign a pushed image's digest as cosign does and push
the signature) and of a `verify` request (check a published image's signature against a
public key, its SBOM and provenance attestations against the key and its digest, and its
referrers against those attestations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ocibuild.protocol.document import Document, Part
from ocibuild.protocol.sbom import _digest

# Where a `sign` process finds the PEM private key when the request names no file: its
# environment, as a push finds its credentials (never a request, argv or cached input).
KEY_ENV = "OCIBUILD_SIGNING_KEY"


@dataclass(frozen=True)
class SignRequest(Document):
    KIND = "sign"

    to: str  # REGISTRY/REPOSITORY: the signature's docker-reference, and where it goes
    manifest_digest: str = field(metadata={"check": _digest})
    # A PEM file holding the key (absolute, or from the working directory); None: $KEY_ENV.
    key_file: Optional[str] = None
    insecure: bool = False
    ca_cert: Optional[str] = None
    # The pushed image's OCI layout, with its SBOM and provenance referrers: each is also
    # signed, as a cosign attestation of the image manifest it is about. None: none.
    layout: Optional[str] = None


@dataclass(frozen=True)
class PushedAttestations(Part):
    reference: str  # REGISTRY/REPOSITORY:sha256-<hex>.att
    manifest_digest: str
    predicate_types: Tuple[str, ...]
    written: bool


@dataclass(frozen=True)
class SignResult(Document):
    KIND = "sign-result"

    reference: str  # REGISTRY/REPOSITORY:sha256-<hex>.sig
    manifest_digest: str  # of the signature manifest
    payload_digest: str
    signature: str  # base64 DER
    public_key: str  # PEM: what `cosign verify --key` and `pants oci-verify` need
    written: bool  # False: the registry already held exactly this signature
    attestations: Tuple[PushedAttestations, ...] = ()


@dataclass(frozen=True)
class VerifyRequest(Document):
    KIND = "verify"

    image: str  # REGISTRY/REPOSITORY[:TAG][@DIGEST]
    public_key: str  # a PEM file
    # Artifact types each image manifest must have a referrer of (e.g. the SBOMs and
    # provenance the target is built with).
    require: Tuple[str, ...] = ()
    insecure: bool = False
    ca_cert: Optional[str] = None


@dataclass(frozen=True)
class VerifiedReferrer(Part):
    """An OCI 1.1 referrer (what scanners read) whose document a verified attestation of
    the same subject holds: unsigned ones fail verification instead."""

    subject: str
    artifact_type: str
    manifest_digest: str
    blob_digest: str


@dataclass(frozen=True)
class VerifiedAttestation(Part):
    """A DSSE envelope in the subject's `.att` image whose signature verifies with the key
    and whose statement is about exactly `subject`, its predicate read by its type."""

    subject: str
    predicate_type: str
    envelope_digest: str


@dataclass(frozen=True)
class VerifyResult(Document):
    KIND = "verify-result"

    reference: str
    digest: str  # what the reference names in the registry now, the one verified
    signatures: int  # signatures that verify with the key and are of this digest
    referrers: Tuple[VerifiedReferrer, ...]
    attestations: Tuple[VerifiedAttestation, ...] = ()
