"""The files of an OCI layout: blobs by digest, index.json and oci-layout, read hardened.

Every path is checked against symbolic links leading out of the layout; JSON is read capped
and digest-verified (see `ocibuild.layout` for the whole policy).
"""

from __future__ import annotations

import os
from typing import BinaryIO, Sequence, Tuple

from ocibuild import canonical_json, mediatypes
from ocibuild.atomic import atomic_write
from ocibuild.digest import bytes_digest, hex_of
from ocibuild.errors import OciBuildError
from ocibuild.image.kind import document_type
from ocibuild.image.manifest import Descriptor, image_index
from ocibuild.untrusted import field, load_json, os_reason, read_file

OCI_LAYOUT_FILE = {"imageLayoutVersion": "1.0.0"}
# Manifests, configs and indexes are kilobytes; a "JSON" blob beyond this is a mistake.
MAX_JSON_BLOB = 16 << 20


class OciLayout:
    def __init__(self, path: object) -> None:
        self.path = str(path)

    def _inside(self, *parts: str) -> str:
        """The path of `parts` in the layout, refused when a symbolic link on the way leads
        outside the layout's root (a hostile layout could name /etc/shadow a blob)."""
        path = os.path.join(self.path, *parts)
        root = os.path.realpath(self.path)
        real = os.path.realpath(path)
        if not real.startswith(root.rstrip(os.sep) + os.sep):
            raise OciBuildError(
                f"layout {self.path!r}: {'/'.join(parts)} is a symbolic link (or lies under one) "
                f"leading outside the layout, to {real!r}; refusing to follow it. A layout holds "
                "its own files: copy it without links, e.g. `cp -rL` or `skopeo copy`")
        return path

    def blob_path(self, digest: str) -> str:
        return self._inside("blobs", "sha256", hex_of(digest))

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob `digest` opened for reading; absent or unreadable is an error naming it."""
        path = self.blob_path(digest)
        if not os.path.isfile(path):
            raise OciBuildError(f"layout {self.path!r} lacks the blob {digest}: the layout is "
                                "incomplete; copy it again")
        try:
            return open(path, "rb")
        except OSError as err:
            raise OciBuildError(f"cannot read the blob {digest} of layout {self.path!r}: "
                                f"{os_reason(err)}") from None

    def read_index(self) -> dict:
        path = self._inside("index.json")
        if not os.path.isfile(path):
            raise OciBuildError(f"{self.path!r} is not an OCI image layout: it has no index.json; "
                                "create one with `skopeo copy docker://IMAGE oci:DIR:TAG`")
        where = f"layout {self.path!r}: index.json"
        index = _parse_json(read_file(path, "the index", MAX_JSON_BLOB), where)
        field(index, "manifests", list, where, required=True)
        # index.json is an index; a manifest's mediaType there would be read two ways.
        document_type(index, where, expect=mediatypes.INDEXES)
        return index

    def read_json_blob(self, digest: str) -> Tuple[bytes, dict]:
        """A small JSON blob's exact bytes and its JSON, verified against its digest (blobs are
        named by what they hold); the bytes are kept so a re-written blob keeps its digest."""
        with self.open_blob(digest) as f:
            data = f.read(MAX_JSON_BLOB + 1)
        where = f"layout {self.path!r}: blob {digest}"
        if len(data) > MAX_JSON_BLOB:  # a layer where a manifest belongs: do not hash 1 GB
            raise OciBuildError(f"{where} is over {MAX_JSON_BLOB >> 20} MiB: not a manifest, "
                                "index or config")
        if bytes_digest(data) != digest:
            raise OciBuildError(f"layout {self.path!r}: blob {digest} does not match its digest "
                                "(corrupt or edited); copy the layout again")
        return data, _parse_json(data, where)

    def read_blob_json(self, digest: str) -> dict:
        return self.read_json_blob(digest)[1]

    def write_blob_bytes(self, data: bytes, media_type: str) -> Descriptor:
        digest = bytes_digest(data)
        atomic_write(self.blob_path(digest), data, keep_existing=True)
        return Descriptor(media_type, digest, len(data))

    def write_index(self, manifests: Sequence[Descriptor]) -> None:
        self.write_index_json(image_index(manifests))

    def write_index_json(self, index: dict) -> None:
        """index.json as given: for entries the `Descriptor` model does not keep (an
        artifact manifest's `artifactType`)."""
        atomic_write(self._inside("index.json"), canonical_json.dumps(index))

    def write_oci_layout_file(self) -> None:
        atomic_write(self._inside("oci-layout"), canonical_json.dumps(OCI_LAYOUT_FILE))


def _parse_json(data: bytes, where: str) -> dict:
    if len(data) > MAX_JSON_BLOB:
        raise OciBuildError(f"{where} is over {MAX_JSON_BLOB >> 20} MiB: not a manifest, "
                            "index or config")
    return load_json(data, where)
