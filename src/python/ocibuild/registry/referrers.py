"""Push the OCI 1.1 referrers a layout holds for pushed images (their SBOMs), after them.

Each artifact manifest goes up like an image (its blobs: the empty config `{}` and the
attached blob; then the manifest by digest), only once its subject is in the registry.
A registry that serves the referrers API says so by answering that PUT with an
`OCI-Subject` header, and lists the manifest under the subject by itself. One that does not
(distribution 2 and 3, for instance) gets the referrers tag schema of distribution-spec 1.1:
an image index tagged `sha256-<hex of the subject digest>` listing the subject's artifact
manifests, merged with the one already there (read, add what is missing, write back: not
atomic, so two concurrent pushes of referrers of the same image can lose one; the spec
accepts this race, a re-push repairs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

from ocibuild import canonical_json, mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.image.referrer import REFERRER, referrers_tag
from ocibuild.layout import OciLayout
from ocibuild.registry.pull import fetch_manifest
from ocibuild.registry.upload import PushResult, PushTarget, exists, push_blobs
from ocibuild.reference import Reference
from ocibuild.untrusted import field, str_map

# As many as verify reads (`ocibuild.registry.referrer_check`).
MAX_LISTED = 256


@dataclass(frozen=True)
class _Referrer:
    entry: dict  # its descriptor as the referrers list shows it
    content: bytes
    subject: str
    blobs: Sequence[Descriptor]


def layout_referrers(layout: OciLayout, subjects: Sequence[str]) -> List[_Referrer]:
    """The artifact manifests of `layout`'s index.json whose subject is one of `subjects`."""
    found = []
    where = f"layout {layout.path!r} index.json"
    for i, raw in enumerate(field(layout.read_index(), "manifests", list, where, required=True)):
        listed = Descriptor.from_json(raw, where=f"{where} manifests[{i}]")
        if REFERRER not in (listed.annotations or {}):
            continue
        here = f"layout {layout.path!r}: the referrer {listed.digest}"
        content, manifest = layout.read_json_blob(listed.digest)
        about = field(manifest, "subject", dict, here, required=True)
        subject = Descriptor.from_json(about, where=f"{here} subject").digest
        if subject not in subjects:
            continue
        annotations = str_map(manifest, "annotations", here)
        entry = {"mediaType": mediatypes.OCI_MANIFEST, "digest": listed.digest,
                 "size": len(content),
                 "artifactType": field(manifest, "artifactType", str, here, required=True),
                 **({"annotations": annotations} if annotations else {})}
        layers = field(manifest, "layers", list, here, required=True)
        blobs = [Descriptor.from_json(d, where=here)
                 for d in (field(manifest, "config", dict, here, required=True), *layers)]
        if len(blobs) != 2:
            raise OciBuildError(f"{here}: {len(layers)} layers; an SBOM or provenance "
                                "artifact has one")
        found.append(_Referrer(entry, content, subject, blobs))
    return found


def _put(t: PushTarget, referrer: _Referrer) -> bool:
    """The manifest by digest; True if the registry serves the referrers API."""
    digest = referrer.entry["digest"]
    if exists(t, "manifests", digest)[0]:
        return False  # unknown: the tag schema is then written, and is harmless
    response = t.transport.request(
        "PUT", f"/v2/{t.repo}/manifests/{digest}", scope=t.scope, expected=(201,),
        data=referrer.content, headers={"Content-Type": mediatypes.OCI_MANIFEST})
    return bool(response.headers.get("OCI-Subject"))


def _listed(t: PushTarget, dest: Reference, tag: str) -> List[dict]:
    """The entries of the referrers tag index already there, each a descriptor: anyone who
    can push may have written it, so it is read as untrusted, and one that is not an index
    of descriptors is refused rather than merged into what we write."""
    where = f"{dest.name}:{tag} (the referrers tag index)"
    index = fetch_manifest(t.transport, dest, tag)
    manifests = field(index.json(), "manifests", list, where, required=True) \
        if index.is_index else None
    if manifests is None or len(manifests) > MAX_LISTED:
        raise OciBuildError(f"{where} is not an image index of at most {MAX_LISTED} "
                            "descriptors; delete the tag and publish again")
    for i, raw in enumerate(manifests):
        Descriptor.from_json(raw, where=f"{where} manifests[{i}]")
        field(raw, "artifactType", str, f"{where} manifests[{i}]")
    return manifests


def _update_tag(t: PushTarget, dest: Reference, subject: str, entries: List[dict]) -> bool:
    """The referrers tag of `subject` lists `entries` too; True if it was written."""
    tag = referrers_tag(subject)
    present, _ = exists(t, "manifests", tag)
    listed = _listed(t, dest, tag) if present else []
    known = {m["digest"] for m in listed}
    new = [e for e in entries if e["digest"] not in known]
    if not new:
        return False
    index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
             "manifests": [*listed, *new]}
    t.transport.request("PUT", f"/v2/{t.repo}/manifests/{tag}", scope=t.scope,
                        expected=(201,), data=canonical_json.dumps(index),
                        headers={"Content-Type": mediatypes.OCI_INDEX})
    return True


def push_referrers(t: PushTarget, dest: Reference, subjects: Sequence[str], jobs: int,
                   result: PushResult) -> None:
    """After `subjects` (manifest digests) are pushed: their referrers in `t.layout`."""
    referrers = layout_referrers(t.layout, subjects)
    blobs = list({d.digest: d for r in referrers for d in r.blobs}.values())
    for descriptor, outcome in zip(blobs, push_blobs(t, blobs, jobs)):
        if outcome == "uploaded":
            result.uploaded.append(descriptor.digest)
    by_subject: Dict[str, List[dict]] = {}
    api = False
    for referrer in referrers:
        api = _put(t, referrer) or api
        by_subject.setdefault(referrer.subject, []).append(referrer.entry)
        result.referrers.append(referrer.entry["digest"])
    if api:
        return
    for subject, entries in by_subject.items():
        if _update_tag(t, dest, subject, entries):
            result.tags_written.append(referrers_tag(subject))
