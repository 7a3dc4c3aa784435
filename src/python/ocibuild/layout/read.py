"""Read an `Image` or an `Index` out of an OCI layout, chosen by ref name (and platform).

Manifests, indexes and configs keep the exact bytes they were read with, so an image read
and written (or pushed) again keeps its digest. Layer blobs are not read at all.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

from ocibuild import mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.image.image import Image
from ocibuild.image.index import Child, Index
from ocibuild.image.kind import document_type
from ocibuild.image.layer import Layer
from ocibuild.image.manifest import REF_NAME, Descriptor
from ocibuild.image.referrer import REFERRER
from ocibuild.layout.files import OciLayout
from ocibuild.platform import Platform, describe
from ocibuild.untrusted import field, str_map

# Real layouts nest one index deep; a deeper chain is a cycle or garbage.
_MAX_NESTING = 8


def _descriptors(raw: dict, where: str) -> List[Descriptor]:
    return [Descriptor.from_json(m, where=f"{where} manifests[{i}]")
            for i, m in enumerate(field(raw, "manifests", list, where) or [])]


def _read_document(layout: OciLayout, descriptor: Descriptor, where: str,
                   expect: Sequence[str]) -> Tuple[bytes, dict]:
    """The manifest or index `descriptor` names, its kind decided from its own bytes: the
    descriptor's `mediaType` must agree (one digest, one document)."""
    data, doc = _read_sized(layout, descriptor, where)
    document_type(doc, where, claimed=descriptor.media_type, exact=True, expect=expect,
                  claimed_by="the descriptor pointing at it")
    return data, doc


def _read_sized(layout: OciLayout, descriptor: Descriptor, where: str) -> Tuple[bytes, dict]:
    """A JSON blob whose size is the one its descriptor declares: a registry refuses a
    descriptor whose size is wrong, so an image built on it could not be pushed."""
    data, doc = layout.read_json_blob(descriptor.digest)
    if len(data) != descriptor.size:
        raise OciBuildError(f"{where}: the descriptor of {descriptor.digest} says "
                            f"{descriptor.size} bytes, the blob has {len(data)}; the layout is "
                            "corrupt")
    return data, doc


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


def _is_referrer(descriptor: Descriptor) -> bool:
    # An artifact manifest attached to an image (an SBOM): never what a lookup means.
    return REFERRER in (descriptor.annotations or {})


def _by_ref(layout: OciLayout, top: List[Descriptor], ref_name: Optional[str]) -> List[Descriptor]:
    if ref_name is None:
        return _unique([d for d in top if not _is_referrer(d)])
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
                  platform: Optional[Platform] = None) -> Image:
    """The one image manifest `ref_name` and `platform` pick, descending nested indexes."""
    top = _descriptors(layout.read_index(), f"layout {layout.path!r}: index.json")
    candidates = _by_ref(layout, top, ref_name)
    descriptor = _by_platform(layout, candidates, platform, None)
    image = repr(ref_name or _ref(descriptor) or descriptor.digest)
    for _ in range(_MAX_NESTING):
        if descriptor.media_type not in mediatypes.INDEXES:
            break
        where = f"layout {layout.path!r}: index {descriptor.digest}"
        nested = _descriptors(_read_document(layout, descriptor, where,
                                             mediatypes.INDEXES)[1], where)
        descriptor = _by_platform(layout, nested, platform, image)
    return _image(layout, descriptor)


def read_ref(layout: OciLayout, ref_name: Optional[str] = None) -> Union[Image, Index]:
    """What `ref_name` names in the layout's index.json (the one entry if None): an image, or
    an index of images (one level deep, as multi-platform images are)."""
    top = _descriptors(layout.read_index(), f"layout {layout.path!r}: index.json")
    descriptor = _by_platform(layout, _by_ref(layout, top, ref_name), None, None)
    if descriptor.media_type not in mediatypes.INDEXES:
        return _image(layout, descriptor)
    where = f"layout {layout.path!r}: index {descriptor.digest}"
    data, index = _read_document(layout, descriptor, where, mediatypes.INDEXES)
    children = []
    for child in _descriptors(index, where):
        if child.media_type in mediatypes.INDEXES:
            raise OciBuildError(f"{where} lists another index ({child.digest}); only an index "
                                "of images is supported, not an index of indexes")
        children.append(Child(_image(layout, child), _platform(child),
                              tuple((child.annotations or {}).items())))
    return Index(tuple(children), tuple((str_map(index, "annotations", where) or {}).items()),
                 descriptor.media_type, raw_index=data)


def _platform(descriptor: Descriptor) -> Optional[Platform]:
    raw = descriptor.platform or {}  # type-checked: strings where present
    if not raw.get("os") or not raw.get("architecture"):
        return None
    return Platform(raw["os"], raw["architecture"], raw.get("variant") or None)


def _image(layout: OciLayout, descriptor: Descriptor) -> Image:
    if descriptor.media_type not in mediatypes.MANIFESTS:
        raise OciBuildError(f"layout {layout.path!r}: {descriptor.digest} has media type "
                            f"{descriptor.media_type!r} where an image manifest belongs")
    where = f"layout {layout.path!r}: manifest {descriptor.digest}"
    data, manifest = _read_document(layout, descriptor, where, mediatypes.MANIFESTS)
    config_descriptor, layers = _manifest_blobs(layout, descriptor.digest, manifest)
    config_bytes, config = _read_sized(layout, config_descriptor, f"{where} config")
    diff_ids, created_by = _layer_history(config, len(layers))
    return Image(config_bytes,
                 tuple(Layer.of(d, diff_id=diff_ids[i], created_by=created_by[i])
                       for i, d in enumerate(layers)),
                 tuple((str_map(manifest, "annotations", where) or {}).items()),
                 descriptor.media_type, config_descriptor.media_type, raw_manifest=data)


def _manifest_blobs(layout: OciLayout, digest: str,
                    manifest: dict) -> Tuple[Descriptor, Tuple[Descriptor, ...]]:
    """The config and layer descriptors of the image manifest `digest`, type-checked."""
    where = f"layout {layout.path!r}: manifest {digest}"
    config = Descriptor.from_json(manifest.get("config"), where=f"{where} config")
    layers = tuple(Descriptor.from_json(layer, where=f"{where} layers[{i}]")
                   for i, layer in enumerate(field(manifest, "layers", list, where) or []))
    return config, layers


def _layer_history(config: dict, count: int) -> Tuple[list, list]:
    """Each layer's diff_id and `created_by`, as far as the config says them unambiguously
    (None where it does not: this is information, the config's bytes are what counts)."""
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != count \
            or not all(isinstance(d, str) for d in diff_ids):
        diff_ids = [None] * count
    history = config.get("history")
    entries = [h for h in history if isinstance(h, dict) and not h.get("empty_layer")] \
        if isinstance(history, list) else []
    created_by = [h.get("created_by") if isinstance(h.get("created_by"), str) else None
                  for h in entries] if len(entries) == count else [None] * count
    return diff_ids, created_by
