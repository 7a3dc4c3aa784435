"""Assemble an image from built layers on a base: one cached `ocibuild assemble` process
writes the config, manifest and index; the layout is merged from digests already in the store
(the new layers' blobs and the base's layer blobs the manifest references)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ocibuild.layout.files import MAX_JSON_BLOB
from ocibuild.protocol.assemble import AssembleRequest, AssembleResult, BaseRef
from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    Digest,
    DigestEntries,
    DigestSubset,
    FileEntry,
    MergeDigests,
    PathGlobs,
    Snapshot,
)
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from pants_oci.subsystems.oci_tool import OcibuildResult, OcibuildRun
from pants_oci.util_rules.base_image import BaseImage, OciBaseError
from pants_oci.util_rules.layers import BuiltLayer

_BASE_DIR = "base"


@dataclass(frozen=True)
class AssembleImage:
    """`request` without its layers, history and base: they come from `layers` and `base`."""

    request: AssembleRequest
    layers: tuple[BuiltLayer, ...]
    base: BaseImage | None
    what: str  # "the oci_image //app:image", for messages


@dataclass(frozen=True)
class AssembledImage:
    layout: Digest  # a complete OCI layout, rooted at the digest root
    result: AssembleResult


@dataclass(frozen=True)
class ShallowLayoutRequest:
    layout: Digest


@dataclass(frozen=True)
class ShallowLayout:
    digest: Digest


@rule(desc="Select the base layout's metadata", level=LogLevel.DEBUG)
async def shallow_layout(request: ShallowLayoutRequest) -> ShallowLayout:
    """The part of a base's layout that assembling reads: index.json, oci-layout and every blob
    that can be a manifest, an index or a config (the core refuses such a blob over
    MAX_JSON_BLOB, so any larger one is a layer). The layers stay out of the sandbox: a 500 MB
    base costs no copy when an image on it is assembled, only when the image is written or
    pushed."""
    entries = await Get(DigestEntries, Digest, request.layout)
    small = [e.path for e in entries if isinstance(e, FileEntry)
             and (not e.path.startswith("blobs/")
                  or e.file_digest.serialized_bytes_length <= MAX_JSON_BLOB)]
    return ShallowLayout(await Get(Digest, DigestSubset(request.layout, PathGlobs(small))))


@rule(desc="Assemble an OCI image", level=LogLevel.DEBUG)
async def assemble_image(assemble: AssembleImage) -> AssembledImage:
    base = assemble.base
    request = dataclasses.replace(
        assemble.request,
        layers=tuple(layer.descriptor for layer in assemble.layers),
        history=tuple(layer.created_by for layer in assemble.layers),
        base=None if base is None else BaseRef(_BASE_DIR, base.ref_name, base.spec),
    )
    if base is None:
        inputs = EMPTY_DIGEST
    else:
        shallow = await Get(ShallowLayout, ShallowLayoutRequest(base.layout))
        inputs = await Get(Digest, AddPrefix(shallow.digest, _BASE_DIR))
    run = await Get(
        OcibuildResult,
        OcibuildRun(
            request,
            inputs,
            description=f"Assembling {assemble.what}",
            context=f"assembling {assemble.what}"
            + (f" (base {base.spec!r})" if base is not None else ""),
        ),
    )
    result = run.result
    assert isinstance(result, AssembleResult)
    parts = [run.output_digest, *(layer.blob for layer in assemble.layers)]
    if base is not None and result.base_blobs:
        globs = [f"blobs/{d.replace(':', '/', 1)}" for d in result.base_blobs]
        blobs = await Get(Snapshot, DigestSubset(base.layout, PathGlobs(globs)))
        missing = sorted(set(globs) - set(blobs.files))
        if missing:
            raise OciBaseError(
                f"The base {base.spec!r} of {assemble.what} lacks the layer blob(s) "
                f"{', '.join(missing)}: the layout is incomplete. Copy it again with "
                "`skopeo copy` (which writes every blob)."
            )
        parts.append(blobs.digest)
    return AssembledImage(await Get(Digest, MergeDigests(parts)), result)


def rules():
    return collect_rules()
