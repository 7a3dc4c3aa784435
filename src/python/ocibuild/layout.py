"""OCI image layouts on disk: read, resolve an image in one, write blobs and index.json."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass

from ocibuild import canonical_json, mediatypes
from ocibuild.digest import bytes_digest, hex_of
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import REF_NAME, Descriptor, image_index
from ocibuild.platform import Platform

OCI_LAYOUT_FILE = {"imageLayoutVersion": "1.0.0"}
# Manifests, configs and indexes are small; a bigger "JSON" blob is a mistake, not data.
_MAX_JSON_BLOB = 16 << 20


class OciLayout:
    def __init__(self, path) -> None:
        self.path = str(path)

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.path, "blobs", "sha256", hex_of(digest))

    def read_index(self) -> dict:
        index = os.path.join(self.path, "index.json")
        if not os.path.isfile(index):
            raise OciBuildError(f"{self.path!r} is not an OCI image layout: no index.json")
        with open(index, "rb") as f:
            return json.load(f)

    def read_blob_json(self, descriptor: Descriptor) -> dict:
        path = self.blob_path(descriptor.digest)
        if not os.path.isfile(path):
            raise OciBuildError(
                f"layout {self.path!r} lacks blob {descriptor.digest} ({descriptor.media_type}); "
                "the layout is incomplete: copy it again with skopeo"
            )
        with open(path, "rb") as f:
            data = f.read(_MAX_JSON_BLOB + 1)
        if bytes_digest(data) != descriptor.digest:
            raise OciBuildError(
                f"layout {self.path!r}: blob {descriptor.digest} does not match its digest "
                "(corrupt or edited); copy the layout again"
            )
        return json.loads(data)

    def write_blob_bytes(self, data: bytes, media_type: str) -> Descriptor:
        digest = bytes_digest(data)
        path = self.blob_path(digest)
        if not os.path.exists(path):
            atomic_write(path, data)
        return Descriptor(media_type, digest, len(data))

    def write_index(self, manifests: list[Descriptor]) -> None:
        atomic_write(os.path.join(self.path, "oci-layout"), canonical_json.dumps(OCI_LAYOUT_FILE))
        atomic_write(os.path.join(self.path, "index.json"),
                     canonical_json.dumps(image_index(manifests)))


def atomic_write(path: str, data: bytes) -> None:
    """Never leave a partial file: write a temp file beside `path`, then rename it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@dataclass(frozen=True)
class ResolvedImage:
    manifest_descriptor: Descriptor
    manifest: dict
    config_descriptor: Descriptor
    config: dict
    layers: tuple[Descriptor, ...]


def _ref_matches(descriptor: Descriptor, ref_name: str) -> bool:
    ref = (descriptor.annotations or {}).get(REF_NAME)
    if ref is None:
        return False
    # skopeo writes plain tags; other tools write full references ("example.com/x:1.0").
    return ref == ref_name or ref.rsplit(":", 1)[-1] == ref_name and "/" in ref


def _describe(descriptors: list[Descriptor]) -> str:
    refs = [(d.annotations or {}).get(REF_NAME) or d.digest for d in descriptors]
    return ", ".join(refs) or "nothing"


def _pick(layout: OciLayout, candidates: list[Descriptor], ref_name: str | None,
          platform: Platform | None) -> Descriptor:
    if ref_name is not None:
        matching = [d for d in candidates if _ref_matches(d, ref_name)]
        if not matching:
            raise OciBuildError(
                f"layout {layout.path!r} has no image tagged {ref_name!r}; it has: "
                f"{_describe(candidates)}"
            )
        candidates = matching
    if len(candidates) > 1 and platform is not None:
        by_platform = [d for d in candidates if platform.matches(d.platform)]
        if by_platform:
            candidates = by_platform
    if len(candidates) != 1:
        raise OciBuildError(
            f"layout {layout.path!r} holds {len(candidates)} images ({_describe(candidates)}); "
            "name the one to use (its tag)"
        )
    return candidates[0]


def resolve_image(layout: OciLayout, *, ref_name: str | None = None,
                  platform: Platform | None = None) -> ResolvedImage:
    index = layout.read_index()
    descriptor = _pick(layout, [Descriptor.from_json(m) for m in index.get("manifests", [])],
                       ref_name, platform)
    while descriptor.media_type in mediatypes.INDEXES:
        nested = [Descriptor.from_json(m) for m in layout.read_blob_json(descriptor)["manifests"]]
        matching = [d for d in nested if platform and platform.matches(d.platform)]
        if len(matching) != 1:
            found = ", ".join(
                "/".join(filter(None, [(d.platform or {}).get(k) for k in
                                       ("os", "architecture", "variant")])) for d in nested)
            raise OciBuildError(
                f"layout {layout.path!r}: the multi-platform image has no single match for "
                f"platform {str(platform) if platform else '(unset)'}; it has: {found}. "
                "Set `platform` to one of them."
            )
        descriptor = matching[0]
    if descriptor.media_type not in mediatypes.MANIFESTS:
        raise OciBuildError(
            f"layout {layout.path!r}: {descriptor.digest} has media type "
            f"{descriptor.media_type!r}, not an image manifest"
        )
    manifest = layout.read_blob_json(descriptor)
    config_descriptor = Descriptor.from_json(manifest["config"])
    return ResolvedImage(
        descriptor,
        manifest,
        config_descriptor,
        layout.read_blob_json(config_descriptor),
        tuple(Descriptor.from_json(layer) for layer in manifest.get("layers", [])),
    )
