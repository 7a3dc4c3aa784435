"""A docker-archive tarball of one image from an OCI layout.

The tar holds the OCI layout (oci-layout, index.json, blobs/sha256/...) plus docker's
manifest.json pointing at the same blobs: the format `docker save` writes since Docker 25,
which `docker load` and `podman load` both read. Deterministic headers; streamed; atomic.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile

from ocibuild import canonical_json
from ocibuild.image.manifest import REF_NAME, Descriptor
from ocibuild.layout import OciLayout, ResolvedImage
from ocibuild.digest import hex_of


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
    return info


def write_docker_archive(layout: OciLayout, image: ResolvedImage, repo_tags: list[str],
                         out_path: str) -> None:
    blobs = [image.manifest_descriptor, image.config_descriptor, *image.layers]
    names = {d.digest: f"blobs/sha256/{hex_of(d.digest)}" for d in blobs}
    docker_manifest = [{
        "Config": names[image.config_descriptor.digest],
        "RepoTags": list(repo_tags),
        "Layers": [names[d.digest] for d in image.layers],
    }]
    md = image.manifest_descriptor
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [Descriptor(md.media_type, md.digest, md.size,
                                      annotations={REF_NAME: tag}).to_json()
                           for tag in repo_tags]}
    small = {
        "index.json": canonical_json.dumps(index),
        "manifest.json": canonical_json.dumps(docker_manifest),
        "oci-layout": canonical_json.dumps({"imageLayoutVersion": "1.0.0"}),
    }
    out_dir = os.path.dirname(out_path) or "."
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w|",
                                                    format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_dir("blobs/"))
            tar.addfile(_dir("blobs/sha256/"))
            for digest in sorted(names):
                path = layout.blob_path(digest)
                with open(path, "rb") as blob:
                    tar.addfile(_info(names[digest], os.path.getsize(path)), blob)
            for name in sorted(small):
                tar.addfile(_info(name, len(small[name])), io.BytesIO(small[name]))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
