"""The images cosign keeps beside an image: `sha256-<hex>.sig` (signatures) and
`sha256-<hex>.att` (attestations), each an image manifest whose layers are the signed
documents (`ocibuild.cosign` builds one).

Reading: the manifest under the tag is untrusted (anyone who can push may have written it):
it must be an image manifest whose layers are well-formed descriptors with string
annotations, at most `MAX_LAYERS` of them; anything else is one clear error naming the tag.
Writing: the new layers merged with those already there (read, add, write back; as cosign
does, not atomic), the blobs first, then the manifest under the tag. Blobs are read back
only by digest (`small_blob`), bounded by their declared size, verified while streaming.
"""

from __future__ import annotations

import os
from typing import List, Sequence, Tuple

from ocibuild import cosign, mediatypes
from ocibuild.digest import bytes_digest, hex_of
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.layout import OciLayout
from ocibuild.reference import Reference
from ocibuild.registry.pull import download_blob, fetch_manifest, scope
from ocibuild.registry.transport import Transport
from ocibuild.registry.upload import CHUNK_SIZE, JOBS, push_blobs, push_target
from ocibuild.untrusted import field

# More signatures or attestations than this on one image is not a set anyone made on purpose.
MAX_LAYERS = 64


def has_tag(transport: Transport, ref: Reference, tag: str) -> bool:
    response = transport.request("HEAD", f"/v2/{ref.repository}/manifests/{tag}",
                                 scope=scope(ref.repository), expected=(200, 404),
                                 headers={"Accept": mediatypes.MANIFEST_ACCEPT})
    return response.status_code == 200


def read_layers(transport: Transport, ref: Reference, tag: str) -> List[dict]:
    """The layers of the cosign image under `tag` (none if there is none), each checked to
    be a descriptor; returned as sent, so a merge keeps what other tools wrote on them."""
    if not has_tag(transport, ref, tag):
        return []
    where = f"{ref.name}:{tag}"
    manifest = fetch_manifest(transport, ref, tag)
    if manifest.is_index:
        raise OciBuildError(f"{where} is an image index, not a cosign signature or attestation "
                            "manifest; delete the tag and publish again")
    layers = field(manifest.json(), "layers", list, where, required=True)
    if len(layers) > MAX_LAYERS:
        raise OciBuildError(f"{where}: {len(layers)} layers; refusing more than {MAX_LAYERS}")
    for i, raw in enumerate(layers):
        Descriptor.from_json(raw, where=f"{where} layers[{i}]")
    return layers


def small_blob(transport: Transport, ref: Reference, descriptor: Descriptor, limit: int,
               where: str, work_dir: str) -> bytes:
    """A blob's bytes, verified against its digest; refused before any download if its
    descriptor says it is over `limit` (and the download stops at the declared size)."""
    if descriptor.size > limit:
        raise OciBuildError(f"{where}: {descriptor.size} bytes; refusing more than {limit}")
    path = os.path.join(work_dir, hex_of(descriptor.digest))
    download_blob(transport, ref, descriptor, path)
    with open(path, "rb") as f:
        return f.read()


def write(transport: Transport, dest: Reference, tag: str, existing: List[dict],
          new: Sequence[Tuple[dict, bytes]], work_dir: str) -> Tuple[str, bool]:
    """The cosign image under `tag` holds `existing` and each new (layer, blob) not already
    in it. (The manifest's digest, whether anything was written.)"""
    added = [(layer, data) for layer, data in new if layer not in existing]
    config, manifest = cosign.signature_image([*existing, *(layer for layer, _ in added)])
    if added:
        layout = OciLayout(work_dir)
        t = push_target(layout, dest, transport, None, JOBS, CHUNK_SIZE)
        blobs = [layout.write_blob_bytes(data, layer["mediaType"]) for layer, data in added]
        blobs.append(layout.write_blob_bytes(config, cosign.CONFIG_MEDIA_TYPE))
        list(push_blobs(t, list({b.digest: b for b in blobs}.values()), JOBS))
        transport.request("PUT", f"/v2/{dest.repository}/manifests/{tag}", scope=t.scope,
                          expected=(201,), data=manifest,
                          headers={"Content-Type": mediatypes.OCI_MANIFEST})
    return bytes_digest(manifest), bool(added)
