"""Signatures in a registry, as cosign keeps them (`ocibuild.cosign`): pushed after the image,
with the attestations of its SBOMs and provenance, and verified with them and its referrers.

Sign: the simple-signing payload and the `.sig` image's config as blobs, then the manifest
under the tag `sha256-<hex>.sig`, its layers merged with those already there
(`ocibuild.registry.cosign_store`); then the attestations (`ocibuild.registry.attestations`).
Verify: what a reference names now; a signature of exactly that digest and repository made
with the key; for each image manifest attached to it, its attestations (each must verify
with the key and be about exactly that manifest), then its referrers, each of which must be
a document one of those attestations holds: an unsigned SBOM or provenance fails, named as
unsigned. Everything read is untrusted: bounded, digest-verified, typed, and only
signature-verified documents are believed.
"""

from __future__ import annotations

import os
import tempfile
from typing import List, Tuple

from ocibuild import attestation, cosign
from ocibuild.digest import validate_digest
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.protocol.sign import (KEY_ENV, SignRequest, SignResult, VerifiedAttestation,
                                    VerifiedReferrer, VerifyRequest, VerifyResult)
from ocibuild.reference import Reference, parse_reference
from ocibuild.registry import cosign_store, referrer_check
from ocibuild.registry.attestations import attest_and_push, verified_attestations
from ocibuild.registry.pull import fetch_manifest
from ocibuild.registry.transport import Transport
from ocibuild.untrusted import field, local_path, read_file

SBOMS = (attestation.SPDX_MEDIA_TYPE, attestation.CYCLONEDX_MEDIA_TYPE)
IN_TOTO = attestation.IN_TOTO_MEDIA_TYPE
MAX_PLATFORMS = 64


def _key(request: SignRequest) -> bytes:
    if request.key_file is not None:
        return read_file(request.key_file, "the signing key", cosign.MAX_KEY)
    pem = os.environ.get(KEY_ENV, "")
    if not pem.strip():
        raise OciBuildError(f"no signing key: ${KEY_ENV} is empty and the request names no "
                            "key file")
    return pem.encode()


def sign_and_push(request: SignRequest, transport: Transport, work_dir: str) -> SignResult:
    key = cosign.load_private_key(_key(request), request.key_file or f"${KEY_ENV}")
    dest = parse_reference(request.to)
    if dest.tag or dest.digest:
        raise OciBuildError(f"sign request: `to` {request.to!r} must be REGISTRY/REPOSITORY, "
                            "without a tag or digest")
    data = cosign.payload(dest.name, request.manifest_digest)
    signature = cosign.Signature(data, cosign.sign(key, data))
    tag = cosign.signature_tag(request.manifest_digest)
    existing = cosign_store.read_layers(transport, dest, tag)
    manifest_digest, written = cosign_store.write(
        transport, dest, tag, existing, [(signature.layer, data)], os.path.join(work_dir, "sig"))
    attestations = attest_and_push(
        transport, dest, local_path(request.layout, "sign request: `layout`"),
        request.manifest_digest, key, work_dir) if request.layout is not None else ()
    return SignResult(f"{dest.name}:{tag}", manifest_digest, signature.layer["digest"],
                      signature.signature, cosign.public_key_pem(key).decode(), written,
                      attestations)


def _verified_signatures(transport: Transport, ref: Reference, digest: str, public_key,
                         key_name: str, work_dir: str) -> int:
    tag = cosign.signature_tag(digest)
    layers = cosign_store.read_layers(transport, ref, tag)
    if not layers:
        raise OciBuildError(f"{ref.name}@{digest} is not signed: the registry has no "
                            f"{ref.name}:{tag}")
    good, problems = 0, []
    for i, raw in enumerate(layers):
        where = f"{ref.name}:{tag} layers[{i}]"
        layer = Descriptor.from_json(raw, where=where)
        signature = (layer.annotations or {}).get(cosign.SIGNATURE_ANNOTATION)
        if layer.media_type != cosign.PAYLOAD_MEDIA_TYPE or not signature:
            continue
        data = cosign_store.small_blob(transport, ref, layer, cosign.MAX_PAYLOAD, where,
                                       work_dir)
        if not cosign.verifies(public_key, data, signature):
            problems.append(f"{where}: the signature does not verify with {key_name}")
            continue
        try:
            cosign.check_payload(data, digest, ref.name, where)
        except OciBuildError as err:
            problems.append(str(err))
            continue
        good += 1
    if not good:
        raise OciBuildError(f"{ref.name}@{digest}: no signature verifies with {key_name} "
                            f"({len(layers)} in {ref.name}:{tag}): " + "; ".join(problems))
    return good


def _image_manifests(ref: Reference, digest: str, is_index: bool, index: dict) -> List[str]:
    """The manifests referrers hang from: the image's, or each platform's of an index."""
    if not is_index:
        return [digest]
    where = f"{ref.name}@{digest}"
    found = []
    manifests = field(index, "manifests", list, where, required=True)
    if len(manifests) > MAX_PLATFORMS:  # each costs a dozen requests
        raise OciBuildError(f"{where}: {len(manifests)} manifests; refusing more than "
                            f"{MAX_PLATFORMS}")
    for i, raw in enumerate(manifests):
        entry = Descriptor.from_json(raw, where=f"{where} manifests[{i}]")
        if (entry.platform or {}).get("os") != "unknown":  # attestation manifests of buildkit
            found.append(entry.digest)
    return found


def _attached(transport: Transport, ref: Reference, subject: str, public_key, key_name: str,
              work_dir: str) -> Tuple[List[VerifiedAttestation], List[VerifiedReferrer]]:
    """The subject's attestations, and its referrers each matched to one of them."""
    signed = verified_attestations(transport, ref, subject, public_key, key_name, work_dir)
    held = {(predicate.predicate_type, predicate.digest) for _, predicate in signed}
    referrers, unsigned = [], []
    for entry, listed_type in referrer_check.listed(transport, ref, subject):
        checked = referrer_check.check(transport, ref, subject, entry, listed_type, work_dir)
        if checked is None:
            continue
        if (checked.predicate.predicate_type, checked.predicate.digest) not in held:
            unsigned.append(f"{checked.manifest_digest} ({checked.artifact_type})")
            continue
        referrers.append(VerifiedReferrer(subject, checked.artifact_type,
                                          checked.manifest_digest, checked.blob_digest))
    if unsigned:
        raise OciBuildError(
            f"{ref.name}@{subject}: unsigned referrer(s) {', '.join(unsigned)}: no attestation "
            f"in {ref.name}:{cosign.attestation_tag(subject)} signed with {key_name} holds "
            "what they say, so they may be forged (scanners read them); delete them, or "
            "publish again with the signing key")
    return [a for a, _ in signed], referrers


def verify(request: VerifyRequest, transport: Transport) -> VerifyResult:
    ref = parse_reference(request.image)
    public_key = cosign.load_public_key(
        read_file(request.public_key, "the public key", cosign.MAX_KEY), request.public_key)
    manifest = fetch_manifest(transport, ref, ref.digest or ref.tag or "latest")
    if ref.digest and manifest.digest != ref.digest:
        raise OciBuildError(f"{request.image}: the registry names {manifest.digest}")
    key_name = repr(request.public_key)
    with tempfile.TemporaryDirectory(prefix="ocibuild-verify-") as work_dir:
        good = _verified_signatures(transport, ref, manifest.digest, public_key, key_name,
                                    work_dir)
        attestations: List[VerifiedAttestation] = []
        referrers: List[VerifiedReferrer] = []
        for subject in _image_manifests(ref, manifest.digest, manifest.is_index,
                                        manifest.json()):
            signed, matched = _attached(transport, ref, validate_digest(subject), public_key,
                                        key_name, work_dir)
            attestations += signed
            referrers += matched
            found = {attestation.ARTIFACT_TYPES[a.predicate_type] for a in signed}
            missing = [t for t in request.require if t not in found]
            if missing:
                raise OciBuildError(f"{ref.name}@{subject} has no attestation of "
                                    f"{', '.join(missing)} signed with {key_name}; publish "
                                    "it again with the signing key")
    return VerifyResult(str(ref), manifest.digest, good, tuple(referrers), tuple(attestations))


def required_types(sbom: bool, provenance: bool) -> Tuple[str, ...]:
    """What an image built with (or without) SBOMs and provenance must have attached."""
    return (*(SBOMS if sbom else ()), *((IN_TOTO,) if provenance else ()))
