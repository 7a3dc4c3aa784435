"""Attach blobs to images of a layout as OCI 1.1 referrers (`ocibuild.image.referrer`).

The layout read is left as it is: the new blobs (each attached blob, its artifact manifest,
the empty config `{}`) and a new index.json (the old entries, then the artifact manifests)
go to another directory, which the caller lays over the old layout. So a cached process
never edits its input, and a layout is never half-attached.
"""

from __future__ import annotations

from typing import List

from ocibuild import mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.image.referrer import EMPTY, EMPTY_JSON, artifact_manifest
from ocibuild.layout.files import OciLayout
from ocibuild.protocol.referrers import Referrer, ReferrersRequest, ReferrersResult
from ocibuild.untrusted import local_path, read_file

# An SBOM of a large Debian base is a few MiB; more is not an SBOM we wrote.
MAX_BLOB = 64 << 20


def _subject(layout: OciLayout, digest: str) -> Descriptor:
    data, manifest = layout.read_json_blob(digest)
    media_type = manifest.get("mediaType") or mediatypes.OCI_MANIFEST
    if media_type not in mediatypes.MANIFESTS:
        raise OciBuildError(f"layout {layout.path!r}: {digest} is a {media_type}, not an image "
                            "manifest; attach to each platform's image, not to the index")
    return Descriptor(media_type, digest, len(data))


def attach(request: ReferrersRequest, out_dir: str) -> ReferrersResult:
    layout, out = OciLayout(local_path(request.layout, "referrers request: layout")), \
        OciLayout(out_dir)
    index = layout.read_index()
    entries: List[dict] = []
    referrers: List[Referrer] = []
    for blob in request.blobs:
        subject = _subject(layout, blob.subject)
        data = read_file(local_path(blob.path, "referrers request: blobs.path"),
                         "the blob to attach", MAX_BLOB)
        written = out.write_blob_bytes(data, blob.media_type)
        manifest = artifact_manifest(subject, written)
        out.write_blob_bytes(manifest.data, mediatypes.OCI_MANIFEST)
        entries.append(manifest.index_entry(blob.what))
        referrers.append(Referrer(manifest.digest, len(manifest.data), blob.media_type,
                                  subject.digest, written.digest))
    out.write_blob_bytes(EMPTY_JSON, EMPTY.media_type)
    known = {m.get("digest") for m in index["manifests"]}
    index = {**index, "manifests": [*index["manifests"],
                                    *(e for e in entries if e["digest"] not in known)]}
    out.write_index_json(index)
    return ReferrersResult(tuple(referrers))
