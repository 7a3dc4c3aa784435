"""Image signatures as cosign writes them with a key (`cosign sign --key`), so that
`cosign verify --key` accepts ours and we accept its.

What is signed is cosign's "simple signing" payload: a JSON document naming the repository
(`docker-reference`) and the manifest digest. The signature is ECDSA P-256 over its SHA-256,
DER, base64 in the `dev.cosignproject.cosign/signature` annotation of a layer whose blob is
the payload; the layers of all signatures of one image are in an image manifest tagged
`sha256-<hex>.sig` in the image's repository. Signing is RFC 6979 deterministic: one key and
one digest give one signature, so a re-push changes nothing. Pure: bytes in, bytes out; the
registry part is `ocibuild.registry.signatures`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, List, Optional

from ocibuild import canonical_json, mediatypes
from ocibuild.digest import bytes_digest, hex_of, validate_digest
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import load_json, shown

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
# Attestations (`cosign attest --key`): each a DSSE envelope (`ocibuild.dsse`) in a layer of
# the image tagged `sha256-<hex>.att`; the layer says its statement's predicate type, and
# its signature annotation is empty (the signature is inside the envelope), as cosign's
# static.NewAttestation writes them.
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
PREDICATE_TYPE_ANNOTATION = "predicateType"
# A key file is a few hundred bytes; a payload well under a KiB.
MAX_KEY = 64 << 10
MAX_PAYLOAD = 1 << 20


def signature_tag(digest: str) -> str:
    """Where cosign keeps the signatures of `digest`: `sha256-<hex>.sig`."""
    return f"sha256-{hex_of(validate_digest(digest))}.sig"


def attestation_tag(digest: str) -> str:
    """Where cosign keeps the attestations of `digest`: `sha256-<hex>.att`."""
    return f"sha256-{hex_of(validate_digest(digest))}.att"


def attestation_layer(envelope: bytes, predicate_type: str) -> dict:
    return {"mediaType": DSSE_MEDIA_TYPE, "digest": bytes_digest(envelope),
            "size": len(envelope),
            "annotations": {SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type}}


def payload(docker_reference: str, digest: str) -> bytes:
    """The simple-signing payload, byte for byte as cosign writes it (Go's json.Marshal of
    its struct is in sorted-key order with no spaces, as canonical JSON is)."""
    return canonical_json.dumps({
        "critical": {"identity": {"docker-reference": docker_reference},
                     "image": {"docker-manifest-digest": validate_digest(digest)},
                     "type": PAYLOAD_TYPE},
        "optional": None,
    })


def _ec():
    # Imported when signing or verifying: other commands do not pay for OpenSSL's start.
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec, hashes, serialization


def load_private_key(pem: bytes, where: str) -> Any:
    """An unencrypted PEM ECDSA P-256 private key (PKCS#8 or SEC 1, as `openssl ecparam
    -genkey` or `openssl genpkey` write it); anything else is an error naming `where`."""
    ec, _, serialization = _ec()
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # what cryptography says of an encrypted key given no password
        raise OciBuildError(f"{where}: the key is encrypted; give an unencrypted PEM key (e.g. "
                            "`openssl pkcs8 -topk8 -nocrypt -in enc.pem -out key.pem`) and "
                            "keep it in a CI secret") from None
    except (ValueError, UnsupportedAlgorithm) as err:
        raise OciBuildError(f"{where}: not a PEM private key ({type(err).__name__}); "
                            "give an ECDSA P-256 key, e.g. from `openssl ecparam -name "
                            "prime256v1 -genkey -noout -out key.pem`") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        kind = f"ECDSA {key.curve.name}" if isinstance(key, ec.EllipticCurvePrivateKey) \
            else type(key).__name__.lstrip("_")
        raise OciBuildError(f"{where}: the key must be ECDSA P-256 (prime256v1), as cosign's "
                            f"are; this one is {kind}")
    return key


def load_public_key(pem: bytes, where: str) -> Any:
    ec, _, serialization = _ec()
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as err:
        raise OciBuildError(f"{where}: not a PEM public key ({type(err).__name__}); give the "
                            "key `openssl ec -in key.pem -pubout` or `cosign public-key` "
                            "prints") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise OciBuildError(f"{where}: the key must be ECDSA P-256 (prime256v1)")
    return key


def public_key_pem(private_key: Any) -> bytes:
    _, _, serialization = _ec()
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(private_key: Any, data: bytes) -> str:
    """ECDSA-SHA256 over `data`, DER, base64 (what the annotation holds)."""
    ec, hashes, _ = _ec()
    signature = private_key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    return base64.b64encode(signature).decode("ascii")


def verifies(public_key: Any, data: bytes, signature: str) -> bool:
    ec, hashes, _ = _ec()
    from cryptography.exceptions import InvalidSignature

    try:
        der = base64.b64decode(signature, validate=True)
        public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Signature:
    payload: bytes
    signature: str  # base64 DER

    @property
    def layer(self) -> dict:
        return {"mediaType": PAYLOAD_MEDIA_TYPE, "digest": bytes_digest(self.payload),
                "size": len(self.payload),
                "annotations": {SIGNATURE_ANNOTATION: self.signature}}


def signature_image(layers: List[dict]) -> tuple:
    """The config and manifest (bytes) of the `.sig` image holding `layers`, as cosign
    builds it: an image whose config lists each payload as an uncompressed layer."""
    config = canonical_json.dumps({
        "architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
        "os": "", "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layers]},
        "config": {},
    })
    manifest = canonical_json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": bytes_digest(config),
                   "size": len(config)},
        "layers": layers,
    })
    return config, manifest


def check_payload(data: bytes, digest: str, docker_reference: Optional[str], where: str) -> None:
    """That a verified payload is about `digest` (and `docker_reference`, when given): a
    valid signature of another image proves nothing about this one."""
    doc = load_json(data, f"{where}: the signed payload", max_bytes=MAX_PAYLOAD)
    try:
        critical = doc["critical"]
        signed_digest = critical["image"]["docker-manifest-digest"]
        signed_type = critical["type"]
        signed_reference = critical["identity"]["docker-reference"]
    except (KeyError, TypeError):
        raise OciBuildError(f"{where}: the signed payload is not a cosign simple-signing "
                            "document") from None
    if signed_type != PAYLOAD_TYPE:
        raise OciBuildError(f"{where}: the signed payload is a {shown(str(signed_type))!r}, "
                            f"not a {PAYLOAD_TYPE!r}")
    if signed_digest != digest:
        raise OciBuildError(f"{where}: the signature is of {shown(str(signed_digest))}, not "
                            f"of {digest}")
    if docker_reference is not None and signed_reference != docker_reference:
        raise OciBuildError(f"{where}: the signature is for {shown(str(signed_reference))!r}, "
                            f"not for {docker_reference!r}")
