"""Push an image or an image index from an OCI layout: blobs, manifests by digest, then tags.

An image: its blobs, then its manifest by digest, then the tags. An index: every image's
blobs, then each image's manifest by digest, then the index by digest, then the tags.
A manifest (or index) the registry already holds by digest means what it references is
there too, so a re-push does no blob work at all. Otherwise each missing blob (HEAD 404) is mounted from `mount_from`
when that repository on the same registry has it (the base image's, usually), else uploaded:
streamed from disk in one PUT, or in PATCH chunks for blobs over `chunk_size`. Blobs go up
`jobs` at a time. An upload that fails in a retryable way restarts from a new session.
Tags are written last, so a tag never names an incomplete image. Then the referrers the
layout holds for the pushed images (`ocibuild.registry.referrers`: their SBOMs).

An upload `Location` may name another host (registries that upload straight to storage do):
the transport sends it no credentials, and refuses one that is not http(s) or that would
downgrade an HTTPS registry to plain HTTP.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple
from urllib.parse import urlencode

from ocibuild import mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.image.image import Image
from ocibuild.image.index import Index
from ocibuild.image.manifest import Descriptor
from ocibuild.layout import OciLayout
from ocibuild.reference import Reference
from ocibuild.registry.errors import RegistryError
from ocibuild.registry.transport import Transport

JOBS = 4
CHUNK_SIZE = 64 << 20
UPLOAD_ATTEMPTS = 3


@dataclass
class PushResult:
    reference: str
    manifest_digest: str
    uploaded: List[str] = field(default_factory=list)  # blob digests actually uploaded
    mounted: List[str] = field(default_factory=list)   # blob digests mounted from mount_from
    tags_written: List[str] = field(default_factory=list)
    referrers: List[str] = field(default_factory=list)  # artifact manifests pushed (SBOMs)


@dataclass(frozen=True)
class _Target:
    transport: Transport
    layout: OciLayout
    repo: str
    scope: str
    mount_from: Optional[str]
    chunk_size: int


def _exists(t: _Target, kind: str, ref: str) -> Tuple[bool, str]:
    headers = {"Accept": mediatypes.MANIFEST_ACCEPT} if kind == "manifests" else {}
    response = t.transport.request("HEAD", f"/v2/{t.repo}/{kind}/{ref}", scope=t.scope,
                                   expected=(200, 404), headers=headers)
    return response.status_code == 200, response.headers.get("Docker-Content-Digest", "")


def _location(t: _Target, response, method: str, url: str) -> str:
    return t.transport.location(response, method, t.transport.url(url))


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _start(t: _Target, digest: str) -> Tuple[Optional[str], bool]:
    """(upload location, mounted). A refused mount falls back to a plain upload session."""
    if t.mount_from and t.mount_from != t.repo:
        mount_scope = f"{t.scope} repository:{t.mount_from}:pull"
        try:
            response = t.transport.request(
                "POST", _with_query(f"/v2/{t.repo}/blobs/uploads/", mount=digest,
                                    **{"from": t.mount_from}),
                scope=mount_scope, expected=(201, 202))
            if response.status_code == 201:
                return None, True
            return _location(t, response, "POST", f"/v2/{t.repo}/blobs/uploads/"), False
        except RegistryError as err:
            if err.status not in (401, 403, 404):
                raise
    url = f"/v2/{t.repo}/blobs/uploads/"
    response = t.transport.request("POST", url, scope=t.scope, expected=(202,))
    return _location(t, response, "POST", url), False


def _upload(t: _Target, location: str, descriptor: Descriptor) -> None:
    headers = {"Content-Type": "application/octet-stream"}
    # The answer to an upload may come only once the registry has stored (and hashed) it all.
    deadline_s = t.transport.blob_deadline_s(descriptor.size)
    with open(t.layout.blob_path(descriptor.digest), "rb") as blob:
        if descriptor.size > t.chunk_size:
            offset = 0
            while offset < descriptor.size:
                chunk = blob.read(t.chunk_size)
                if not chunk:  # else this loop would never end
                    raise OciBuildError(f"{blob.name} is shorter than the {descriptor.size} "
                                        "bytes its descriptor says; the layout is damaged")
                end = offset + len(chunk) - 1
                response = t.transport.request(
                    "PATCH", location, scope=t.scope, expected=(202,), data=chunk,
                    headers={**headers, "Content-Range": f"{offset}-{end}"},
                    deadline_s=t.transport.blob_deadline_s(len(chunk)))
                location = _location(t, response, "PATCH", location)
                offset = end + 1
            t.transport.request("PUT", _with_query(location, digest=descriptor.digest),
                                scope=t.scope, expected=(201,), data=b"", headers=headers,
                                deadline_s=deadline_s)
        else:
            t.transport.request("PUT", _with_query(location, digest=descriptor.digest),
                                scope=t.scope, expected=(201,), data=blob, headers=headers,
                                deadline_s=deadline_s)


def _push_blob(t: _Target, descriptor: Descriptor) -> str:
    """'present', 'mounted' or 'uploaded'."""
    if _exists(t, "blobs", descriptor.digest)[0]:
        return "present"
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            location, mounted = _start(t, descriptor.digest)
            if mounted:
                return "mounted"
            assert location is not None
            _upload(t, location, descriptor)
            return "uploaded"
        except RegistryError as err:
            # 404: the upload session was lost (e.g. the registry restarted): start again.
            if attempt == UPLOAD_ATTEMPTS or not (err.retryable or err.status == 404):
                raise
    raise AssertionError("unreachable")


def _parallel(t: _Target, blobs: List[Descriptor], jobs: int) -> List[str]:
    """`_push_blob` on each, `jobs` at a time; after a failure no new blob is started."""
    failed = threading.Event()

    def push(descriptor: Descriptor) -> str:
        if failed.is_set():
            return "skipped"
        try:
            return _push_blob(t, descriptor)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(push, d) for d in blobs]
    return [f.result() for f in futures]


def _target(layout: OciLayout, dest: Reference, transport: Transport,
            mount_from: Optional[str], jobs: int, chunk_size: int) -> _Target:
    if jobs < 1 or chunk_size < 1:
        raise OciBuildError(f"push to {dest}: jobs ({jobs}) and chunk size ({chunk_size} bytes) "
                            "must be at least 1; e.g. --jobs 4 --chunk-size 67108864")
    repo = dest.repository
    return _Target(transport, layout, repo, f"repository:{repo}:pull,push", mount_from,
                   chunk_size)


def _push_blobs(t: _Target, images: Sequence[Image], jobs: int, result: PushResult) -> None:
    """The blobs of `images`, each once, noted in `result` if uploaded or mounted."""
    blobs = list({d.digest: d for image in images
                  for d in (*(layer.descriptor for layer in image.layers),
                            image.config_descriptor)}.values())
    for descriptor, outcome in zip(blobs, _parallel(t, blobs, jobs)):
        if outcome == "uploaded":
            result.uploaded.append(descriptor.digest)
        elif outcome == "mounted":
            result.mounted.append(descriptor.digest)


def _put_manifest(t: _Target, content: bytes, descriptor: Descriptor, present: bool,
                  tags: Sequence[str], result: PushResult) -> None:
    """By digest first (unless `present`): tags move only once the content is complete in
    the registry."""
    headers = {"Content-Type": descriptor.media_type}
    for ref in [descriptor.digest, *tags]:
        if ref == descriptor.digest and present:
            continue
        # A tag can only name this manifest already if the registry had it before.
        if ref != descriptor.digest and present \
                and _exists(t, "manifests", ref)[1] == descriptor.digest:
            continue
        t.transport.request("PUT", f"/v2/{t.repo}/manifests/{ref}", scope=t.scope,
                            expected=(201,), data=content, headers=headers)
        if ref != descriptor.digest:
            result.tags_written.append(ref)


def _push_referrers(t: _Target, dest: Reference, subjects: List[str], jobs: int,
                    result: PushResult) -> None:
    # Imported here: referrers builds on this module's blob and manifest steps.
    from ocibuild.registry.referrers import push_referrers

    push_referrers(t, dest, subjects, jobs, result)


def push_image(layout: OciLayout, image: Image, dest: Reference, transport: Transport,
               tags: Sequence[str], *, mount_from: Optional[str] = None, jobs: int = JOBS,
               chunk_size: int = CHUNK_SIZE) -> PushResult:
    """`image`, whose blobs are in `layout`, to `dest`, then tagged `tags`."""
    t = _target(layout, dest, transport, mount_from, jobs, chunk_size)
    descriptor = image.manifest_descriptor
    result = PushResult(f"{dest.name}@{descriptor.digest}", descriptor.digest)
    present, _ = _exists(t, "manifests", descriptor.digest)
    if not present:
        _push_blobs(t, [image], jobs, result)
    _put_manifest(t, image.manifest_bytes, descriptor, present, tags, result)
    _push_referrers(t, dest, [descriptor.digest], jobs, result)
    return result


def push_index(layout: OciLayout, index: Index, dest: Reference, transport: Transport,
               tags: Sequence[str], *, mount_from: Optional[str] = None, jobs: int = JOBS,
               chunk_size: int = CHUNK_SIZE) -> PushResult:
    """`index` and its images, whose blobs are in `layout`, to `dest`, then tagged `tags`.
    The result's manifest digest is the index's."""
    t = _target(layout, dest, transport, mount_from, jobs, chunk_size)
    descriptor = index.descriptor
    result = PushResult(f"{dest.name}@{descriptor.digest}", descriptor.digest)
    present, _ = _exists(t, "manifests", descriptor.digest)
    if not present:
        images = [child.image for child in index.manifests]
        missing = [image for image in images
                   if not _exists(t, "manifests", image.manifest_descriptor.digest)[0]]
        _push_blobs(t, missing, jobs, result)
        for image in missing:
            _put_manifest(t, image.manifest_bytes, image.manifest_descriptor, False, (), result)
    _put_manifest(t, index.index_bytes, descriptor, present, tags, result)
    _push_referrers(t, dest, [c.image.manifest_descriptor.digest for c in index.manifests],
                    jobs, result)
    return result
