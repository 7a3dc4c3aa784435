"""Descriptors and OCI image manifests.

`Descriptor.from_json` reads descriptors from untrusted documents: every field is
type-checked (platform an object of strings, annotations an object of strings), so a hostile
index is one clear error naming its place.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Optional, Sequence

from ocibuild import mediatypes
from ocibuild.digest import validate_digest
from ocibuild.errors import OciBuildError
from ocibuild.image.kind import DESCRIPTOR_KEYS, PLATFORM_KEYS, go_spelling
from ocibuild.untrusted import field, str_list, str_map

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Optional[dict] = None
    annotations: Optional[dict] = None

    def to_json(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = dict(self.platform)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, raw: object, *, where: str = "descriptor") -> "Descriptor":
        """`where` names the descriptor's place (e.g. "index.json manifests[0]") for errors."""
        if not isinstance(raw, dict):
            raise OciBuildError(f"{where}: {raw!r} is not a descriptor object")
        go_spelling(raw, DESCRIPTOR_KEYS, where)
        media_type, size = raw.get("mediaType"), raw.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise OciBuildError(f"{where}: mediaType {media_type!r} must be a media type, "
                                f'e.g. "{mediatypes.OCI_MANIFEST}"')
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size < 1 << 63:
            raise OciBuildError(f"{where}: size {size!r} must be a byte count, e.g. 1024")
        try:
            digest = validate_digest(raw.get("digest"))
        except OciBuildError as err:
            raise OciBuildError(f"{where}: {err}") from None
        _check_data(raw, digest, size, where)
        return cls(media_type, digest, size, _platform(raw, where),
                   str_map(raw, "annotations", where))


def _check_data(raw: dict, digest: str, size: int, where: str) -> None:
    """A descriptor's embedded `data` (image-spec 1.1) is what its digest names: a reader that
    uses it instead of fetching the blob must see the same bytes as one that fetches."""
    data = field(raw, "data", str, where)
    if data is None:
        return
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise OciBuildError(f"{where}: `data` is not base64") from None
    algorithm = digest.split(":")[0]
    actual = f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}"
    if len(content) != size or actual != digest:
        raise OciBuildError(f"{where}: `data` holds {len(content)} bytes of digest {actual}, "
                            f"not the {size} bytes of {digest} the descriptor names; one "
                            "descriptor would name two contents")


def _platform(raw: dict, where: str) -> Optional[dict]:
    """The descriptor's `platform`, type-checked: matching and error messages read its fields."""
    platform = field(raw, "platform", dict, where)
    if platform is not None:
        go_spelling(platform, PLATFORM_KEYS, f"{where} platform")
        for key in ("os", "architecture", "variant", "os.version"):
            field(platform, key, str, f"{where} platform")
        str_list(platform, "os.features", f"{where} platform")
    return platform


def image_index(manifests: Sequence[Descriptor], *, annotations: Optional[dict] = None) -> dict:
    index: dict = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [m.to_json() for m in manifests],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    return index
