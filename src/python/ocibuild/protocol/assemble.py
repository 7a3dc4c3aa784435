"""`ocibuild assemble`: base + new layers + settings into an image in a layout; what was
written, back. The fields are those of `ocibuild.assemble` (its docstring explains each)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ocibuild.protocol.document import Document, Part

Pairs = Tuple[Tuple[str, str], ...]


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

    layers: Tuple[str, ...]  # layer.json files, as `ocibuild layer` writes them
    base: Optional[BaseRef] = None
    platform: Optional[str] = None
    history: Optional[Tuple[str, ...]] = None
    settings: Optional[Settings] = None
    annotations: Pairs = ()
    created_epoch: int = 0
    ref_names: Tuple[str, ...] = ("latest",)
    repository: Optional[str] = None
    metadata_out: Optional[str] = None

    def spec(self) -> dict:
        """The spec `ocibuild.assemble.assemble_image` reads."""
        spec = {k: v for k, v in self.to_json().items() if k not in ("version", "kind")}
        spec["annotations"] = dict(self.annotations)
        if self.settings is not None and self.settings.labels is not None:
            spec["settings"]["labels"] = dict(self.settings.labels)
        return spec


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
