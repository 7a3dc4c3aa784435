"""A docker-archive tarball of one image of an OCI layout, for `docker load` / `podman load`.

The tar holds the OCI layout (oci-layout, index.json, blobs/sha256/<hex>) plus Docker's
manifest.json pointing at the same blobs: exactly what `docker save` writes since Docker 25,
so both the OCI-aware and the classic loaders find what they need. The bytes depend on the
image alone: members sorted, mtime 0, owner 0, fixed modes. Every blob is verified against
its digest while it streams in, and the tar appears only when complete.
"""

from __future__ import annotations

import io
import os
import tarfile
from typing import Dict, List

from ocibuild import canonical_json, mediatypes
from ocibuild.atomic import TempFile
from ocibuild.digest import HashingReader, hex_of
from ocibuild.errors import OciBuildError
from ocibuild.image.image import Image
from ocibuild.image.manifest import REF_NAME, Descriptor
from ocibuild.layout import OCI_LAYOUT_FILE, OciLayout, tag_of
from ocibuild.validate import validate_tag

CONTAINERD_NAME = "io.containerd.image.name"


def _full_name(repo_tag: str) -> str:
    """Docker's normalization: "app:1" -> "docker.io/library/app:1", as `docker save` writes it."""
    first, sep, _ = repo_tag.partition("/")
    if not sep:
        return f"docker.io/library/{repo_tag}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{repo_tag}"
    return repo_tag


def _check_repo_tag(repo_tag: str) -> str:
    tag = tag_of(repo_tag)
    if tag == repo_tag or not repo_tag[: -len(tag) - 1]:
        raise OciBuildError(f'repo tag {repo_tag!r}: must be REPOSITORY:TAG, e.g. "team/app:1.0"')
    validate_tag(tag)
    return repo_tag


def _header(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size, info.mtime = size, 0  # uid/gid 0 and empty names are TarInfo's defaults
    return info


def _add_blob(tar: tarfile.TarFile, layout: OciLayout, descriptor: Descriptor) -> None:
    path = layout.blob_path(descriptor.digest)  # refuses a link leading out of the layout
    if not os.path.isfile(path):
        raise OciBuildError(f"layout {layout.path!r} lacks the blob {descriptor.digest} "
                            f"({descriptor.media_type}); the layout is incomplete")
    if os.path.getsize(path) != descriptor.size:
        raise OciBuildError(f"layout {layout.path!r}: blob {descriptor.digest} has "
                            f"{os.path.getsize(path)} bytes, not {descriptor.size}; the layout "
                            "is corrupt, build it again")
    with layout.open_blob(descriptor.digest) as f:
        reader = HashingReader(f)
        tar.addfile(_header(f"blobs/sha256/{hex_of(descriptor.digest)}", descriptor.size), reader)
    if reader.digest != descriptor.digest:
        raise OciBuildError(f"layout {layout.path!r}: blob {descriptor.digest} holds "
                            f"{reader.digest}; the layout is corrupt, build it again")


def _small_files(image: Image, repo_tags: List[str]) -> Dict[str, bytes]:
    md = image.manifest_descriptor
    entries = [Descriptor(md.media_type, md.digest, md.size,
                          annotations={CONTAINERD_NAME: _full_name(t), REF_NAME: tag_of(t)})
               for t in repo_tags] or [Descriptor(md.media_type, md.digest, md.size)]
    index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
             "manifests": [e.to_json() for e in entries]}
    docker_manifest = [{
        "Config": f"blobs/sha256/{hex_of(image.config_descriptor.digest)}",
        "RepoTags": list(repo_tags),
        "Layers": [f"blobs/sha256/{hex_of(d.digest)}" for d in image.layers],
    }]
    return {"index.json": canonical_json.dumps(index),
            "manifest.json": canonical_json.dumps(docker_manifest),
            "oci-layout": canonical_json.dumps(OCI_LAYOUT_FILE)}


def write_docker_archive(layout: OciLayout, image: Image, repo_tags: List[str],
                         out_path: str) -> None:
    """Write `image` (read from `layout`, which holds its blobs) to `out_path`."""
    repo_tags = [_check_repo_tag(t) for t in repo_tags]
    blobs = {d.digest: d for d in (image.manifest_descriptor, image.config_descriptor,
                                   *(layer.descriptor for layer in image.layers))}
    small = _small_files(image, repo_tags)
    with TempFile(os.path.dirname(os.path.abspath(out_path))) as tmp:
        with tarfile.open(fileobj=tmp.file, mode="w|", format=tarfile.PAX_FORMAT,
                          bufsize=1 << 20, copybufsize=1 << 20) as tar:
            tar.addfile(_header("blobs", directory=True))
            tar.addfile(_header("blobs/sha256", directory=True))
            for digest in sorted(blobs):
                _add_blob(tar, layout, blobs[digest])
            for name in sorted(small):
                tar.addfile(_header(name, len(small[name])), io.BytesIO(small[name]))
        tmp.commit(out_path)
