"""A Debian trixie base image for the docker comparisons, made without internet and pushed to a
registry on 127.0.0.1: tests/core/rootfs_base.py's layers (apt, dpkg, passwd, coreutils,
bash, dash, python3-minimal) plus tests/core/rootfs_debian_python.lock.json's packages for
`python3 -m venv` (python3.13, python3.13-venv with pip's and setuptools' wheels, and what
they depend on). That lockfile also names packages kept out of the base, for a test's own
apt repository (`REPO_ONLY`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Tuple

from tests.core.rootfs_base import DEBIAN_CACHE, debian_full_layers
from tests.fixtures.tools import require, run

PYTHON_LOCK = Path(__file__).resolve().parent.parent / "core" / "rootfs_debian_python.lock.json"
REPO_ONLY = ("less",)  # installed by a test's `apt-get install`, from its own signed repository
TAR = "application/vnd.oci.image.layer.v1.tar"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _extra() -> Tuple[List[dict], List[str]]:
    lock = json.loads(PYTHON_LOCK.read_text())["packages"]["amd64"]
    return ([p for p in lock if p["name"] not in REPO_ONLY],
            [str(DEBIAN_CACHE / p["filename"]) for p in lock if p["name"] in REPO_ONLY])


def repo_debs() -> List[str]:
    """The cached .debs of the packages a test's repository serves."""
    return _extra()[1]


def _blob(layout: Path, data: bytes) -> Dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_layout(layers: List[Tuple[str, str]], layout: Path) -> None:
    """An OCI layout of `layers` (uncompressed tars), as Debian's images are configured."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descriptors, diff_ids = [], []
    for path, media_type in layers:
        data = Path(path).read_bytes()
        desc = {"mediaType": media_type, **_blob(layout, data)}
        descriptors.append(desc)
        diff_ids.append(desc["digest"])
    epoch = "1970-01-01T00:00:00Z"
    config = {"architecture": "amd64", "os": "linux", "created": epoch,
              "config": {"Env": [f"PATH={PATH}"], "Cmd": ["bash"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": epoch, "created_by": f"layer {i}"}
                          for i in range(len(layers))]}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **_blob(layout, json.dumps(config).encode())},
                "layers": descriptors}
    desc = {"mediaType": manifest["mediaType"], **_blob(layout, json.dumps(manifest).encode()),
            "annotations": {"org.opencontainers.image.ref.name": "trixie"}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))


def push_debian_base(work: Path, registry_host: str) -> str:
    """Build the base in `work` and push it; its reference (REGISTRY/debian:trixie)."""
    extra, _ = _extra()
    layers_dir = work / "layers"
    layers_dir.mkdir()
    layers = debian_full_layers(layers_dir, extra)
    write_layout(layers, work / "layout")
    for path, _ in layers:
        os.unlink(path)
    ref = f"{registry_host}/debian:trixie"
    run([require("skopeo"), "copy", "--dest-tls-verify=false", f"oci:{work / 'layout'}:trixie",
         f"docker://{ref}"])
    return ref
