"""A base image from locked Debian packages: which layers, in which order, built how.

The plan is shared by the Pants backend (`debian_packages`, each layer a cached process) and
`ocibuild build` (Debian `contents`, each layer built in-process), so a lockfile gives the
same layers, history and base image digest whichever of the two builds it.

Layer order: the root layer (merged-/usr symlinks), the package groups (ocibuild.debian.
grouping) by their first package's name, then the config layer (passwd, group, and what
maintainer scripts would have made: CA bundle, alternatives, tzdata's /etc/localtime,
/etc/os-release; ocibuild.debian.effects), which reads every package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ocibuild.debian.grouping import group_packages
from ocibuild.protocol import debian
from ocibuild.protocol.assemble import AssembleRequest, Settings
from ocibuild.protocol.debian import DebianLayerRequest
from ocibuild.protocol.layer import LayerDescriptor

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_REF_NAME = "base"


@dataclass(frozen=True)
class PlannedLayer:
    request: DebianLayerRequest  # `debs` are file names, in the layer's sandbox or directory
    packages: Tuple[dict, ...]  # the lockfile entries whose .debs the layer reads
    what: str  # for progress and errors: "the merged-/usr root", "python3 3.13.5-1, ..."

    @property
    def created_by(self) -> str:
        """The layer's history entry (the same from Pants and from `ocibuild build`)."""
        return f"pants-oci: {self.what}"


def deb_file(package: dict) -> str:
    """The name a locked package's .deb has beside the others: its pool file name."""
    return package["filename"].rsplit("/", 1)[-1]


def release_suite(doc: dict) -> str:
    """The suite that names the release (`trixie` of trixie, -updates and -security): the
    first source, as in sources.list. It decides /etc/os-release when base-files is absent."""
    return str(doc["request"]["sources"][0]["suite"])


def plan_layers(doc: dict, packages: Sequence[dict], max_layers: int) -> List[PlannedLayer]:
    """The layers of the base of `packages` (one architecture's entries of lockfile `doc`)."""
    by_name: Dict[str, dict] = {p["name"]: p for p in packages}
    groups = group_packages({p["name"]: p["size"] for p in packages}, max_layers)
    plan = [PlannedLayer(DebianLayerRequest(layer=debian.ROOT), (), "the merged-/usr root")]
    for group in groups:
        members = tuple(by_name[name] for name in group)
        plan.append(PlannedLayer(
            DebianLayerRequest(layer=debian.PACKAGES, debs=tuple(deb_file(p) for p in members)),
            members, ", ".join(f"{p['name']} {p['version']}" for p in members)))
    plan.append(PlannedLayer(
        DebianLayerRequest(layer=debian.CONFIG, debs=tuple(deb_file(p) for p in packages),
                           suite=release_suite(doc)),
        tuple(packages), "/etc/passwd, /etc/group and maintainer-script effects"))
    return plan


def base_request(platform: str, repository: Optional[str] = None) -> AssembleRequest:
    """The base image over the planned layers (given by the caller as `layers`)."""
    return AssembleRequest(layers=(), platform=platform,
                           settings=Settings(env=(("PATH", DEFAULT_PATH),)),
                           ref_names=(BASE_REF_NAME,), repository=repository)


def build_layer(request: DebianLayerRequest, debs_dir: Optional[str], out_dir: str
                ) -> LayerDescriptor:
    """One planned layer into `out_dir`'s blobs; `request.debs` are read from `debs_dir`."""
    from ocibuild.debian import layers
    from ocibuild.layer.builder import build_layer_with
    from ocibuild.layer.request import check_compressor
    from ocibuild.errors import OciBuildError

    check_compressor(request.compressor)
    debs = [os.path.join(debs_dir, d) if debs_dir else d for d in request.debs]
    if request.layer == debian.PACKAGES:
        if not debs:
            raise OciBuildError("a Debian package layer needs at least one .deb")
        write = lambda out: layers.write_packages_layer(debs, out)  # noqa: E731
    elif request.layer == debian.ROOT:
        write = layers.write_root_layer
    else:
        ca = request.ca_certificates
        write = lambda out: layers.write_config_layer(  # noqa: E731
            out, os.path.join(debs_dir, ca) if ca and debs_dir else ca, debs=debs,
            suite=request.suite)
    blob = build_layer_with(write, out_dir, compression=request.compression)
    return LayerDescriptor(blob.media_type, blob.digest, blob.size, blob.diff_id)
