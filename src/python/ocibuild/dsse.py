"""DSSE envelopes (https://github.com/secure-systems-lab/dsse, v1.0) as cosign writes them
for an attestation made with a key (`cosign attest --key`).

An envelope is `{"payload": base64, "payloadType": TYPE, "signatures": [{"keyid", "sig"}]}`.
What is signed is not the payload but its PAE (pre-authentication encoding),
`DSSEv1 SP len(TYPE) SP TYPE SP len(BODY) SP BODY`, lengths as ASCII decimal byte counts: so
a signature binds the payload *type* too, and an envelope cannot be re-read as another kind
of document. Signatures are cosign's (ECDSA P-256 over SHA-256, DER, base64), `keyid` empty
as `cosign attest --key` leaves it. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, List

from ocibuild import canonical_json, cosign
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import field, load_json, shown

IN_TOTO = "application/vnd.in-toto+json"
# More signatures than this on one envelope is not something a signer made: each costs a
# verification, so the count is bounded before any is checked.
MAX_SIGNATURES = 16


def pae(payload_type: str, body: bytes) -> bytes:
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def envelope(private_key: Any, body: bytes, payload_type: str = IN_TOTO) -> bytes:
    """The envelope of `body`, signed with `private_key`. Canonical JSON and RFC 6979
    signatures: one key and one body give one envelope, so a re-push adds nothing."""
    return canonical_json.dumps({
        "payloadType": payload_type,
        "payload": base64.b64encode(body).decode("ascii"),
        "signatures": [{"keyid": "", "sig": cosign.sign(private_key, pae(payload_type, body))}],
    })


def _b64(value: str, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise OciBuildError(f"{where} is not base64") from None


def open_envelope(data: bytes, public_key: Any, key_name: str, where: str,
                  payload_type: str = IN_TOTO) -> bytes:
    """The payload of the envelope `data`, once one of its signatures verifies with
    `public_key` over the PAE of exactly `payload_type` and that payload. A second, bad
    signature does not spoil a good one (DSSE's rule: it signs nothing the good one does
    not), but only a signature made with the key makes the payload believed."""
    doc = load_json(data, where)
    kind = field(doc, "payloadType", str, where, required=True)
    if kind != payload_type:
        raise OciBuildError(f"{where}: the payload type is {shown(kind)!r}, not {payload_type!r}")
    body = _b64(field(doc, "payload", str, where, required=True), f"{where}: `payload`")
    signatures = field(doc, "signatures", list, where, required=True)
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise OciBuildError(f"{where}: {len(signatures)} signatures; an envelope has 1 to "
                            f"{MAX_SIGNATURES}")
    message = pae(kind, body)
    tried: List[str] = []
    for i, raw in enumerate(signatures):
        here = f"{where}: `signatures[{i}]`"
        if not isinstance(raw, dict):
            raise OciBuildError(f"{here} must be a JSON object")
        signature = field(raw, "sig", str, here, required=True)
        field(raw, "keyid", str, here)
        if cosign.verifies(public_key, message, signature):
            return body
        tried.append(str(i))
    raise OciBuildError(f"{where}: no signature verifies with {key_name} (tried "
                        f"{', '.join(tried)})")
