"""Read images from a registry: manifests and indexes by tag or digest, verified blobs.

Everything read is checked against its digest before it is used. A manifest asked for by
digest must hash to it; one asked for by tag is what the tag names *now* (its digest is
reported so it can be pinned). Blobs stream to a temp file, hashing as they go, and are
renamed into place only when digest and size match.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

from ocibuild import mediatypes
from ocibuild.atomic import TempFile, atomic_write
from ocibuild.digest import CHUNK, HashingWriter, bytes_digest, hex_of
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.layout import OciLayout, ResolvedImage, resolve_image
from ocibuild.platform import Platform, describe
from ocibuild.reference import Reference
from ocibuild.registry.transport import Transport

# The distribution spec lets registries refuse manifests over 4 MiB; read no more than that.
MAX_MANIFEST = 4 << 20


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as the registry sent it (the bytes are what the digest covers)."""

    digest: str
    media_type: str
    content: bytes

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEXES

    def json(self) -> dict:
        return json.loads(self.content)


def scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions or ('pull',))}"


def fetch_manifest(transport: Transport, ref: Reference, reference: str) -> Manifest:
    """`reference` is a tag or a digest of `ref`'s repository."""
    url = f"/v2/{ref.repository}/manifests/{reference}"
    response = transport.request("GET", url, scope=scope(ref.repository), stream=True,
                                 expected=(200,), headers={"Accept": mediatypes.MANIFEST_ACCEPT})
    content = response.raw.read(MAX_MANIFEST + 1, decode_content=True)
    response.close()
    where = f"{ref.name}@{reference}" if reference.startswith("sha256:") else f"{ref.name}:{reference}"
    if len(content) > MAX_MANIFEST:
        raise OciBuildError(f"{where}: the manifest is over {MAX_MANIFEST} bytes; refusing it")
    digest = bytes_digest(content)
    if reference.startswith("sha256:") and digest != reference:
        raise OciBuildError(f"{where}: the registry sent a manifest whose digest is {digest}, "
                            "not the one asked for; the registry or a proxy is corrupting it")
    try:
        raw = json.loads(content)
    except ValueError:
        raise OciBuildError(f"{where}: the manifest is not JSON") from None
    media_type = raw.get("mediaType") if isinstance(raw, dict) else None
    media_type = media_type or response.headers.get("Content-Type", "").split(";")[0].strip()
    if media_type not in (*mediatypes.INDEXES, *mediatypes.MANIFESTS):
        raise OciBuildError(f"{where}: media type {media_type!r} is neither an image manifest "
                            "nor an index; only OCI and Docker v2 schema 2 images are supported")
    return Manifest(digest, media_type, content)


def cached_manifest(transport: Transport, ref: Reference, reference: str,
                    cache_dir: Optional[str]) -> Manifest:
    """`fetch_manifest`, kept in `cache_dir` when asked for by digest (verified on reading).

    Content-addressed, so entries never go stale and a warm build needs no network."""
    if not cache_dir or not reference.startswith("sha256:"):
        return fetch_manifest(transport, ref, reference)
    path = os.path.join(cache_dir, hex_of(reference))
    try:
        with open(path, "rb") as f:
            content = f.read(MAX_MANIFEST + 1)
        with open(path + ".media-type") as f:
            media_type = f.read().strip()
        if bytes_digest(content) == reference:
            return Manifest(reference, media_type, content)
    except FileNotFoundError:
        pass
    manifest = fetch_manifest(transport, ref, reference)
    os.makedirs(cache_dir, exist_ok=True)
    atomic_write(path + ".media-type", manifest.media_type.encode())
    atomic_write(path, manifest.content)
    return manifest


def select_platform(index: Manifest, platform: Platform, where: str) -> Descriptor:
    """The one manifest of an index for `platform` (attestation entries are skipped)."""
    entries = [Descriptor.from_json(m, where=f"{where} manifests[{i}]")
               for i, m in enumerate(index.json().get("manifests") or [])]
    images = [d for d in entries if (d.platform or {}).get("os") != "unknown"]
    matching = {d.digest: d for d in images if platform.matches(d.platform)}
    if len(matching) != 1:
        found = ", ".join(describe(d.platform) for d in images) or "nothing"
        problem = "no image" if not matching else f"{len(matching)} images"
        raise OciBuildError(f"{where} has {problem} for platform {platform}; it has: {found}")
    return next(iter(matching.values()))


def image_manifest(transport: Transport, ref: Reference, reference: str, platform: Platform,
                   cache_dir: Optional[str] = None) -> List[Manifest]:
    """The manifests from `reference` down to one image: [index, ..., image manifest]."""
    chain = [cached_manifest(transport, ref, reference, cache_dir)]
    while chain[-1].is_index:
        if len(chain) > 4:
            raise OciBuildError(f"{ref.name}@{chain[0].digest}: indexes nested too deep")
        child = select_platform(chain[-1], platform, f"{ref.name}@{chain[-1].digest}")
        chain.append(cached_manifest(transport, ref, child.digest, cache_dir))
    return chain


def download_blob(transport: Transport, ref: Reference, descriptor: Descriptor,
                  path: str) -> None:
    """Stream one blob to `path`, verified; an existing file at `path` is trusted as is."""
    if os.path.exists(path):
        return
    url = f"/v2/{ref.repository}/blobs/{descriptor.digest}"
    response = transport.request("GET", url, scope=scope(ref.repository), stream=True)
    with TempFile(os.path.dirname(path)) as tmp:
        writer = HashingWriter(tmp.file)
        for chunk in response.iter_content(CHUNK):
            writer.write(chunk)
        response.close()
        if (writer.digest, writer.size) != (descriptor.digest, descriptor.size):
            raise OciBuildError(
                f"GET {transport.url(url)}: the blob has digest {writer.digest} and size "
                f"{writer.size}, not {descriptor.digest} and {descriptor.size}; not using it")
        tmp.commit(path, keep_existing=True)


def pull_to_layout(transport: Transport, ref: Reference, reference: str, platform: Platform,
                   out_dir: str, ref_name: Optional[str] = None) -> ResolvedImage:
    """Write the one image `reference` names for `platform` as an OCI layout in `out_dir`."""
    chain = image_manifest(transport, ref, reference, platform)
    layout = OciLayout(out_dir)
    manifest = chain[-1]
    for m in chain:
        layout.write_blob_bytes(m.content, m.media_type)
    body = manifest.json()
    descriptors: Sequence[dict] = [body.get("config"), *(body.get("layers") or [])]
    for i, raw in enumerate(descriptors):
        descriptor = Descriptor.from_json(raw, where=f"{ref.name}@{manifest.digest} blob {i}")
        download_blob(transport, ref, descriptor, layout.blob_path(descriptor.digest))
    annotations = {"org.opencontainers.image.ref.name": ref_name} if ref_name else None
    layout.write_index([Descriptor(manifest.media_type, manifest.digest, len(manifest.content),
                                   annotations=annotations)])
    layout.write_oci_layout_file()
    return resolve_image(layout)


def blob_url(transport: Transport, ref: Reference, digest: str) -> str:
    hex_of(digest)
    return transport.url(f"/v2/{ref.repository}/blobs/{digest}")
