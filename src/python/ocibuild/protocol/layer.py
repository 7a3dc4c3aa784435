"""`ocibuild layer`: files mapped into one layer blob; the blob's descriptor back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ocibuild import mediatypes
from ocibuild.digest import validate_digest
from ocibuild.errors import OciBuildError
from ocibuild.protocol.document import Document, Part
from ocibuild.untrusted import local_path


def _mode(raw: object, where: str) -> object:
    """JSON has no octal, so "0755" is accepted beside 493."""
    if isinstance(raw, str) and raw and all(c in "01234567" for c in raw):
        return int(raw, 8)
    if isinstance(raw, str):
        raise OciBuildError(f'{where} {raw!r} must be an integer or an octal string, '
                            'e.g. "0755" or 493')
    return raw


def _owner(owner: Tuple[int, int]) -> Optional[str]:
    if all(0 <= n < 2**31 for n in owner):
        return None
    return f"{list(owner)!r} must be [UID, GID], whole numbers, e.g. [65532, 65532]"


def _path(value: str) -> Optional[str]:
    try:
        local_path(value, "")
    except OciBuildError as err:
        return "must be a path: " + str(err)[2:]
    return None


def _paths(values: Tuple[str, ...]) -> Optional[str]:
    return next(filter(None, map(_path, values)), None)


def _digest(value: str) -> Optional[str]:
    try:
        validate_digest(value)
    except OciBuildError:
        return f"{value!r} must be 'sha256:' and 64 lowercase hex digits"
    return None


_LAYER_TYPES = (mediatypes.OCI_LAYER, mediatypes.OCI_LAYER_GZIP, mediatypes.OCI_LAYER_ZSTD)


def _layer_media_type(value: str) -> Optional[str]:
    if value in _LAYER_TYPES:
        return None
    return f"{value!r} must be an OCI layer media type: {', '.join(_LAYER_TYPES)}"


@dataclass(frozen=True)
class LayerMapping(Part):
    """A file at `dest`, or a directory's contents under it (`ocibuild.layer.entries`)."""

    source: str = field(metadata={"check": _path})
    dest: str
    mode: Optional[int] = field(default=None, metadata={"parse": _mode})


@dataclass(frozen=True)
class LayerRequest(Document):
    KIND = "layer"

    mappings: Tuple[LayerMapping, ...] = field(
        metadata={"check": lambda m: None if m else 'maps no files; give [{"source": '
                  '"dist/app.pex", "dest": "app/app.pex"}]'})
    compression: str = "gzip"
    level: Optional[int] = None
    mtime: int = 0
    # [UID, GID] for everything under the mappings' dests.
    owner: Optional[Tuple[int, int]] = field(default=None, metadata={"check": _owner})
    # The compressor version the caller keyed its cache on: a different one is refused.
    compressor: Optional[str] = None
    # None: libdeflate (the same bytes on every machine); "zlib": the Python's own zlib.
    gzip_engine: Optional[str] = None
    # The input files that are executable, as the caller's file store records them (Pants'
    # `is_executable`): every other file is 0644 whatever its mode in the sandbox, which is
    # not the digest's (ocibuild.layer.entries says why). Given, the inputs are a sandbox:
    # each source is a relative path reached through no symlink. None: the disk decides.
    executables: Optional[Tuple[str, ...]] = field(default=None, metadata={"check": _paths})


@dataclass(frozen=True)
class LayerDescriptor(Document):
    """A layer blob written to `<out>/blobs/sha256/<hex>`: what an image manifest and config
    need of it."""

    KIND = "layer-descriptor"

    media_type: str = field(metadata={"json": "mediaType", "check": _layer_media_type})
    digest: str = field(metadata={"check": _digest})
    size: int = field(metadata={"check": lambda n: None if n >= 0 else "must not be negative"})
    diff_id: str = field(metadata={"json": "diffID", "check": _digest})


@dataclass(frozen=True)
class CompressorRequest(Document):
    """What decides compressed bytes here (libdeflate, zlib and zstd versions): the plugin
    keys every layer's cache on the answer."""

    KIND = "compressor-version"


@dataclass(frozen=True)
class CompressorVersion(Document):
    KIND = "compressor"

    compressor: str


@dataclass(frozen=True)
class BaseTreeRequest(Document):
    """The directories and symlinks a base image's layers leave (ocibuild.layer.base_tree),
    for the check that new layers do not replace them."""

    KIND = "base-tree"

    layout: str = field(metadata={"check": _path})
    ref_name: Optional[str] = None
    # As the image is assembled: None is linux/amd64 (ocibuild.assemble).
    platform: Optional[str] = None


@dataclass(frozen=True)
class BaseTree(Document):
    KIND = "base-tree-result"

    directories: Tuple[str, ...]
    symlinks: Tuple[Tuple[str, str], ...]  # (path, target as written)
