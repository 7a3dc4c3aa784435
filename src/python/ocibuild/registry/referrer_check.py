"""Read an image manifest's OCI 1.1 referrers from a registry the way `verify` believes
them: the listing is only a list of pointers, everything it points to is read by digest.

The list comes from the referrers API and from the referrers tag schema's index (which
anyone who can push may have written, and nothing signs), both, since readers differ in
which they read. Each entry must be a descriptor
with a well-formed digest, so a "digest" that is really a tag (which would be fetched
unverified) is refused; each manifest is fetched by that digest, must hash to it and have
its size, and must be an artifact manifest whose `subject` is the image manifest. Its type
is decided from what it says of itself in every place a reader might look (the listing's
`artifactType`, the manifest's, its config's and its layer's media type): when any of them
names an SBOM or provenance format (any spelling: `text/spdx`, a `; charset` parameter)
they must all agree on one of the types this tool signs, so a document cannot hide from
this check by lying in one place, or by a variant spelling, while a scanner reads it. Its one blob is fetched by
digest and read as that format, in canonical JSON (`ocibuild.attestation.read_referrer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ocibuild import attestation, mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.image.referrer import EMPTY_MEDIA_TYPE, referrers_tag
from ocibuild.reference import Reference
from ocibuild.registry.cosign_store import has_tag, small_blob
from ocibuild.registry.pull import MAX_MANIFEST, fetch_manifest, scope
from ocibuild.registry.transport import Transport
from ocibuild.untrusted import field, load_json, shown

CHECKED = (attestation.SPDX_MEDIA_TYPE, attestation.CYCLONEDX_MEDIA_TYPE,
           attestation.IN_TOTO_MEDIA_TYPE)
# A type naming one of these is an SBOM or provenance to some reader (`text/spdx`,
# `application/vnd.cyclonedx+xml`, `application/spdx+json; charset=utf-8`, Syft's own):
# if it is not exactly one this tool signs, nothing vouches for it.
SBOM_WORDS = ("spdx", "cyclonedx", "in-toto", "intoto", "syft", "sbom", "slsa", "provenance")
MAX_REFERRERS = 256


def _sbom_like(media_type: Optional[str]) -> bool:
    return media_type is not None and any(w in media_type.lower() for w in SBOM_WORDS)


@dataclass(frozen=True)
class CheckedReferrer:
    manifest_digest: str
    artifact_type: str
    blob_digest: str
    predicate: attestation.Predicate


def _entries(manifests: object, where: str) -> List[Tuple[Descriptor, Optional[str]]]:
    if not isinstance(manifests, list) or len(manifests) > MAX_REFERRERS:
        raise OciBuildError(f"{where}: `manifests` must be a list of at most {MAX_REFERRERS} "
                            "descriptors")
    entries, seen = [], set()
    for i, raw in enumerate(manifests):
        here = f"{where} manifests[{i}]"
        descriptor = Descriptor.from_json(raw, where=here)
        if descriptor.digest not in seen:
            seen.add(descriptor.digest)
            entries.append((descriptor, field(raw, "artifactType", str, here)))
    return entries


def listed(transport: Transport, ref: Reference, subject: str
           ) -> List[Tuple[Descriptor, Optional[str]]]:
    """What the referrers API lists and what the referrers tag schema's index lists, both:
    a client that finds the API reads only it, one that does not reads only the tag, and a
    registry may serve both (a tag written by an older client), so a referrer in either is
    one some reader believes. (descriptor, artifactType), each digest once."""
    path = f"/v2/{ref.repository}/referrers/{subject}"
    response = transport.request("GET", path, scope=scope(ref.repository), stream=True,
                                 expected=(200, 404), headers={"Accept": mediatypes.OCI_INDEX})
    found: List[Tuple[Descriptor, Optional[str]]] = []
    if response.status_code == 200 and "json" in response.headers.get("Content-Type", ""):
        where = f"{ref.name}: the referrers of {subject}"
        content = transport.read(response, MAX_MANIFEST, "GET", transport.url(path))
        found = _entries(load_json(content, where, max_bytes=MAX_MANIFEST).get("manifests"),
                         where)
    else:
        response.close()
    tag = referrers_tag(subject)
    if has_tag(transport, ref, tag):
        index = fetch_manifest(transport, ref, tag)
        where = f"{ref.name}:{tag} (the referrers of {subject})"
        if not index.is_index:
            raise OciBuildError(f"{where} is a {index.media_type}, not an image index")
        seen = {d.digest for d, _ in found}
        found += [e for e in _entries(index.json().get("manifests"), where)
                  if e[0].digest not in seen]
    if len(found) > MAX_REFERRERS:
        raise OciBuildError(f"{ref.name}: {len(found)} referrers of {subject}; refusing more "
                            f"than {MAX_REFERRERS}")
    return found


def _one_type(listed_type: Optional[str], manifest: dict, config: Descriptor,
              layers: List[Descriptor], where: str) -> Optional[str]:
    """The artifact's type if it claims, anywhere, to be a type verify reads; None if not."""
    artifact_type = field(manifest, "artifactType", str, where) or config.media_type
    said = [listed_type, artifact_type, config.media_type, *(d.media_type for d in layers)]
    if not any(_sbom_like(t) for t in said):
        return None
    if listed_type != artifact_type or artifact_type not in CHECKED \
            or config.media_type not in (EMPTY_MEDIA_TYPE, artifact_type) \
            or len(layers) != 1 or layers[0].media_type != artifact_type:
        shown_types = ", ".join(shown(str(t), 80) for t in said)
        raise OciBuildError(f"{where}: its types disagree or are not ones verify reads "
                            f"(listed, artifactType, config, layers: {shown_types}); an SBOM "
                            f"or provenance artifact is one of {', '.join(CHECKED)}, says it "
                            "everywhere and has one layer")
    return artifact_type


def check(transport: Transport, ref: Reference, subject: str, entry: Descriptor,
          listed_type: Optional[str], work_dir: str) -> Optional[CheckedReferrer]:
    """The referrer `entry` read and checked, or None when it is no SBOM or provenance."""
    where = f"{ref.name}@{entry.digest} (a referrer of {subject})"
    manifest = fetch_manifest(transport, ref, entry.digest)  # verified against the digest
    if manifest.is_index:
        raise OciBuildError(f"{where} is an image index, not an artifact manifest")
    if len(manifest.content) != entry.size:
        raise OciBuildError(f"{where}: {len(manifest.content)} bytes, but listed as "
                            f"{entry.size}")
    doc = manifest.json()
    config = Descriptor.from_json(field(doc, "config", dict, where, required=True),
                                  where=f"{where} config")
    layers = [Descriptor.from_json(d, where=f"{where} layers[{i}]")
              for i, d in enumerate(field(doc, "layers", list, where, required=True))]
    artifact_type = _one_type(listed_type, doc, config, layers, where)
    if artifact_type is None:
        return None
    about = Descriptor.from_json(field(doc, "subject", dict, where, required=True),
                                 where=f"{where} subject")
    if about.digest != subject:
        raise OciBuildError(f"{where}: its subject is {about.digest}, not {subject}")
    data = small_blob(transport, ref, layers[0], attestation.MAX_DOCUMENT, where, work_dir)
    predicate = attestation.read_referrer(artifact_type, data, subject, where)
    return CheckedReferrer(entry.digest, artifact_type, layers[0].digest, predicate)
