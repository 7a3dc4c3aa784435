"""An `SbomRequest` run: read the inputs into an inventory, write each format's file (temp
file, then rename: never a partial SBOM), and say what was written."""

from __future__ import annotations

import os
import zipfile
from typing import Dict, List

from ocibuild.atomic import atomic_write
from ocibuild.debian.lockfile import MAX_BYTES as DEBIAN_LOCK_MAX, debian_arch
from ocibuild.digest import bytes_digest
from ocibuild.errors import OciBuildError
from ocibuild.platform import parse_platform
from ocibuild.protocol.sbom import SbomFile, SbomPex, SbomRequest, SbomResult
from ocibuild.sbom import cyclonedx, debian, pex_info, python_lock, spdx
from ocibuild.sbom.inventory import Artifact, ImageRef, Inventory, PythonDistribution
from ocibuild.untrusted import local_path, read_bounded, read_file

# format -> (file name, writer module)
WRITERS = {"spdx": ("sbom.spdx.json", spdx), "cyclonedx": ("sbom.cdx.json", cyclonedx)}


def _pex_info_bytes(path: str) -> bytes:
    """PEX-INFO of a PEX-INFO file, a PEX directory (packed or loose) or a zipapp PEX."""
    if os.path.isdir(path):
        return read_file(os.path.join(path, "PEX-INFO"), "the PEX-INFO", pex_info.MAX_BYTES)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as pex, pex.open("PEX-INFO") as f:
                return read_bounded(f, pex_info.MAX_BYTES, f"the PEX-INFO of {path!r}")
        except KeyError:
            raise OciBuildError(f"{path!r} is a zip file without PEX-INFO: not a PEX") from None
    return read_file(path, "the PEX-INFO", pex_info.MAX_BYTES)


def _python(pex: SbomPex, locks: Dict[str, Dict[str, str]]) -> List[PythonDistribution]:
    hashes: Dict[str, str] = {}
    if pex.lockfile is not None:
        if pex.lockfile not in locks:
            where = local_path(pex.lockfile, "sbom request: pexes.lockfile")
            locks[where] = python_lock.wheel_hashes(
                read_file(where, "the Python lockfile", python_lock.MAX_BYTES),
                f"the Python lockfile {where!r}")
        hashes = locks[pex.lockfile]
    path = local_path(pex.pex, "sbom request: pexes.pex")
    return pex_info.read_pex_info(_pex_info_bytes(path), f"the PEX-INFO of {path!r}", hashes)


def inventory(request: SbomRequest) -> Inventory:
    platform = parse_platform(request.image.platform)
    arch = debian_arch(platform.architecture, platform.variant or "")
    debs = [p for path in request.debian_lockfiles for p in debian.read_lockfile(
        read_file(local_path(path, "sbom request: debian_lockfiles"), "the Debian lockfile",
                  DEBIAN_LOCK_MAX), arch, f"the Debian lockfile {path!r}")]
    locks: Dict[str, Dict[str, str]] = {}
    python = [d for pex in request.pexes for d in _python(pex, locks)]
    image = ImageRef(request.image.manifest_digest, request.image.name, str(platform),
                     request.image.tags)
    base = (ImageRef(request.base.manifest_digest, request.base.name) if request.base
            else None)
    return Inventory.of(image, base, debs, python,
                        [Artifact(a.address, a.digest, a.path) for a in request.artifacts])


def sbom(request: SbomRequest, out_dir: str) -> SbomResult:
    found = inventory(request)
    os.makedirs(out_dir, exist_ok=True)
    files = []
    for fmt in request.formats:
        name, writer = WRITERS[fmt]
        data = writer.dumps(found, request.epoch)
        atomic_write(os.path.join(out_dir, name), data)
        files.append(SbomFile(fmt, name, writer.MEDIA_TYPE, bytes_digest(data), len(data)))
    return SbomResult(found.image.manifest_digest, tuple(files), len(found.debian),
                      len(found.python), len(found.artifacts))
