"""Build small but real OCI layouts for tests: real layer blobs, configs, manifests, indexes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Union

from ocibuild import canonical_json, mediatypes
from ocibuild.assemble import assemble
from ocibuild.image.manifest import REF_NAME, Descriptor
from ocibuild.layer.builder import build_layer
from ocibuild.layer.entries import collect_entries
from ocibuild.layout import OciLayout
from ocibuild.protocol.assemble import AssembleRequest


def add_image(layout_dir: Path, marker: str, *, os_name: str = "linux", arch: str = "amd64",
              variant: Optional[str] = None, docker: bool = False,
              config_extra: Optional[dict] = None) -> Descriptor:
    """An image with one layer holding /etc/marker; returns its manifest descriptor with
    the platform set (as an index entry would carry it)."""
    src = layout_dir.parent / f"{layout_dir.name}-src" / marker
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(marker)
    blob = build_layer(collect_entries([(str(src), "etc/marker")]), str(layout_dir))
    platform = {"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})}
    config = {**platform, "config": {"Env": [f"MARKER={marker}"], "Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": [blob.diff_id]},
              "history": [{"created": "2020-01-01T00:00:00Z", "created_by": f"ADD {marker}"}],
              **(config_extra or {})}
    layout = OciLayout(layout_dir)
    config_type = mediatypes.DOCKER_CONFIG if docker else mediatypes.OCI_CONFIG
    config_desc = layout.write_blob_bytes(canonical_json.dumps(config), config_type)
    layer_type = mediatypes.DOCKER_LAYER_GZIP if docker else blob.media_type
    manifest_type = mediatypes.DOCKER_MANIFEST if docker else mediatypes.OCI_MANIFEST
    manifest = {"schemaVersion": 2, "mediaType": manifest_type, "config": config_desc.to_json(),
                "layers": [Descriptor(layer_type, blob.digest, blob.size).to_json()]}
    desc = layout.write_blob_bytes(canonical_json.dumps(manifest), manifest_type)
    return Descriptor(desc.media_type, desc.digest, desc.size, platform=platform)


def add_index(layout_dir: Path, manifests: List[Descriptor], *, docker: bool = False) -> Descriptor:
    media_type = mediatypes.DOCKER_MANIFEST_LIST if docker else mediatypes.OCI_INDEX
    index = {"schemaVersion": 2, "mediaType": media_type,
             "manifests": [m.to_json() for m in manifests]}
    return OciLayout(layout_dir).write_blob_bytes(canonical_json.dumps(index), media_type)


def named(descriptor: Descriptor, ref: Optional[str], platform: bool = False) -> Descriptor:
    annotations: Dict[str, str] = {REF_NAME: ref} if ref else {}
    return Descriptor(descriptor.media_type, descriptor.digest, descriptor.size,
                      platform=descriptor.platform if platform else None,
                      annotations=annotations or None)


def write_layout(layout_dir: Path, top: List[Descriptor]) -> OciLayout:
    layout = OciLayout(layout_dir)
    layout.write_index(top)
    layout.write_oci_layout_file()
    return layout


def multi_arch_layout(layout_dir: Path, *, docker: bool = False) -> OciLayout:
    """One tag "latest" -> index of amd64, arm64/v8, arm/v7 and a buildx attestation."""
    amd = add_image(layout_dir, "amd64", docker=docker)
    arm64 = add_image(layout_dir, "arm64", arch="arm64", variant="v8", docker=docker)
    arm = add_image(layout_dir, "arm", arch="arm", variant="v7", docker=docker)
    attestation = add_image(layout_dir, "attestation", os_name="unknown", arch="unknown")
    index = add_index(layout_dir, [amd, arm64, arm, attestation], docker=docker)
    return write_layout(layout_dir, [named(index, "latest")])


def assemble_json(spec: dict, out_dir: Union[str, Path]) -> dict:
    """`ocibuild.assemble.assemble` on an AssembleRequest in its JSON form; the result's JSON
    (as `ocibuild assemble` prints it)."""
    return assemble(AssembleRequest.from_json(spec, "spec"), str(out_dir)).to_json()


def layer_descriptor(layer_dir: Path) -> dict:
    """The descriptor `ocibuild layer` wrote to `<layer_dir>/layer.json`, to inline in a
    request's `layers`."""
    return json.loads((layer_dir / "layer.json").read_text())
