"""Signatures in a registry, as cosign keeps them (`ocibuild.cosign`): pushed after the image,
and verified with the SBOM and provenance referrers of a published image.

Push: the payload and the `.sig` image's config as blobs, then the manifest under the tag
`sha256-<hex>.sig`, its layers merged with those already there (read, add, write back; as
cosign does, not atomic). Verify: what a reference names now, a signature of exactly that
digest and repository made with the key, and each referrer of each image manifest attached
to it (subject, blob digest; a provenance statement's subject). Everything read is
untrusted: bounded, digest-verified, and only signature-verified payloads are believed.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Dict, List, Tuple

from ocibuild import cosign, mediatypes
from ocibuild.digest import bytes_digest, hex_of
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.image.referrer import referrers_tag
from ocibuild.layout import OciLayout
from ocibuild.protocol.sign import (KEY_ENV, SignRequest, SignResult, VerifiedReferrer,
                                    VerifyRequest, VerifyResult)
from ocibuild.reference import Reference, parse_reference
from ocibuild.registry.pull import download_blob, fetch_manifest, scope
from ocibuild.registry.transport import Transport
from ocibuild.registry.upload import CHUNK_SIZE, JOBS, push_blobs, push_target
from ocibuild.untrusted import read_file

IN_TOTO = "application/vnd.in-toto+json"
SBOMS = ("application/spdx+json", "application/vnd.cyclonedx+json")
# The referrers verify reads and checks (others, e.g. another tool's, are left alone).
CHECKED = (*SBOMS, IN_TOTO)
# More signatures than this on one image is not a signature set anyone made on purpose.
MAX_SIGNATURES = 64
MAX_REFERRERS = 256
# A referrer's blob (an SBOM of a large base) is a few MiB at most.
MAX_REFERRER_BLOB = 64 << 20


def _key(request: SignRequest) -> bytes:
    if request.key_file is not None:
        return read_file(request.key_file, "the signing key", cosign.MAX_KEY)
    pem = os.environ.get(KEY_ENV, "")
    if not pem.strip():
        raise OciBuildError(f"no signing key: ${KEY_ENV} is empty and the request names no "
                            "key file")
    return pem.encode()


def _has(transport: Transport, ref: Reference, tag: str) -> bool:
    response = transport.request("HEAD", f"/v2/{ref.repository}/manifests/{tag}",
                                 scope=scope(ref.repository), expected=(200, 404),
                                 headers={"Accept": mediatypes.MANIFEST_ACCEPT})
    return response.status_code == 200


def _layers(transport: Transport, ref: Reference, tag: str) -> List[dict]:
    """The layers of the `.sig` image under `tag` (none if there is none)."""
    if not _has(transport, ref, tag):
        return []
    layers = fetch_manifest(transport, ref, tag).json().get("layers")
    if not isinstance(layers, list) or not all(isinstance(d, dict) for d in layers):
        raise OciBuildError(f"{ref.name}:{tag}: the signature manifest's `layers` is not a "
                            "list of descriptors")
    if len(layers) > MAX_SIGNATURES:
        raise OciBuildError(f"{ref.name}:{tag}: {len(layers)} signatures; refusing more than "
                            f"{MAX_SIGNATURES}")
    return layers


def sign_and_push(request: SignRequest, transport: Transport, work_dir: str) -> SignResult:
    key = cosign.load_private_key(_key(request), request.key_file or f"${KEY_ENV}")
    dest = parse_reference(request.to)
    if dest.tag or dest.digest:
        raise OciBuildError(f"sign request: `to` {request.to!r} must be REGISTRY/REPOSITORY, "
                            "without a tag or digest")
    data = cosign.payload(dest.name, request.manifest_digest)
    signature = cosign.Signature(data, cosign.sign(key, data))
    tag = cosign.signature_tag(request.manifest_digest)
    layers = _layers(transport, dest, tag)
    written = signature.layer not in layers
    layout = OciLayout(work_dir)
    config, manifest = cosign.signature_image([*layers, *([signature.layer] if written else [])])
    if written:
        t = push_target(layout, dest, transport, None, JOBS, CHUNK_SIZE)
        blobs = [layout.write_blob_bytes(data, cosign.PAYLOAD_MEDIA_TYPE),
                 layout.write_blob_bytes(config, cosign.CONFIG_MEDIA_TYPE)]
        list(push_blobs(t, blobs, JOBS))
        transport.request("PUT", f"/v2/{dest.repository}/manifests/{tag}", scope=t.scope,
                          expected=(201,), data=manifest,
                          headers={"Content-Type": mediatypes.OCI_MANIFEST})
    return SignResult(f"{dest.name}:{tag}", bytes_digest(manifest), signature.layer["digest"],
                      signature.signature, cosign.public_key_pem(key).decode(), written)


def _small_blob(transport: Transport, ref: Reference, raw: dict, limit: int, where: str,
                work_dir: str) -> Tuple[Descriptor, bytes]:
    descriptor = Descriptor.from_json(raw, where=where)
    if descriptor.size > limit:
        raise OciBuildError(f"{where}: {descriptor.size} bytes; refusing more than {limit}")
    path = os.path.join(work_dir, hex_of(descriptor.digest))
    download_blob(transport, ref, descriptor, path)
    with open(path, "rb") as f:
        return descriptor, f.read()


def _verified_signatures(transport: Transport, ref: Reference, digest: str, public_key,
                         key_name: str, work_dir: str) -> int:
    tag = cosign.signature_tag(digest)
    layers = _layers(transport, ref, tag)
    if not layers:
        raise OciBuildError(f"{ref.name}@{digest} is not signed: the registry has no "
                            f"{ref.name}:{tag}")
    good, problems = 0, []
    for i, raw in enumerate(layers):
        where = f"{ref.name}:{tag} layers[{i}]"
        annotations = raw.get("annotations")
        signature = annotations.get(cosign.SIGNATURE_ANNOTATION) \
            if isinstance(annotations, dict) else None
        if raw.get("mediaType") != cosign.PAYLOAD_MEDIA_TYPE or not isinstance(signature, str):
            continue
        _, data = _small_blob(transport, ref, raw, cosign.MAX_PAYLOAD, where, work_dir)
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


def _listed_referrers(transport: Transport, ref: Reference, subject: str) -> List[dict]:
    """The referrers API's list, else the referrers tag schema's."""
    path = f"/v2/{ref.repository}/referrers/{subject}"
    response = transport.request("GET", path, scope=scope(ref.repository), stream=True,
                                 expected=(200, 404), headers={"Accept": mediatypes.OCI_INDEX})
    if response.status_code == 200 and "json" in response.headers.get("Content-Type", ""):
        content = transport.read(response, 4 << 20, "GET", transport.url(path))
        manifests = json.loads(content).get("manifests")
    else:
        response.close()
        tag = referrers_tag(subject)
        manifests = fetch_manifest(transport, ref, tag).json().get("manifests") \
            if _has(transport, ref, tag) else []
    if not isinstance(manifests, list) or len(manifests) > MAX_REFERRERS:
        raise OciBuildError(f"{ref.name}: the referrers of {subject} are not a list of at most "
                            f"{MAX_REFERRERS} descriptors")
    return [m for m in manifests if isinstance(m, dict)]


def _check_referrer(transport: Transport, ref: Reference, subject: str, entry: dict,
                    work_dir: str) -> VerifiedReferrer:
    where = f"{ref.name}@{entry.get('digest')} (a referrer of {subject})"
    manifest = fetch_manifest(transport, ref, str(entry.get("digest"))).json()
    if (manifest.get("subject") or {}).get("digest") != subject:
        raise OciBuildError(f"{where}: its subject is not {subject}")
    layers = manifest.get("layers")
    if not isinstance(layers, list) or len(layers) != 1:
        raise OciBuildError(f"{where}: an SBOM or provenance artifact has one layer")
    blob, data = _small_blob(transport, ref, layers[0], MAX_REFERRER_BLOB, where, work_dir)
    artifact_type = str(manifest.get("artifactType") or blob.media_type)
    if artifact_type == IN_TOTO:
        try:
            subjects = [s["digest"]["sha256"] for s in json.loads(data)["subject"]]
        except (ValueError, KeyError, TypeError):
            raise OciBuildError(f"{where}: not an in-toto statement") from None
        if hex_of(subject) not in subjects:
            raise OciBuildError(f"{where}: the provenance is about {', '.join(subjects)}, not "
                                f"about {subject}")
    elif subject.encode() not in data:
        raise OciBuildError(f"{where}: the {artifact_type} document does not name {subject}")
    return VerifiedReferrer(subject, artifact_type, str(entry["digest"]), blob.digest)


def _image_manifests(digest: str, is_index: bool, index: dict) -> List[str]:
    """The manifests referrers hang from: the image's, or each platform's of an index."""
    if not is_index:
        return [digest]
    manifests = index.get("manifests")
    return [str(m.get("digest")) for m in manifests if isinstance(m, dict)
            and (m.get("platform") or {}).get("os") != "unknown"] \
        if isinstance(manifests, list) else []


def verify(request: VerifyRequest, transport: Transport) -> VerifyResult:
    ref = parse_reference(request.image)
    public_key = cosign.load_public_key(
        read_file(request.public_key, "the public key", cosign.MAX_KEY), request.public_key)
    manifest = fetch_manifest(transport, ref, ref.digest or ref.tag or "latest")
    if ref.digest and manifest.digest != ref.digest:
        raise OciBuildError(f"{request.image}: the registry names {manifest.digest}")
    with tempfile.TemporaryDirectory(prefix="ocibuild-verify-") as work_dir:
        good = _verified_signatures(transport, ref, manifest.digest, public_key,
                                    repr(request.public_key), work_dir)
        referrers: List[VerifiedReferrer] = []
        for subject in _image_manifests(manifest.digest, manifest.is_index, manifest.json()):
            found: Dict[str, int] = {}
            for entry in _listed_referrers(transport, ref, subject):
                if entry.get("artifactType") in (*request.require, *CHECKED):
                    checked = _check_referrer(transport, ref, subject, entry, work_dir)
                    referrers.append(checked)
                    found[checked.artifact_type] = found.get(checked.artifact_type, 0) + 1
            missing = [t for t in request.require if t not in found]
            if missing:
                raise OciBuildError(f"{ref.name}@{subject} has no {', '.join(missing)} "
                                    "referrer; publish it again with them")
    return VerifyResult(str(ref), manifest.digest, good, tuple(referrers))


def required_types(sbom: bool, provenance: bool) -> Tuple[str, ...]:
    """What an image built with (or without) SBOMs and provenance must have attached."""
    return (*(SBOMS if sbom else ()), *((IN_TOTO,) if provenance else ()))
