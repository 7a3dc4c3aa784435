"""One cached RUN step as kaniko stores it: an image `REPO:<key>` whose manifest has the step's
one layer (none when the step changed nothing) and a config recording that layer's diff_id,
when it was made (`created`: what --cache-ttl is measured from) and by what.

kaniko's entry is `empty.Image` + the layer: a Docker v2 manifest, a config with `created`,
`rootfs.diff_ids` and one history entry (`author: kaniko`, `created_by`: the command). Ours
is the same shape in OCI media types, plus three labels in `config.Labels`: the key the entry
was made for, the builder's SEMANTICS and the RUN mechanism that made it.

An entry is untrusted input (docs/security.md "Dockerfile layer cache"): `parse` takes from it
only the layer's descriptor and diff_id, refuses an entry made for another key, with more
than one layer, another layer media type than this build writes, sizes over the bounds or a
config that is not the one the manifest names; the layer itself is verified against digest,
size and this diff_id when it is read (ocibuild.dockerfile.cache).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from typing import Callable, Optional

from ocibuild import canonical_json, mediatypes
from ocibuild.digest import bytes_digest, validate_digest
from ocibuild.dockerfile.cache_key import SEMANTICS
from ocibuild.errors import OciBuildError
from ocibuild.image.config import rfc3339
from ocibuild.image.image import Image
from ocibuild.image.layer import Layer
from ocibuild.image.manifest import Descriptor
from ocibuild.untrusted import field, load_json, shown

LABEL_KEY = "dev.pants-oci.cache.key"
LABEL_SEMANTICS = "dev.pants-oci.cache.semantics"
LABEL_MECHANISM = "dev.pants-oci.cache.mechanism"
MAX_CONFIG = 1 << 20  # a config of a one-layer image: a few hundred bytes; history text aside
MAX_LAYER = 16 << 30  # the largest cached layer read; the decompressed bound is the tar reader's

LAYER_TYPES = {"gzip": mediatypes.OCI_LAYER_GZIP, "zstd": mediatypes.OCI_LAYER_ZSTD}


class Refused(Exception):
    """An entry that cannot be used: the step runs instead (the text says why)."""


@dataclass(frozen=True)
class Entry:
    key: str
    layer: Optional[Descriptor]  # None: the step changed nothing
    diff_id: Optional[str]
    created: float  # seconds since the epoch
    mechanism: str


def make(key: str, layer: Optional[Layer], created_by: str, platform: dict, mechanism: str,
         now: float) -> Image:
    """The entry image for `key` (kaniko's layout, OCI media types)."""
    config = {**platform, "created": rfc3339(int(now)),
              "rootfs": {"type": "layers", "diff_ids": [layer.diff_id] if layer else []},
              "history": [{"created": rfc3339(int(now)), "author": "ocibuild",
                           "created_by": created_by, **({} if layer else
                                                         {"empty_layer": True})}],
              "config": {"Labels": {LABEL_KEY: key, LABEL_SEMANTICS: str(SEMANTICS),
                                    LABEL_MECHANISM: mechanism}}}
    return Image(canonical_json.dumps(config), (layer,) if layer else ())


def parse(manifest: bytes, key: str, compression: str, where: str,
          read_config: Callable[[Descriptor], bytes]) -> Entry:
    """The entry in `manifest` (as fetched: the caller bounds it), or Refused."""
    try:
        doc = load_json(manifest, f"{where}: the manifest", max_bytes=4 << 20)
        kind = field(doc, "mediaType", str, where) or ""
        if kind not in mediatypes.MANIFESTS:
            raise Refused(f"it is not an image manifest ({shown(kind) or 'no mediaType'})")
        config_d = Descriptor.from_json(field(doc, "config", dict, where, required=True),
                                        where=f"{where} config")
        layers = [Descriptor.from_json(r, where=f"{where} layer {i}")
                  for i, r in enumerate(field(doc, "layers", list, where) or [])]
    except OciBuildError as err:
        raise Refused(str(err)) from None
    if config_d.media_type not in (mediatypes.OCI_CONFIG, mediatypes.DOCKER_CONFIG):
        raise Refused(f"its config is {shown(config_d.media_type)!r}, not an image config")
    if len(layers) > 1:
        raise Refused(f"it has {len(layers)} layers; an entry has one at most")
    if config_d.size > MAX_CONFIG:
        raise Refused(f"its config is {config_d.size} bytes, over {MAX_CONFIG}")
    layer = layers[0] if layers else None
    if layer is not None:
        if layer.media_type != LAYER_TYPES[compression]:
            raise Refused(f"its layer is {layer.media_type!r}; this build writes "
                          f"{LAYER_TYPES[compression]!r}")
        if not 0 < layer.size <= MAX_LAYER:
            raise Refused(f"its layer size {layer.size} is not between 1 and {MAX_LAYER}")
    config_bytes = read_config(config_d)
    if len(config_bytes) != config_d.size or bytes_digest(config_bytes) != config_d.digest:
        raise Refused(f"its config is not the blob {config_d.digest} of {config_d.size} bytes "
                      "the manifest names")
    return _from_config(config_bytes, key, layer, where)


def _from_config(config_bytes: bytes, key: str, layer: Optional[Descriptor],
                 where: str) -> Entry:
    try:
        config = load_json(config_bytes, f"{where}: the config", max_bytes=MAX_CONFIG)
        inner = field(config, "config", dict, where) or {}
        labels = field(inner, "Labels", dict, where) or {}
        diff_ids = field(field(config, "rootfs", dict, where) or {}, "diff_ids", list,
                         where) or []
        created = field(config, "created", str, where) or ""
    except OciBuildError as err:
        raise Refused(str(err)) from None
    if labels.get(LABEL_KEY) != key:
        raise Refused(f"it was made for another key ({str(labels.get(LABEL_KEY))[:80]!r})")
    if labels.get(LABEL_SEMANTICS) != str(SEMANTICS):
        raise Refused(f"it was made by another version of this builder's layer output "
                      f"(semantics {str(labels.get(LABEL_SEMANTICS))[:20]!r}, this is "
                      f"{SEMANTICS})")
    if len(diff_ids) != (1 if layer else 0):
        raise Refused(f"its config records {len(diff_ids)} diff_ids for "
                      f"{1 if layer else 0} layers")
    diff_id = None
    if layer is not None:
        try:
            diff_id = validate_digest(diff_ids[0])
        except OciBuildError as err:
            raise Refused(f"its diff_id: {err}") from None
    mechanism = labels.get(LABEL_MECHANISM)
    # Printed on stderr and in the JSON: a name, or "unknown", never the entry's own text.
    if not (isinstance(mechanism, str) and _NAME.fullmatch(mechanism)):
        mechanism = "unknown"
    return Entry(key, layer, diff_id, _seconds(created), mechanism)


_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?"
                      r"(?:[Zz]|([+-])(\d\d):(\d\d))\Z")


def _seconds(text: str) -> float:
    """RFC 3339 as kaniko (Go's time.Time) and we write it; Refused if it is not."""
    m = _RFC3339.match(text)
    if not m:
        raise Refused(f"its `created` {text[:40]!r} is not an RFC 3339 time, so its age is "
                      "unknown")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        value = float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))
    except (ValueError, OverflowError):
        raise Refused(f"its `created` {text[:40]!r} is not a time") from None
    if m.group(8):
        offset = (int(m.group(9)) * 60 + int(m.group(10))) * 60
        value -= offset if m.group(8) == "+" else -offset
    return value + float(m.group(7) or 0)
