"""Build the layer a `LayerRequest` (ocibuild.protocol.layer) describes, in `out_dir`."""

from __future__ import annotations

import os
from typing import Optional, Sequence

from ocibuild.errors import OciBuildError
from ocibuild.layer.builder import build_layer
from ocibuild.layer.compression import compressor_version
from ocibuild.layer.entries import collect_entries, owned_by, parse_mapping
from ocibuild.protocol.layer import LayerDescriptor, LayerRequest


def check_compressor(expected: Optional[str]) -> None:
    """The caller keyed its cache on `expected`: refuse to write bytes another build made."""
    actual = compressor_version()
    if expected is not None and expected != actual:
        raise OciBuildError(f"the compressor here is {actual!r}, not {expected!r} as the caller "
                            "expects; the tool's environment changed mid-build: build again")


def check_in_sandbox(sources: Sequence[str]) -> None:
    """Each source is inside the working directory: relative, no `..`, and no directory on
    its way a symlink (the walk never follows links, but the kernel follows those of the
    path it is given: `in/x -> /etc` would make `in/x/passwd` a host file)."""
    for source in sources:
        parts = [p for p in source.split("/") if p not in ("", ".")]
        if source.startswith("/") or ".." in parts:
            raise OciBuildError(f"layer input {source!r} must be a relative path inside the "
                                "sandbox, without '..'")
        for depth in range(1, len(parts)):
            way = "/".join(parts[:depth])
            if os.path.islink(way):
                raise OciBuildError(
                    f"layer input {source!r} is reached through the symlink {way!r} -> "
                    f"{os.readlink(way)!r}; a layer input's directories must be directories "
                    "of the sandbox, never links out of it")


def layer_of(request: LayerRequest, out_dir: str) -> LayerDescriptor:
    """The blob at `out_dir/blobs/sha256/<hex>`, and its descriptor."""
    check_compressor(request.compressor)
    mappings = [(m.source, m.dest) if m.mode is None else (m.source, m.dest, m.mode)
                for m in request.mappings]
    if request.executables is not None:
        check_in_sandbox([m.source for m in request.mappings])
    entries = collect_entries(mappings, executables=request.executables)
    if request.owner is not None:
        dests = [parse_mapping(m).dest for m in mappings]
        entries = owned_by(entries, request.owner[0], request.owner[1], dests)
    blob = build_layer(entries, out_dir, compression=request.compression, level=request.level,
                       mtime=request.mtime, engine=request.gzip_engine)
    return LayerDescriptor(blob.media_type, blob.digest, blob.size, blob.diff_id)
