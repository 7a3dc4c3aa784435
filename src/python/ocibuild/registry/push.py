"""Push an image or an image index from an OCI layout: blobs, manifests by digest, then tags.

An image: its blobs, then its manifest by digest, then the tags. An index: every image's
blobs, then each image's manifest by digest, then the index by digest, then the tags.
A manifest (or index) the registry already holds by digest means what it references is
there too, so a re-push does no blob work at all. Otherwise each missing blob (HEAD 404) is
mounted or uploaded (`ocibuild.registry.upload`). Tags are written last, so a tag never names
an incomplete image. Then the referrers the layout holds for the pushed images
(`ocibuild.registry.referrers`: their SBOMs).
"""

from __future__ import annotations

from typing import Optional, Sequence

from ocibuild.image.image import Image
from ocibuild.image.index import Index
from ocibuild.image.manifest import Descriptor
from ocibuild.layout import OciLayout
from ocibuild.reference import Reference
from ocibuild.registry.referrers import push_referrers
from ocibuild.registry.transport import Transport
from ocibuild.registry.upload import (CHUNK_SIZE, JOBS, Fetch, PushResult, PushTarget, exists,
                                      push_blobs, push_target)


def _push_blobs(t: PushTarget, images: Sequence[Image], jobs: int, result: PushResult) -> None:
    """The blobs of `images`, each once, noted in `result` if uploaded or mounted."""
    blobs = list({d.digest: d for image in images
                  for d in (*(layer.descriptor for layer in image.layers),
                            image.config_descriptor)}.values())
    for descriptor, outcome in zip(blobs, push_blobs(t, blobs, jobs)):
        if outcome == "uploaded":
            result.uploaded.append(descriptor.digest)
        elif outcome == "mounted":
            result.mounted.append(descriptor.digest)


def _put_manifest(t: PushTarget, content: bytes, descriptor: Descriptor, present: bool,
                  tags: Sequence[str], result: PushResult) -> None:
    """By digest first (unless `present`): tags move only once the content is complete in
    the registry."""
    headers = {"Content-Type": descriptor.media_type}
    for ref in [descriptor.digest, *tags]:
        if ref == descriptor.digest and present:
            continue
        # A tag can only name this manifest already if the registry had it before.
        if ref != descriptor.digest and present \
                and exists(t, "manifests", ref)[1] == descriptor.digest:
            continue
        t.transport.request("PUT", f"/v2/{t.repo}/manifests/{ref}", scope=t.scope,
                            expected=(201,), data=content, headers=headers)
        if ref != descriptor.digest:
            result.tags_written.append(ref)


def push_image(layout: OciLayout, image: Image, dest: Reference, transport: Transport,
               tags: Sequence[str], *, mount_from: Optional[str] = None, jobs: int = JOBS,
               chunk_size: int = CHUNK_SIZE, fetch: Optional[Fetch] = None) -> PushResult:
    """`image`, whose blobs are in `layout` (or come from `fetch`), to `dest`, then tagged
    `tags`."""
    t = push_target(layout, dest, transport, mount_from, jobs, chunk_size, fetch)
    descriptor = image.manifest_descriptor
    result = PushResult(f"{dest.name}@{descriptor.digest}", descriptor.digest)
    present, _ = exists(t, "manifests", descriptor.digest)
    if not present:
        _push_blobs(t, [image], jobs, result)
    _put_manifest(t, image.manifest_bytes, descriptor, present, tags, result)
    push_referrers(t, dest, [descriptor.digest], jobs, result)
    return result


def push_index(layout: OciLayout, index: Index, dest: Reference, transport: Transport,
               tags: Sequence[str], *, mount_from: Optional[str] = None, jobs: int = JOBS,
               chunk_size: int = CHUNK_SIZE, fetch: Optional[Fetch] = None) -> PushResult:
    """`index` and its images, whose blobs are in `layout` (or come from `fetch`), to `dest`,
    then tagged `tags`. The result's manifest digest is the index's."""
    t = push_target(layout, dest, transport, mount_from, jobs, chunk_size, fetch)
    descriptor = index.descriptor
    result = PushResult(f"{dest.name}@{descriptor.digest}", descriptor.digest)
    present, _ = exists(t, "manifests", descriptor.digest)
    if not present:
        images = [child.image for child in index.manifests]
        missing = [image for image in images
                   if not exists(t, "manifests", image.manifest_descriptor.digest)[0]]
        _push_blobs(t, missing, jobs, result)
        for image in missing:
            _put_manifest(t, image.manifest_bytes, image.manifest_descriptor, False, (), result)
    _put_manifest(t, index.index_bytes, descriptor, present, tags, result)
    push_referrers(t, dest, [c.image.manifest_descriptor.digest for c in index.manifests],
                    jobs, result)
    return result
