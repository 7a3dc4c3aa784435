"""OCI image layouts on disk: read and write blobs and index.json, resolve an image in one.

A layout is `oci-layout`, `index.json` and `blobs/sha256/<hex>`, as skopeo, umoci and
`docker save` (25+) write it. Docker v2s2 manifests and manifest lists are read as well:
skopeo copies them verbatim into layouts.

A layout given as a base image is untrusted input:
* JSON (index.json, manifests, indexes, configs) is read capped at 16 MiB, depth-limited and
  type-checked (`ocibuild.untrusted`); a wrongly typed field is an error naming the layout,
  the blob and the field, never a traceback or a silently "fixed" value;
* a file of the layout (index.json, blobs/, blobs/sha256/, a blob) that is a symbolic link
  resolving outside the layout's root is refused, never followed: the layout's content is
  what its digests say, not whatever a link points at on the building machine;
* only the exact names `index.json` and `blobs/sha256/<64 hex>` are read, so stray files such
  as an interrupted writer's `.partial-*` are never mistaken for content;
* layer blobs are copied or streamed as opaque, digest-verified bytes, never extracted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO, List, Optional, Sequence, Tuple

from ocibuild import canonical_json, mediatypes
from ocibuild.atomic import atomic_write
from ocibuild.digest import bytes_digest, hex_of
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import REF_NAME, Descriptor, image_index
from ocibuild.platform import Platform, describe
from ocibuild.untrusted import field, load_json, os_reason, read_file

OCI_LAYOUT_FILE = {"imageLayoutVersion": "1.0.0"}
# Manifests, configs and indexes are kilobytes; a "JSON" blob beyond this is a mistake.
_MAX_JSON_BLOB = 16 << 20
# Real layouts nest one index deep; a deeper chain is a cycle or garbage.
_MAX_NESTING = 8


class OciLayout:
    def __init__(self, path: object) -> None:
        self.path = str(path)

    def _inside(self, *parts: str) -> str:
        """The path of `parts` in the layout, refused when a symbolic link on the way leads
        outside the layout's root (a hostile layout could name /etc/shadow a blob)."""
        path = os.path.join(self.path, *parts)
        root = os.path.realpath(self.path)
        real = os.path.realpath(path)
        if not real.startswith(root.rstrip(os.sep) + os.sep):
            raise OciBuildError(
                f"layout {self.path!r}: {'/'.join(parts)} is a symbolic link (or lies under one) "
                f"leading outside the layout, to {real!r}; refusing to follow it. A layout holds "
                "its own files: copy it without links, e.g. `cp -rL` or `skopeo copy`")
        return path

    def blob_path(self, digest: str) -> str:
        return self._inside("blobs", "sha256", hex_of(digest))

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob `digest` opened for reading; absent or unreadable is an error naming it."""
        path = self.blob_path(digest)
        if not os.path.isfile(path):
            raise OciBuildError(f"layout {self.path!r} lacks the blob {digest}: the layout is "
                                "incomplete; copy it again")
        try:
            return open(path, "rb")
        except OSError as err:
            raise OciBuildError(f"cannot read the blob {digest} of layout {self.path!r}: "
                                f"{os_reason(err)}") from None

    def read_index(self) -> dict:
        path = self._inside("index.json")
        if not os.path.isfile(path):
            raise OciBuildError(f"{self.path!r} is not an OCI image layout: it has no index.json; "
                                "create one with `skopeo copy docker://IMAGE oci:DIR:TAG`")
        where = f"layout {self.path!r}: index.json"
        index = _parse_json(read_file(path, "the index", _MAX_JSON_BLOB), where)
        field(index, "manifests", list, where, required=True)
        return index

    def read_blob_json(self, digest: str) -> dict:
        """A small JSON blob, verified against its digest (blobs are named by what they hold)."""
        with self.open_blob(digest) as f:
            data = f.read(_MAX_JSON_BLOB + 1)
        where = f"layout {self.path!r}: blob {digest}"
        if len(data) > _MAX_JSON_BLOB:  # a layer where a manifest belongs: do not hash 1 GB
            raise OciBuildError(f"{where} is over {_MAX_JSON_BLOB >> 20} MiB: not a manifest, "
                                "index or config")
        if bytes_digest(data) != digest:
            raise OciBuildError(f"layout {self.path!r}: blob {digest} does not match its digest "
                                "(corrupt or edited); copy the layout again")
        return _parse_json(data, where)

    def write_blob_bytes(self, data: bytes, media_type: str) -> Descriptor:
        digest = bytes_digest(data)
        atomic_write(self.blob_path(digest), data, keep_existing=True)
        return Descriptor(media_type, digest, len(data))

    def write_index(self, manifests: Sequence[Descriptor]) -> None:
        atomic_write(self._inside("index.json"), canonical_json.dumps(image_index(manifests)))

    def write_oci_layout_file(self) -> None:
        atomic_write(self._inside("oci-layout"), canonical_json.dumps(OCI_LAYOUT_FILE))


def _parse_json(data: bytes, where: str) -> dict:
    if len(data) > _MAX_JSON_BLOB:
        raise OciBuildError(f"{where} is over {_MAX_JSON_BLOB >> 20} MiB: not a manifest, "
                            "index or config")
    return load_json(data, where)


@dataclass(frozen=True)
class ResolvedImage:
    manifest_descriptor: Descriptor
    manifest: dict
    config: dict
    layers: Tuple[Descriptor, ...]
    config_descriptor: Descriptor


def _descriptors(raw: dict, where: str) -> List[Descriptor]:
    return [Descriptor.from_json(m, where=f"{where} manifests[{i}]")
            for i, m in enumerate(field(raw, "manifests", list, where) or [])]


def tag_of(ref: str) -> str:
    """The tag of a full reference ("example.com/x:1.0" -> "1.0"); a plain tag is itself."""
    head, sep, tail = ref.rpartition(":")
    return tail if sep and "/" not in tail else ref


def _ref(descriptor: Descriptor) -> Optional[str]:
    return (descriptor.annotations or {}).get(REF_NAME)


def _unique(descriptors: List[Descriptor]) -> List[Descriptor]:
    """One per digest: the same manifest under two names is one image, not two."""
    seen: dict = {}
    for d in descriptors:
        seen.setdefault(d.digest, d)
    return list(seen.values())


def _names(descriptors: Sequence[Descriptor]) -> str:
    return ", ".join(_ref(d) or f"{d.digest} (unnamed)" for d in descriptors) or "nothing"


def _by_ref(layout: OciLayout, top: List[Descriptor], ref_name: Optional[str]) -> List[Descriptor]:
    if ref_name is None:
        return _unique(top)
    exact = [d for d in top if _ref(d) == ref_name]
    # skopeo writes plain tags or full references; match "1.0" against "example.com/x:1.0".
    matching = exact or [d for d in top if _ref(d) and tag_of(_ref(d)) == tag_of(ref_name)]
    if not matching:
        raise OciBuildError(f"layout {layout.path!r} has no image named {ref_name!r}; it has: "
                            f"{_names(top)}")
    return _unique(matching)


def _is_attestation(descriptor: Descriptor) -> bool:
    # buildx stores provenance as extra "unknown/unknown" manifests in an index.
    return (descriptor.platform or {}).get("os") == "unknown"


def _by_platform(layout: OciLayout, candidates: List[Descriptor], platform: Optional[Platform],
                 image: Optional[str]) -> Descriptor:
    """The one candidate for `platform`. `image` names the multi-platform image being
    descended into, or is None for index.json's own list."""
    candidates = [d for d in candidates if not _is_attestation(d)] or candidates
    if len(candidates) == 1:
        return candidates[0]
    found = ", ".join(describe(d.platform) for d in candidates)
    all_have_platforms = all(d.platform for d in candidates)
    if image is None and (platform is None or not all_have_platforms):
        hint = f" or its platform ({found})" if all_have_platforms else ""
        raise OciBuildError(f"layout {layout.path!r} has {len(candidates)} images (tags: "
                            f"{_names(candidates)}); choose one by its ref name (tag){hint}")
    scope = f"image {image} " if image else ""
    if platform is None:
        raise OciBuildError(f"layout {layout.path!r}: {scope}holds {len(candidates)} platforms "
                            f"({found}); choose one of them")
    matching = _unique([d for d in candidates if platform.matches(d.platform)])
    if len(matching) != 1:
        problem = "no image" if not matching else f"{len(matching)} images"
        raise OciBuildError(f"layout {layout.path!r}: {scope}has {problem} for platform "
                            f"{platform}; it has: {found}; choose one of those platforms")
    return matching[0]


def resolve_image(layout: OciLayout, *, ref_name: Optional[str] = None,
                  platform: Optional[Platform] = None) -> ResolvedImage:
    """The one image manifest `ref_name` and `platform` pick, descending nested indexes."""
    top = _descriptors(layout.read_index(), f"layout {layout.path!r}: index.json")
    candidates = _by_ref(layout, top, ref_name)
    descriptor = _by_platform(layout, candidates, platform, None)
    image = repr(ref_name or _ref(descriptor) or descriptor.digest)
    for _ in range(_MAX_NESTING):
        if descriptor.media_type not in mediatypes.INDEXES:
            break
        where = f"layout {layout.path!r}: index {descriptor.digest}"
        nested = _descriptors(layout.read_blob_json(descriptor.digest), where)
        descriptor = _by_platform(layout, nested, platform, image)
    if descriptor.media_type not in mediatypes.MANIFESTS:
        raise OciBuildError(f"layout {layout.path!r}: {descriptor.digest} has media type "
                            f"{descriptor.media_type!r} where an image manifest belongs")
    manifest = layout.read_blob_json(descriptor.digest)
    config_descriptor, layers = manifest_blobs(layout, descriptor.digest, manifest)
    return ResolvedImage(descriptor, manifest, layout.read_blob_json(config_descriptor.digest),
                         layers, config_descriptor)


def manifest_blobs(layout: OciLayout, digest: str,
                   manifest: dict) -> Tuple[Descriptor, Tuple[Descriptor, ...]]:
    """The config and layer descriptors of the image manifest `digest`, type-checked."""
    where = f"layout {layout.path!r}: manifest {digest}"
    config = Descriptor.from_json(manifest.get("config"), where=f"{where} config")
    layers = tuple(Descriptor.from_json(layer, where=f"{where} layers[{i}]")
                   for i, layer in enumerate(field(manifest, "layers", list, where) or []))
    return config, layers
