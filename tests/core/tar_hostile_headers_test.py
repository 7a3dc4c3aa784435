"""Every reader of a tar this tool did not write, against the extended headers tarfile
mishandles: a chain of thousands (RecursionError), one claiming 64 MiB (read into memory),
pax GNU.sparse values that are no numbers (ValueError) or past any size (OverflowError).
Each reader must refuse each with an OciBuildError naming its input, in bounded memory."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tracemalloc
from typing import Callable, Dict

import pytest

from ocibuild import mediatypes
from ocibuild.dockerfile import add
from ocibuild.dockerfile.content import Blobs
from ocibuild.dockerfile.fstree import Tree
from ocibuild.errors import OciBuildError
from ocibuild.layer.base_tree import base_tree
from ocibuild.oci_archive import unpack_oci_archive
from ocibuild.rootfs.unpack import unpack
from ocibuild.unpacked import read_files

GZIP = mediatypes.OCI_LAYER_GZIP
BIG = 64 << 20


def _header(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info.tobuf(tarfile.USTAR_FORMAT)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def _file(name: str = "etc/passwd") -> bytes:
    return _header(name, tarfile.REGTYPE, 0)


def _pax(record: str) -> bytes:
    body = f" {record}\n".encode()
    length = len(body) + len(str(len(body)))
    length = len(body) + len(str(length))
    data = str(length).encode() + body
    return _header("././@PaxHeader", tarfile.XHDTYPE, len(data)) + _padded(data)


def _chain() -> bytes:
    one = _header("././@LongLink", tarfile.GNUTYPE_LONGNAME, 5) + _padded(b"name\0")
    return one * 3000 + _file()


def _long_name() -> bytes:
    return (_header("././@LongLink", tarfile.GNUTYPE_LONGNAME, BIG) + b"a" * BIG) + _file()


HOSTILE: Dict[str, Callable[[], bytes]] = {
    "3000 long names in a row": _chain,
    "a 64 MiB long name": _long_name,
    "a sparse size that is no number": lambda: _pax("GNU.sparse.size=x") + _file(),
    "a sparse map that is no number": lambda: (_pax("GNU.sparse.map=1,x") + _file()),
    "a sparse size past any file": lambda: _pax("GNU.sparse.size=" + "9" * 30) + _file(),
    "a size past any file": lambda: _pax("size=" + "9" * 30) + _file(),
    # tarfile took it, and lost the members after it without a word (Go: ErrHeader)
    "a negative size": lambda: _pax("size=-5") + _file() + _file("etc/group"),
}


def _layer(case: str) -> bytes:
    return gzip.compress(HOSTILE[case]() + bytes(1024), 1)


def _blobs(blob: bytes, tmp_path) -> None:
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    blobs = Blobs()
    blobs.add(digest, GZIP, lambda: io.BytesIO(blob))
    blobs.apply(Tree(), digest, "FROM base")


def _run_step_unpack(blob: bytes, tmp_path) -> None:
    path = tmp_path / "layer.tar.gz"
    path.write_bytes(blob)
    unpack([(str(path), GZIP)], str(tmp_path / "root"))


def _accounts(blob: bytes, tmp_path) -> None:
    read_files([("sha256:x", GZIP, lambda: io.BytesIO(blob))], ["etc/passwd"], 1 << 20)


def _base_tree(blob: bytes, tmp_path) -> None:
    base_tree([("sha256:x", GZIP, len(blob), io.BytesIO(blob))])


def _added_archive(blob: bytes, tmp_path) -> None:
    path = tmp_path / "context.tar.gz"
    path.write_bytes(blob)
    add.is_archive(str(path))  # either answer, but an answer
    add.unpack(str(path), "context.tar.gz", str(tmp_path / "work"), "Dockerfile:2: ADD")


def _oci_archive(blob: bytes, tmp_path) -> None:
    path = tmp_path / "image.tar.gz"
    path.write_bytes(blob)
    unpack_oci_archive(str(path), str(tmp_path / "layout"))


READERS = {"a stage's model (Dockerfile)": _blobs, "a RUN step's unpacking": _run_step_unpack,
           "the accounts reader": _accounts, "the base tree": _base_tree,
           "an ADDed archive": _added_archive, "an OCI archive": _oci_archive}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_refuses_extended_headers_tarfile_mishandles(reader, case, tmp_path):
    blob = _layer(case)
    tracemalloc.start()
    try:
        with pytest.raises(OciBuildError):
            READERS[reader](blob, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20, f"{reader} held {peak} bytes for {case}"
    assert not os.path.exists(tmp_path / "layout")  # no partial output either
