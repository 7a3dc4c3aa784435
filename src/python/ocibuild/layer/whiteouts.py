"""Whiteout names: how a layer that is a diff says "delete this" (OCI image spec, layer.md).

When a runtime unpacks a layer, a member `DIR/.wh.NAME` deletes `DIR/NAME` of the layers
below, and `DIR/.wh..wh..opq` hides everything `DIR` held below. Only a diff of two
filesystems may say so. A layer made of input files never does: an input named like that
would delete or hide files of the base instead of being written (and hide them from scanners
that read the layer), so it is refused.

Every path component starting with `.wh.` counts, whatever follows it: runtimes differ in
which such names they act on (containerd and moby treat any `.wh.` name as a whiteout and
`.wh..wh.*` as their own metadata, umoci and podman likewise), and none is a sensible file
name. A symlink target naming one is refused too, so no whiteout name appears anywhere in a
layer of inputs, whatever a later tool does with link targets.
"""

from __future__ import annotations

from typing import Optional

PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"


def whiteout_component(path: str) -> Optional[str]:
    """The first component of the slash-separated `path` that is a whiteout name, if any."""
    return next((part for part in path.split("/") if part.startswith(PREFIX)), None)
