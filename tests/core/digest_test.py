"""Digests, the hashing writer/reader, and canonical JSON bytes."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from ocibuild import canonical_json
from ocibuild.digest import (
    EMPTY_DIGEST,
    HashingReader,
    HashingWriter,
    bytes_digest,
    file_digest,
    hex_of,
    validate_digest,
)
from ocibuild.errors import OciBuildError


def test_hashing_writer_counts_hashes_and_passes_on() -> None:
    target = io.BytesIO()
    writer = HashingWriter(target)
    for chunk in (b"hello ", b"", b"world"):
        writer.write(chunk)
    assert target.getvalue() == b"hello world"
    assert writer.size == 11
    assert writer.digest == "sha256:" + hashlib.sha256(b"hello world").hexdigest()
    assert HashingWriter().digest == EMPTY_DIGEST


def test_hashing_reader() -> None:
    reader = HashingReader(io.BytesIO(b"abc" * 1000))
    while reader.read(7):
        pass
    assert (reader.digest, reader.size) == (bytes_digest(b"abc" * 1000), 3000)


def test_file_digest_spanning_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # over 2 MiB: several 1 MiB chunks
    (tmp_path / "f").write_bytes(data)
    assert file_digest(str(tmp_path / "f")) == (bytes_digest(data), len(data))


def test_validate_digest() -> None:
    assert hex_of(EMPTY_DIGEST) == EMPTY_DIGEST[7:]
    for bad in ("sha256:abc", "sha512:" + "0" * 64, "sha256:" + "A" * 64, None):
        with pytest.raises(OciBuildError) as err:
            validate_digest(bad)
        assert str(err.value) == (
            f"digest {bad!r} must be 'sha256:' followed by 64 lowercase hex digits, "
            f'e.g. "{EMPTY_DIGEST}"'
        )


def test_canonical_json() -> None:
    value = {"b": [1, {"z": 1, "a": "é"}], "a": None}
    assert canonical_json.dumps(value) == '{"a":null,"b":[1,{"a":"é","z":1}]}'.encode()
    reordered = {"a": None, "b": [1, {"a": "é", "z": 1}]}
    assert canonical_json.dumps(reordered) == canonical_json.dumps(value)
    with pytest.raises(ValueError):
        canonical_json.dumps({"x": float("nan")})
