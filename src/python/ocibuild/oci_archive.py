"""Unpack an OCI image layout kept as a tar (`skopeo copy ... oci-archive:F.tar`, `docker save`).

Only the layout's own files are taken (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`);
other members (docker's `manifest.json`, `repositories`) are skipped, so a `docker save`
tarball of Docker >= 25 works too. Links, devices and paths outside the layout are refused:
the archive is data, not a filesystem to recreate. Every blob is verified while it streams.

The layout is unpacked into a temp directory beside `out_dir` and renamed into place only
when complete and holding an index.json (`ocibuild.atomic.atomic_directory`): `out_dir` must
not exist or be empty, and a failed or interrupted run leaves it exactly as it was. An
existing, non-empty `out_dir` is refused, never merged into or deleted: it is the user's.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import tarfile
import zlib
from typing import Optional

from ocibuild import mediatypes
from ocibuild.atomic import TempFile, atomic_directory
from ocibuild.bounded_decompress import BoundedReader, open_decompressed
from ocibuild.errors import OciBuildError
from ocibuild.image.kind import document_type
from ocibuild.image.manifest import Descriptor
from ocibuild.layer.tarinfo import open_stream
from ocibuild.layout import OciLayout
from ocibuild.untrusted import field, load_json, os_reason, read_file

_BLOB = re.compile(r"^blobs/(sha256|sha512)/([0-9a-f]{64}|[0-9a-f]{128})$")
_LAYOUT_FILES = ("oci-layout", "index.json")
_CHUNK = 1 << 20  # constant memory whatever the blob size
_MAX_INDEX = 16 << 20  # as ocibuild.layout reads it


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
    """Extract the layout in `archive_path` into `out_dir`, verifying every blob.

    The archive may be compressed (gzip, bzip2, xz, zstd: as its first bytes say); what comes
    out is bounded (`ocibuild.bounded_decompress`), and each member's declared size is checked
    against the bound before any of it is written."""
    if not os.path.isfile(archive_path):
        raise OciBuildError(f"OCI archive {archive_path!r} does not exist.")
    try:
        archive = open(archive_path, "rb")
        size = os.fstat(archive.fileno()).st_size
    except OSError as err:
        raise OciBuildError(f"cannot read the OCI archive {archive_path!r}: "
                            f"{os_reason(err)}") from None
    where = f"OCI archive {archive_path!r}"
    with archive, atomic_directory(out_dir) as tmp:
        try:
            with open_decompressed(archive, where, size) as stream, \
                    open_stream(stream) as tar:  # type: ignore[arg-type]
                seen = _unpack(tar, stream, archive_path, tmp)
        except tarfile.TarError as err:
            raise OciBuildError(f"{where} is not a readable tar: {err}") from None
        except (OSError, EOFError, zlib.error) as err:  # unreadable, truncated, or disk full
            reason = os_reason(err) if isinstance(err, OSError) else str(err)
            raise OciBuildError(f"unpacking the OCI archive {archive_path!r} into {out_dir!r} "
                                f"failed: {reason}") from None
        if "index.json" not in seen:
            raise OciBuildError(
                f"OCI archive {archive_path!r} holds no index.json: it is not an OCI image "
                "layout. Create one with `skopeo copy docker://IMAGE oci-archive:FILE.tar:TAG`."
            )
        _check_complete(archive_path, OciLayout(tmp))


def _check_complete(archive_path: str, layout: OciLayout) -> None:
    """index.json is a valid index, and the manifests it lists came along: a tar cut short
    between members reads as a shorter tar, so this is what tells it from a whole one."""
    where = f"OCI archive {archive_path!r}: index.json"
    data = read_file(os.path.join(layout.path, "index.json"), where, _MAX_INDEX)
    index = load_json(data, where)
    document_type(index, where, expect=mediatypes.INDEXES)
    for i, raw in enumerate(field(index, "manifests", list, where, required=True)):
        descriptor = Descriptor.from_json(raw, where=f"{where} manifests[{i}]")
        path = layout.blob_path(descriptor.digest)
        if not os.path.isfile(path):
            raise OciBuildError(f"{where} lists {descriptor.digest}, which the archive lacks: "
                                "it is incomplete (cut short?); create it again")
        if os.path.getsize(path) != descriptor.size:
            raise OciBuildError(f"{where} lists {descriptor.digest} as {descriptor.size} bytes; "
                                f"the archive's blob has {os.path.getsize(path)}: the archive "
                                "is corrupt; create it again")


def _check_not_a_layout_file(name: str, where: str) -> None:
    """A member skipped here must not be a layout file to another extractor: most clean
    `a/../index.json` or `/index.json` to index.json, and a case-insensitive file system makes
    INDEX.JSON the same file. Skipping it here while another reader takes it would make one
    archive two layouts."""
    cleaned = posixpath.normpath("/" + name).lstrip("/").casefold()
    if cleaned in _LAYOUT_FILES or _BLOB.match(cleaned):
        raise OciBuildError(f"{where} is a layout file under another spelling, which "
                            f"extractors read differently; name it {cleaned!r} or leave it out")


def _unpack(tar: tarfile.TarFile, stream: BoundedReader, archive_path: str,
            out_dir: str) -> set:
    """The layout's members of `tar` written under `out_dir`; returns their names."""
    seen: set = set()
    for member in tar:
        name = _member_name(member)
        where = f"OCI archive {archive_path!r}: {member.name!r}"
        if member.issparse():
            # Its size is what it expands to, not what the archive holds; no layout writer
            # makes one.
            raise OciBuildError(f"{where} is a sparse file; an OCI layout holds plain files")
        # Skipped members count too: skipping one decompresses it.
        stream.declare(member.size, where)
        if member.isdir() or not name:
            continue
        blob = _BLOB.match(name)
        if name not in _LAYOUT_FILES and not blob:
            _check_not_a_layout_file(name, where)
            continue
        if not member.isfile():
            raise OciBuildError(
                f"OCI archive {archive_path!r}: {member.name!r} is a link or special "
                "file; an OCI layout holds regular files only."
            )
        if name in seen:
            # Extractors disagree on which copy wins (the first, the last): one archive, two
            # layouts. Blobs are verified, but index.json and oci-layout are not.
            raise OciBuildError(f"{where} appears twice in the archive; which copy counts "
                                "would depend on the reader, so the archive is refused")
        source = tar.extractfile(member)
        assert source is not None
        algorithm, expected = (blob.group(1), blob.group(2)) if blob else (None, None)
        _copy_verified(source, os.path.join(out_dir, name), algorithm, expected)
        seen.add(name)
    return seen
