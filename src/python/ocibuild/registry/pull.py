"""Read images from a registry: manifests and indexes by tag or digest, verified blobs.

Everything read is checked against its digest before it is used. A manifest asked for by
digest must hash to it; one asked for by tag is what the tag names *now* (its digest is
reported so it can be pinned). Blobs stream to a temp file, hashing as they go, and are
renamed into place only when digest and size match; a blob stops downloading as soon as it
passes its declared size, and has a deadline that grows with that size.
Manifests are read up to 4 MiB and parsed with the typed loaders of `ocibuild.untrusted`:
a document of the wrong shape is one clear error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

from ocibuild import mediatypes
from ocibuild.atomic import TempFile, atomic_directory, atomic_write
from ocibuild.digest import HashingWriter, bytes_digest, hex_of
from ocibuild.errors import OciBuildError
from ocibuild.image.image import Image
from ocibuild.image.kind import check_claim, document_type
from ocibuild.image.manifest import Descriptor
from ocibuild.layout import OciLayout, resolve_image
from ocibuild.platform import Platform, describe
from ocibuild.reference import Reference
from ocibuild.registry.transport import Transport
from ocibuild.untrusted import field, load_json

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
        return load_json(self.content, f"the manifest {self.digest}", max_bytes=MAX_MANIFEST)


def scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions or ('pull',))}"


def fetch_manifest(transport: Transport, ref: Reference, reference: str) -> Manifest:
    """`reference` is a tag or a digest of `ref`'s repository."""
    path = f"/v2/{ref.repository}/manifests/{reference}"
    response = transport.request("GET", path, scope=scope(ref.repository), stream=True,
                                 expected=(200,), headers={"Accept": mediatypes.MANIFEST_ACCEPT})
    content = transport.read(response, MAX_MANIFEST, "GET", transport.url(path))
    where = f"{ref.name}@{reference}" if reference.startswith("sha256:") else f"{ref.name}:{reference}"
    if len(content) > MAX_MANIFEST:
        raise OciBuildError(f"{where}: the manifest is over {MAX_MANIFEST} bytes; refusing it")
    digest = bytes_digest(content)
    if reference.startswith("sha256:") and digest != reference:
        raise OciBuildError(f"{where}: the registry sent a manifest whose digest is {digest}, "
                            "not the one asked for; the registry or a proxy is corrupting it")
    content_type = response.headers.get("Content-Type", "")
    return Manifest(digest, manifest_media_type(content, content_type, where), content)


def manifest_media_type(content: bytes, content_type: str, where: str) -> str:
    """The manifest's kind from its own bytes (`ocibuild.image.kind`); the answer's
    Content-Type may only agree with it, never decide it."""
    doc = load_json(content, f"{where}: the manifest", max_bytes=MAX_MANIFEST)
    return document_type(doc, f"{where}: the manifest", claimed=content_type,
                         claimed_by="the registry's Content-Type")


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
        if bytes_digest(content) == reference:  # the kind from the bytes, as when fetched
            return Manifest(reference, manifest_media_type(content, "", f"{ref.name}@{reference}"), content)
    except FileNotFoundError:
        pass
    manifest = fetch_manifest(transport, ref, reference)
    os.makedirs(cache_dir, exist_ok=True)
    atomic_write(path + ".media-type", manifest.media_type.encode())
    atomic_write(path, manifest.content)
    return manifest


def select_platform(index: Manifest, platform: Platform, where: str) -> Descriptor:
    """The one manifest of an index for `platform` (attestation entries are skipped)."""
    entries = [_platform_entry(m, f"{where} manifests[{i}]")
               for i, m in enumerate(field(index.json(), "manifests", list, where) or [])]
    images = [d for d in entries if (d.platform or {}).get("os") != "unknown"]
    matching = {d.digest: d for d in images if platform.matches(d.platform)}
    if len(matching) != 1:
        found = ", ".join(describe(d.platform) for d in images) or "nothing"
        problem = "no image" if not matching else f"{len(matching)} images"
        raise OciBuildError(f"{where} has {problem} for platform {platform}; it has: {found}")
    return next(iter(matching.values()))


def _platform_entry(raw: object, where: str) -> Descriptor:
    """An index entry, its `platform` an object of strings if present."""
    descriptor = Descriptor.from_json(raw, where=where)
    if descriptor.platform is not None:
        if not isinstance(descriptor.platform, dict):
            raise OciBuildError(f"{where}: `platform` must be a JSON object")
        for key in ("os", "architecture", "variant"):
            field(descriptor.platform, key, str, f"{where} platform")
    return descriptor


def index_platforms(index: Manifest, where: str) -> List[str]:
    """`os/arch[/variant]` of each image an index offers (attestations left out)."""
    entries = [_platform_entry(m, f"{where} manifests[{i}]")
               for i, m in enumerate(field(index.json(), "manifests", list, where) or [])]
    return [describe(d.platform) for d in entries if (d.platform or {}).get("os") != "unknown"]


def manifest_blobs(manifest: Manifest, where: str) -> List[Descriptor]:
    """An image manifest's config and layers, in that order, each a checked descriptor."""
    body = manifest.json()
    raw: Sequence[object] = [field(body, "config", dict, where, required=True),
                             *(field(body, "layers", list, where) or [])]
    return [Descriptor.from_json(r, where=f"{where} blob {i}") for i, r in enumerate(raw)]


def image_manifest(transport: Transport, ref: Reference, reference: str, platform: Platform,
                   cache_dir: Optional[str] = None) -> List[Manifest]:
    """The manifests from `reference` down to one image: [index, ..., image manifest]."""
    chain = [cached_manifest(transport, ref, reference, cache_dir)]
    while chain[-1].is_index:
        if len(chain) > 4:
            raise OciBuildError(f"{ref.name}@{chain[0].digest}: indexes nested too deep")
        child = select_platform(chain[-1], platform, f"{ref.name}@{chain[-1].digest}")
        chain.append(cached_manifest(transport, ref, child.digest, cache_dir))
        check_claim(chain[-1].media_type, child.media_type, f"the index {chain[-2].digest}",
                    f"{ref.name}@{child.digest}", exact=True)
        if len(chain[-1].content) != child.size:
            raise OciBuildError(f"{ref.name}@{child.digest}: the index {chain[-2].digest} says "
                                f"{child.size} bytes, the manifest has {len(chain[-1].content)}; "
                                "a registry refuses such an index, so an image built on it "
                                "could not be pushed")
    return chain


def download_blob(transport: Transport, ref: Reference, descriptor: Descriptor,
                  path: str) -> None:
    """Stream one blob to `path`, verified; an existing file at `path` is trusted as is."""
    if os.path.exists(path):
        return
    url = transport.url(f"/v2/{ref.repository}/blobs/{descriptor.digest}")
    response = transport.request("GET", url, scope=scope(ref.repository), stream=True,
                                 deadline_s=transport.blob_deadline_s(descriptor.size))
    with TempFile(os.path.dirname(path)) as tmp:
        writer = HashingWriter(tmp.file)
        try:
            for chunk in transport.chunks(response, "GET", url):
                writer.write(chunk)
                if writer.size > descriptor.size:  # stop now: the rest may be endless
                    raise OciBuildError(
                        f"GET {url}: the registry sent more than the blob's {descriptor.size} "
                        f"bytes ({descriptor.digest}); not using it")
        finally:
            response.close()
        if (writer.digest, writer.size) != (descriptor.digest, descriptor.size):
            raise OciBuildError(
                f"GET {url}: the blob has digest {writer.digest} and size "
                f"{writer.size}, not {descriptor.digest} and {descriptor.size}; not using it")
        tmp.commit(path, keep_existing=True)


def pull_to_layout(transport: Transport, ref: Reference, reference: str, platform: Platform,
                   out_dir: str, ref_name: Optional[str] = None, *,
                   layers: bool = True) -> Image:
    """Write the one image `reference` names for `platform` as an OCI layout in `out_dir`;
    without `layers`, only its manifests and config (enough to build on it: a push fetches a
    layer later only if the destination lacks it).

    `out_dir` appears only complete: the layout is written beside it and renamed into place,
    so a failed or interrupted pull leaves no half-written layout; an `out_dir` that holds
    anything already is the user's and is refused, never overwritten."""
    chain = image_manifest(transport, ref, reference, platform)
    manifest = chain[-1]
    blobs = manifest_blobs(manifest, f"{ref.name}@{manifest.digest}")[:None if layers else 1]
    with atomic_directory(out_dir) as tmp:
        layout = OciLayout(tmp)
        for m in chain:
            layout.write_blob_bytes(m.content, m.media_type)
        for descriptor in blobs:
            download_blob(transport, ref, descriptor, layout.blob_path(descriptor.digest))
        annotations = {"org.opencontainers.image.ref.name": ref_name} if ref_name else None
        layout.write_index([Descriptor(manifest.media_type, manifest.digest,
                                       len(manifest.content), annotations=annotations)])
        layout.write_oci_layout_file()
    return resolve_image(OciLayout(out_dir))


def blob_url(transport: Transport, ref: Reference, digest: str) -> str:
    hex_of(digest)
    return transport.url(f"/v2/{ref.repository}/blobs/{digest}")
