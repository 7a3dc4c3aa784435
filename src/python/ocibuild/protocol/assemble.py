"""`ocibuild assemble`: base + new layers + settings into an image in a layout; what was
written, back (`ocibuild.assemble` explains what it does with each field)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ocibuild.protocol.document import Document, Part
from ocibuild.protocol.layer import LayerDescriptor

Pairs = Tuple[Tuple[str, str], ...]


def _ref_names(names: Tuple[str, ...]) -> Optional[str]:
    if names and all(names):
        return None
    return 'must be non-empty strings, at least one, e.g. ["latest"]'


@dataclass(frozen=True)
class BaseRef(Part):
    layout: str  # a directory in the sandbox
    ref_name: Optional[str] = None
    name: Optional[str] = None  # as the user wrote it, for messages


@dataclass(frozen=True)
class Settings(Part):
    """None everywhere means "keep the base's"."""

    entrypoint: Optional[Tuple[str, ...]] = None
    cmd: Optional[Tuple[str, ...]] = None
    env: Optional[Pairs] = None  # in order: later entries see earlier ones
    workdir: Optional[str] = None
    user: Optional[str] = None
    labels: Optional[Pairs] = None
    exposed_ports: Optional[Tuple[str, ...]] = None
    volumes: Optional[Tuple[str, ...]] = None
    stop_signal: Optional[str] = None


@dataclass(frozen=True)
class AssembleRequest(Document):
    KIND = "assemble"

    # The new layers, bottom first, as `ocibuild layer` describes them; their blobs need not
    # be present (the caller merges them into the layout).
    layers: Tuple[LayerDescriptor, ...] = ()
    base: Optional[BaseRef] = None  # None: scratch
    # "os/arch[/variant]"; None: the base's, or linux/amd64 on scratch.
    platform: Optional[str] = None
    # The `created_by` of each new layer's history entry (None: the entries have none).
    history: Optional[Tuple[str, ...]] = None
    settings: Settings = Settings()
    annotations: Pairs = ()  # the manifest's, after the base-image annotations
    created_epoch: int = field(default=0, metadata={"check": lambda n: None if n >= 0 else
                                                    "must be a whole number of seconds since "
                                                    "1970-01-01 UTC, e.g. 0"})
    # The names index.json gives the image (tags).
    ref_names: Tuple[str, ...] = field(default=("latest",), metadata={"check": _ref_names})
    repository: Optional[str] = None  # passed through to the result


@dataclass(frozen=True)
class ImageLayer(Part):
    digest: str
    size: int
    media_type: str
    diff_id: str
    from_base: bool


@dataclass(frozen=True)
class AssembleResult(Document):
    KIND = "assemble-result"

    manifest_digest: str
    config_digest: str
    platform: str
    ref_name: str
    ref_names: Tuple[str, ...]
    repository: Optional[str]
    layers: Tuple[ImageLayer, ...]
    # The base's layer blobs the new manifest references: the caller merges them in.
    base_blobs: Tuple[str, ...]
