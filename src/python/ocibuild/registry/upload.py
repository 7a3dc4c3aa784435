"""Uploading blobs to a registry: where to (`PushTarget`), whether the registry has something
(`exists`), and each missing blob mounted from `mount_from` when that repository on the same
registry has it, else uploaded: streamed from disk in one PUT, or in PATCH chunks for blobs over
`chunk_size`, `jobs` at a time. An upload that fails in a retryable way restarts from a new
session. What was done is noted in a `PushResult`. Used by `push` (images, indexes) and
`referrers` (their SBOMs).

An upload `Location` may name another host (registries that upload straight to storage do):
the transport sends it no credentials, and refuses one that is not http(s) or that would
downgrade an HTTPS registry to plain HTTP.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple
from urllib.parse import urlencode

from ocibuild import mediatypes
from ocibuild.errors import OciBuildError
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


# Writes a blob the layout lacks to the given path, verified.
Fetch = Callable[[Descriptor, str], None]


@dataclass(frozen=True)
class PushTarget:
    transport: Transport
    layout: OciLayout
    repo: str
    scope: str
    mount_from: Optional[str]
    chunk_size: int
    # Fetches a blob the layout lacks into the given path, verified (a base's layer that the
    # destination has neither nor can mount); None: every blob must be in the layout.
    fetch: Optional[Fetch] = None


def exists(t: PushTarget, kind: str, ref: str) -> Tuple[bool, str]:
    headers = {"Accept": mediatypes.MANIFEST_ACCEPT} if kind == "manifests" else {}
    response = t.transport.request("HEAD", f"/v2/{t.repo}/{kind}/{ref}", scope=t.scope,
                                   expected=(200, 404), headers=headers)
    return response.status_code == 200, response.headers.get("Docker-Content-Digest", "")


def _location(t: PushTarget, response, method: str, url: str) -> str:
    return t.transport.location(response, method, t.transport.url(url))


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _start(t: PushTarget, digest: str) -> Tuple[Optional[str], bool]:
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


def _upload(t: PushTarget, location: str, descriptor: Descriptor) -> None:
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


def _push_blob(t: PushTarget, descriptor: Descriptor) -> str:
    """'present', 'mounted' or 'uploaded'."""
    if exists(t, "blobs", descriptor.digest)[0]:
        return "present"
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            location, mounted = _start(t, descriptor.digest)
            if mounted:
                return "mounted"
            assert location is not None
            path = t.layout.blob_path(descriptor.digest)
            if t.fetch is not None and not os.path.exists(path):
                t.fetch(descriptor, path)
            _upload(t, location, descriptor)
            return "uploaded"
        except RegistryError as err:
            # 404: the upload session was lost (e.g. the registry restarted): start again.
            if attempt == UPLOAD_ATTEMPTS or not (err.retryable or err.status == 404):
                raise
    raise AssertionError("unreachable")


def push_blobs(t: PushTarget, blobs: List[Descriptor], jobs: int) -> List[str]:
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


def push_target(layout: OciLayout, dest: Reference, transport: Transport,
            mount_from: Optional[str], jobs: int, chunk_size: int,
            fetch: Optional[Fetch] = None) -> PushTarget:
    if jobs < 1 or chunk_size < 1:
        raise OciBuildError(f"push to {dest}: jobs ({jobs}) and chunk size ({chunk_size} bytes) "
                            "must be at least 1; e.g. --jobs 4 --chunk-size 67108864")
    repo = dest.repository
    return PushTarget(transport, layout, repo, f"repository:{repo}:pull,push", mount_from,
                   chunk_size, fetch)
