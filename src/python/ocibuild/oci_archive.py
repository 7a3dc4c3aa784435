"""Unpack an OCI image layout kept as a tar (`skopeo copy ... oci-archive:F.tar`, `docker save`).

Only the layout's own files are taken (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`);
other members (docker's `manifest.json`, `repositories`) are skipped, so a `docker save`
tarball of Docker >= 25 works too. Links, devices and paths outside the layout are refused:
the archive is data, not a filesystem to recreate. Every blob is verified while it streams.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
from typing import Optional

from ocibuild.atomic import TempFile
from ocibuild.errors import OciBuildError

_BLOB = re.compile(r"^blobs/(sha256|sha512)/([0-9a-f]{64}|[0-9a-f]{128})$")
_LAYOUT_FILES = ("oci-layout", "index.json")
_CHUNK = 1 << 20  # constant memory whatever the blob size


def _member_name(member: tarfile.TarInfo) -> str:
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _copy_verified(src, dest_path: str, algorithm: Optional[str], expected: Optional[str]) -> None:
    hasher = hashlib.new(algorithm) if algorithm else None
    with TempFile(os.path.dirname(dest_path)) as tmp:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            if hasher:
                hasher.update(chunk)
            tmp.file.write(chunk)
        if hasher and hasher.hexdigest() != expected:
            raise OciBuildError(
                f"blob {algorithm}:{expected} in the archive has the content of "
                f"{algorithm}:{hasher.hexdigest()}: the archive is corrupt; re-create it."
            )
        tmp.commit(dest_path)


def unpack_oci_archive(archive_path: str, out_dir: str) -> None:
    """Extract the layout in `archive_path` into `out_dir`, verifying every blob."""
    if not os.path.isfile(archive_path):
        raise OciBuildError(f"OCI archive {archive_path!r} does not exist.")
    seen: set[str] = set()
    try:
        with tarfile.open(archive_path, "r:*") as tar:
            for member in tar:
                name = _member_name(member)
                if member.isdir() or not name:
                    continue
                blob = _BLOB.match(name)
                if name not in _LAYOUT_FILES and not blob:
                    continue
                if not member.isfile():
                    raise OciBuildError(
                        f"OCI archive {archive_path!r}: {member.name!r} is a link or special "
                        "file; an OCI layout holds regular files only."
                    )
                source = tar.extractfile(member)
                assert source is not None
                algorithm, expected = (blob.group(1), blob.group(2)) if blob else (None, None)
                _copy_verified(source, os.path.join(out_dir, name), algorithm, expected)
                seen.add(name)
    except tarfile.TarError as err:
        raise OciBuildError(f"OCI archive {archive_path!r} is not a readable tar: {err}") from err
    if "index.json" not in seen:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise OciBuildError(
            f"OCI archive {archive_path!r} holds no index.json: it is not an OCI image layout. "
            "Create one with `skopeo copy docker://IMAGE oci-archive:FILE.tar:TAG`."
        )
