"""The built Dockerfile image as an OCI image, and where it goes: an OCI layout (written
whole or not at all), pushes (blobs, then the manifest by digest, then tags), a docker-archive
for `docker load`, the digest and `NAME@DIGEST` files kaniko writes."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ocibuild import canonical_json, mediatypes
from ocibuild.atomic import atomic_write, copy_verified, layout_directory
from ocibuild.dockerfile.builder import Built
from ocibuild.dockerfile.images import Registries
from ocibuild.errors import OciBuildError
from ocibuild.image import mutate
from ocibuild.image.config import rfc3339
from ocibuild.image.image import Image
from ocibuild.layout import OciLayout, write
from ocibuild.reference import parse_reference
from ocibuild.validate import validate_label_key, validate_tag


@dataclass(frozen=True)
class Outputs:
    output: Optional[str] = None  # an OCI layout directory
    destinations: Tuple[str, ...] = ()  # REGISTRY/REPO[:TAG], each pushed
    docker_archive: Optional[str] = None
    digest_file: Optional[str] = None
    name_with_digest_file: Optional[str] = None  # REGISTRY/REPO@DIGEST lines
    name_tag_with_digest_file: Optional[str] = None  # REGISTRY/REPO:TAG@DIGEST lines
    tags: Tuple[str, ...] = ()  # ref names in the layout (default "latest")
    labels: Tuple[Tuple[str, str], ...] = ()  # kaniko's --label, over the Dockerfile's
    archive_names: Tuple[str, ...] = ()  # how the docker-archive names the image


def check(outputs: Outputs) -> None:
    """Before the build: every reference, tag and label key is well-formed."""
    for dest in (*outputs.destinations, *outputs.archive_names):
        parse_reference(dest)
    for tag in outputs.tags:
        validate_tag(tag)
    for key, _ in outputs.labels:
        validate_label_key(key)


def image_of(built: Built, outputs: Outputs, created_epoch: int) -> Image:
    config = dict(built.config)
    inner = dict(config.get("config") or {})
    if outputs.labels:
        inner["Labels"] = {**(inner.get("Labels") or {}), **dict(outputs.labels)}
    config["config"] = inner
    config["created"] = rfc3339(created_epoch)
    config.setdefault("history", [])
    image = Image(canonical_json.dumps(config), tuple(built.layers))
    annotations = mutate.base_annotations(str(built.base.ref), built.base.digest) \
        if built.base else {}
    # mutate gives OCI media types (Docker gzip layers are the same bytes under an OCI name).
    return mutate.with_annotations(image, annotations)


def _copy_blob(source: str, dest: str, digest: str) -> None:
    if os.path.exists(dest):
        return
    with open(source, "rb") as blob:
        read = copy_verified(blob, dest, digest)
    if read != digest:
        raise OciBuildError(f"the blob {digest} changed on disk during the build "
                            f"(now {read}); build again")


def _fill(layout_dir: str, image: Image, built: Built, tags: Sequence[str]) -> None:
    layout = OciLayout(layout_dir)
    for layer in image.layers:
        for source in built.layer_dirs:
            path = OciLayout(source).blob_path(layer.digest)
            if os.path.exists(path):
                _copy_blob(path, layout.blob_path(layer.digest), layer.digest)
                break
        else:
            raise OciBuildError(f"no blob {layer.digest} among the build's layers (a bug)")
    write(layout, image, list(tags))




@dataclass(frozen=True)
class Written:
    digest: str
    refs: Tuple[str, ...]  # REGISTRY/REPO:TAG@DIGEST of each push


def deliver(image: Image, built: Built, outputs: Outputs, registries: Registries,
            push_registries: Registries) -> Written:
    from ocibuild.registry.push import push_image

    tags = list(outputs.tags) or ["latest"]
    digest = image.manifest_descriptor.digest
    refs: List[str] = []
    names: List[str] = []
    with layout_directory(outputs.output) as layout_dir:
        _fill(layout_dir, image, built, tags)
        layout = OciLayout(layout_dir)
        for dest_text in outputs.destinations:
            dest = parse_reference(dest_text)
            mount_from = built.base.ref.repository if built.base and \
                built.base.ref.registry == dest.registry else None
            try:
                push_image(layout, image, dest, push_registries.transport(dest),
                           [dest.tag or "latest"], mount_from=mount_from)
            except OciBuildError as err:
                raise OciBuildError(f"pushing to {dest_text}: {err}") from None
            refs.append(f"{dest.name}:{dest.tag or 'latest'}@{digest}")
            names.append(f"{dest.name}@{digest}")
        if outputs.docker_archive:
            from ocibuild.docker_archive import write_docker_archive

            repo_tags = [f"{parse_reference(d).name}:{parse_reference(d).tag or 'latest'}"
                         for d in outputs.archive_names]
            write_docker_archive(layout, image, repo_tags, outputs.docker_archive)
    if outputs.digest_file:
        _write_report("--digest-file", outputs.digest_file, digest.encode())
    if outputs.name_with_digest_file:
        _write_report("--image-name-with-digest-file", outputs.name_with_digest_file,
                      "\n".join(names).encode())
    if outputs.name_tag_with_digest_file:
        _write_report("--image-name-tag-with-digest-file", outputs.name_tag_with_digest_file,
                      "\n".join(refs).encode())
    return Written(digest, tuple(refs))


# Why a file cannot be replaced by a rename while it can be written in place.
_IN_PLACE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.EBUSY)


def _write_report(flag: str, path: str, data: bytes) -> None:
    """Atomically (temp file + rename) where possible; in place when the file exists and
    cannot be replaced: kaniko's `--digest-file=/dev/termination-log` in a Kubernetes Job,
    a file kubelet bind-mounts into a /dev the build's user may not write (and a rename
    over a mount point fails even for root). Never through a symlink in that case."""
    try:
        atomic_write(path, data)
        return
    except OSError as err:
        try:
            existing = stat.S_ISREG(os.lstat(path).st_mode)
        except OSError:
            existing = False
        if err.errno not in _IN_PLACE_ERRNOS or not existing:
            raise OciBuildError(f"{flag} {path!r}: cannot write it: {err.strerror}; give a "
                                "path in a writable directory") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as err:
        raise OciBuildError(f"{flag} {path!r}: cannot write it: {err.strerror}") from None


__all__ = ["Outputs", "check", "image_of", "deliver", "mediatypes", "shutil"]
