"""An image's SBOMs and provenance as cosign attestations in a registry: signed by the sign
process (the only one that holds the key) right after the push, verified by `verify`.

Attest: for each SBOM and provenance referrer of the pushed image in its layout (the
image's, or each platform's of an index), the in-toto statement of that document about that
manifest (`ocibuild.attestation`), in a DSSE envelope signed with the key (`ocibuild.dsse`),
added to the manifest's `sha256-<hex>.att` image. Verify: each envelope of a predicate type
this tool reads must verify with the key, its statement must be about exactly that
manifest, and its predicate must read as its type says; anything else is a failure.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Tuple

from ocibuild import attestation, cosign, dsse, mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.layout import OciLayout
from ocibuild.protocol.sign import PushedAttestations, VerifiedAttestation
from ocibuild.reference import Reference
from ocibuild.registry import cosign_store
from ocibuild.registry.referrers import layout_referrers
from ocibuild.registry.transport import Transport
from ocibuild.untrusted import field, read_bounded

# An envelope is its statement in base64 (4/3 of it) plus a signature.
MAX_ENVELOPE = attestation.MAX_DOCUMENT * 4 // 3 + (64 << 10)


def layout_subjects(layout: OciLayout, digest: str) -> List[str]:
    """The manifests referrers hang from: the image's, or each platform's of an index."""
    _, doc = layout.read_json_blob(digest)
    where = f"layout {layout.path!r}: {digest}"
    if field(doc, "mediaType", str, where) not in mediatypes.INDEXES:
        return [digest]
    entries = [Descriptor.from_json(m, where=f"{where} manifests[{i}]")
               for i, m in enumerate(field(doc, "manifests", list, where, required=True))]
    return [e.digest for e in entries if (e.platform or {}).get("os") != "unknown"]


def _document(layout: OciLayout, descriptor: Descriptor) -> bytes:
    with layout.open_blob(descriptor.digest) as f:
        return read_bounded(f, attestation.MAX_DOCUMENT, f"the layout's blob {descriptor.digest}")


def attest_and_push(transport: Transport, dest: Reference, layout_dir: str, digest: str,
                    private_key: Any, work_dir: str) -> Tuple[PushedAttestations, ...]:
    layout = OciLayout(layout_dir)
    new: Dict[str, List[Tuple[dict, bytes]]] = {}
    types: Dict[str, List[str]] = {}
    for referrer in layout_referrers(layout, layout_subjects(layout, digest)):
        artifact_type = referrer.entry["artifactType"]
        if artifact_type not in attestation.ARTIFACT_TYPES.values():
            continue
        where = f"the layout's {artifact_type} referrer {referrer.entry['digest']}"
        data = _document(layout, referrer.blobs[1])
        # What verify would refuse is not signed: a document about another image, say.
        attestation.read_document(artifact_type, data, referrer.subject, where)
        predicate_type, predicate = attestation.predicate_of(artifact_type, data, where)
        envelope = dsse.envelope(private_key, attestation.statement(
            predicate_type, predicate, referrer.subject, dest.name))
        new.setdefault(referrer.subject, []).append(
            (cosign.attestation_layer(envelope, predicate_type), envelope))
        types.setdefault(referrer.subject, []).append(predicate_type)
    pushed = []
    for i, (subject, layers) in enumerate(sorted(new.items())):
        tag = cosign.attestation_tag(subject)
        existing = cosign_store.read_layers(transport, dest, tag)
        manifest_digest, written = cosign_store.write(
            transport, dest, tag, existing, layers, os.path.join(work_dir, f"att{i}"))
        pushed.append(PushedAttestations(f"{dest.name}:{tag}", manifest_digest,
                                         tuple(types[subject]), written))
    return tuple(pushed)


def verified_attestations(transport: Transport, ref: Reference, subject: str, public_key: Any,
                          key_name: str, work_dir: str
                          ) -> List[Tuple[VerifiedAttestation, attestation.Predicate]]:
    tag = cosign.attestation_tag(subject)
    found = []
    for i, raw in enumerate(cosign_store.read_layers(transport, ref, tag)):
        where = f"{ref.name}:{tag} layers[{i}]"
        layer = Descriptor.from_json(raw, where=where)
        said = field(layer.annotations or {}, cosign.PREDICATE_TYPE_ANNOTATION, str, where)
        if layer.media_type != cosign.DSSE_MEDIA_TYPE or \
                said not in attestation.ARTIFACT_TYPES:
            continue  # another tool's attestation: left alone, and counted for nothing
        data = cosign_store.small_blob(transport, ref, layer, MAX_ENVELOPE, where, work_dir)
        body = dsse.open_envelope(data, public_key, key_name, where)
        predicate = attestation.read_statement(body, subject, where)
        if predicate.predicate_type != said:
            raise OciBuildError(f"{where}: the layer says {said}, but its statement holds a "
                                f"{predicate.predicate_type} predicate")
        found.append((VerifiedAttestation(subject, said, layer.digest), predicate))
    return found
