"""Push one image from an OCI layout: blobs, then the manifest by digest, then the tags.

Blobs the registry already has (HEAD 200) are skipped, so re-pushing an image uploads
nothing but its manifest. Blobs stream from disk (monolithic PUT); nothing is held whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence
from urllib.parse import urlencode

from ocibuild.layout import OciLayout, ResolvedImage
from ocibuild.reference import Reference
from ocibuild.registry.transport import Transport


@dataclass(frozen=True)
class PushResult:
    reference: str
    manifest_digest: str
    uploaded: List[str]  # blob digests actually uploaded


def _has_blob(transport: Transport, repo: str, digest: str, scope: str) -> bool:
    response = transport.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=scope,
                                 expected=(200, 404))
    return response.status_code == 200


def _upload_blob(transport: Transport, repo: str, layout: OciLayout, digest: str,
                 scope: str) -> None:
    start = transport.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope, expected=(202,))
    location = start.headers["Location"]
    if "://" not in location:
        location = transport.base + location
    separator = "&" if "?" in location else "?"
    with open(layout.blob_path(digest), "rb") as blob:
        transport.request("PUT", location + separator + urlencode({"digest": digest}),
                          scope=scope, expected=(201,), data=blob,
                          headers={"Content-Type": "application/octet-stream"})


def push_image(layout: OciLayout, image: ResolvedImage, dest: Reference,
               transport: Transport, tags: Sequence[str]) -> PushResult:
    repo = dest.repository
    scope = f"repository:{repo}:pull,push"
    uploaded = []
    for descriptor in [*image.layers, image.config_descriptor]:
        if not _has_blob(transport, repo, descriptor.digest, scope):
            _upload_blob(transport, repo, layout, descriptor.digest, scope)
            uploaded.append(descriptor.digest)
    with open(layout.blob_path(image.manifest_descriptor.digest), "rb") as f:
        manifest = f.read()
    headers = {"Content-Type": image.manifest_descriptor.media_type}
    # By digest first: tags move only once the content is complete in the registry.
    for ref in [image.manifest_descriptor.digest, *tags]:
        transport.request("PUT", f"/v2/{repo}/manifests/{ref}", scope=scope, expected=(201,),
                          data=manifest, headers=headers)
    shown = f"{dest.name}@{image.manifest_descriptor.digest}"
    return PushResult(shown, image.manifest_descriptor.digest, uploaded)
