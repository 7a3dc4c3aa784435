"""Property tests: random and mutated input to every Debian parser gives a valid result or an
OciBuildError, never another exception, never a hang.

The .debs mutated are real ones (xz, gzip, zstd and uncompressed data.tar, with files,
directories, symlinks and a hardlink); mutations flip bytes, truncate, splice in random bytes
and copy one part of the file over another, which reaches the ar headers, the compressed
streams and (in the uncompressed member) the tar headers. Each example runs under an alarm,
so a loop is a failure, not a stuck test run.
"""

from __future__ import annotations

import io
import json
import lzma
import os
import tarfile
import tempfile

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild.debian import deb as debmod
from ocibuild.debian import layers, lockfile
from ocibuild.debian.control import paragraphs, parse_relations
from ocibuild.debian.repository import parse_release, unverified_text
from ocibuild.debian.version import compare
from ocibuild.errors import OciBuildError
from tests.fixtures.time_limit import within
from tests.fixtures.debian_repo import ar_archive, tar_bytes

PER_EXAMPLE_S = 10
# No example database: the run leaves nothing in the working tree; a failure prints its input.
COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


DATA = tar_bytes([
    ("dir", "./", ""), ("dir", "./usr/", ""), ("dir", "./usr/bin/", ""),
    ("file", "./usr/bin/tool", "#!/bin/sh\necho tool\n" * 20),
    ("symlink", "./usr/bin/t", "tool"), ("symlink", "./usr/bin/abs", "/usr/bin/tool"),
    ("hardlink", "./usr/bin/tool2", "./usr/bin/tool"), ("dir", "./etc/", ""),
    ("file", "./etc/tool.conf", "x = 1\n"), ("file", "./usr/share/" + "n" * 110, "long name"),
])
CONTROL = tar_bytes([("dir", "./", ""),
                     ("file", "./control", "Package: tool\nVersion: 1\nArchitecture: all\n"
                                           "Description: t\n"),
                     ("file", "./md5sums", "0" * 32 + "  usr/bin/tool\n")])


def _deb(data_member: str, data: bytes) -> bytes:
    return ar_archive([("debian-binary", b"2.0\n"), ("control.tar", CONTROL),
                       (data_member, data)])


# Long names: pax (and in DATA, GNU long-name) extended headers for the mutations to reach.
LONG = "./usr/share/doc/" + "d" * 120 + "/"
PAX_DATA = tar_bytes([("dir", "./", ""), ("dir", LONG, ""), ("file", LONG + "f" * 90, "text"),
                      ("symlink", LONG + "l", "/" + "t" * 150)], fmt=tarfile.PAX_FORMAT)
DEBS = [
    _deb("data.tar.xz", lzma.compress(DATA)),
    _deb("data.tar", PAX_DATA),
    _deb("data.tar", DATA),
    _deb("data.tar.zst", zstandard.ZstdCompressor().compress(DATA)),
    _deb("data.tar.gz", __import__("gzip").compress(DATA, mtime=0)),
]


@st.composite
def mutated(draw: st.DrawFn, sources: list) -> bytes:
    data = bytearray(draw(st.sampled_from(sources)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "splice", "copy"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "copy" and data:
            start = draw(st.integers(0, len(data) - 1))
            length = draw(st.integers(1, 600))
            data[at:at + length] = data[start:start + length]
    return bytes(data)


def _layer_or_error(blob: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".deb", delete=False) as f:
        f.write(blob)
    try:
        with within(PER_EXAMPLE_S):
            try:
                package = layers.write_package_layer(f.name, io.BytesIO())
            except OciBuildError:
                return
        assert package
    finally:
        os.unlink(f.name)


def test_the_unmutated_debs_build() -> None:
    for blob in DEBS:
        with tempfile.NamedTemporaryFile(suffix=".deb") as f:
            f.write(blob)
            f.flush()
            assert layers.write_package_layer(f.name, io.BytesIO()) == "tool"


# Mutating the whole file mostly breaks the ar layer; these reach the tar parser behind it.
INNER = st.one_of(
    mutated([DATA, PAX_DATA]).map(lambda tar: _deb("data.tar", tar)),
    mutated([CONTROL]).map(lambda tar: ar_archive([("debian-binary", b"2.0\n"),
                                                   ("control.tar", tar), ("data.tar", DATA)])))


@settings(max_examples=2000, **COMMON)
@given(st.one_of(mutated(DEBS), INNER))
def test_mutated_debs(blob: bytes) -> None:
    _layer_or_error(blob)


@settings(max_examples=1000, **COMMON)
@given(st.binary(max_size=2048))
def test_random_bytes_as_a_deb(blob: bytes) -> None:
    _layer_or_error(b"!<arch>\n" + blob)


@settings(max_examples=1500, **COMMON)
@given(st.one_of(mutated(DEBS), st.binary(max_size=512).map(lambda b: b"!<arch>\n" + b)))
def test_ar_members(blob: bytes) -> None:
    with within(PER_EXAMPLE_S):
        try:
            found = debmod.members(io.BytesIO(blob), "x.deb")
        except OciBuildError:
            return
    for offset, size in found.values():
        assert 0 < offset and offset + size <= len(blob)


@settings(max_examples=1000, **COMMON)
@given(mutated([ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", lzma.compress(CONTROL)),
                            ("data.tar", DATA)])]))
def test_control_files(blob: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".deb") as f:
        f.write(blob)
        f.flush()
        with within(PER_EXAMPLE_S):
            try:
                files = debmod.control_files(f.name)
            except OciBuildError:
                return
    assert all(isinstance(v, bytes) for v in files.values())


DEB822 = st.text(st.sampled_from("Pakge: \n\t -,|()<>=[]:~+.0123456789abcxyz#\r\x00é"),
                 max_size=300)


@settings(max_examples=2000, **COMMON)
@given(DEB822)
def test_paragraphs(text: str) -> None:
    try:
        found = list(paragraphs(text))
    except OciBuildError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for p in found for k, v in p.items())


@settings(max_examples=2000, **COMMON)
@given(DEB822)
def test_parse_relations(text: str) -> None:
    try:
        groups = parse_relations(text)
    except OciBuildError:
        return
    assert all(r.name for group in groups for r in group)


VERSION = st.text(st.sampled_from("0123456789:~-+.abzAZ²٣"), max_size=16)


@settings(max_examples=1500, **COMMON)
@given(VERSION, VERSION)
def test_version_compare(a: str, b: str) -> None:
    try:
        ab = compare(a, b)
    except OciBuildError:
        return
    assert ab in (-1, 0, 1) and compare(b, a) == -ab and compare(a, a) == 0


RELEASE_LINE = st.one_of(
    st.just("SHA256:"), st.just("Suite: s"), st.just("Codename: x"), st.just(""),
    st.builds(lambda h, n, p: f" {h} {n} {p}", st.text("0123456789abcdef", min_size=60,
                                                          max_size=66),
              st.text("0123456789-x ", max_size=12), st.text("abc/._ ", max_size=12)),
    DEB822)


@settings(max_examples=1000, **COMMON)
@given(st.lists(RELEASE_LINE, max_size=12).map("\n".join))
def test_parse_release(text: str) -> None:
    """`text` stands for what gpgv verified: the parser sees nothing else."""
    try:
        release = parse_release(text, "s", "verified")
    except OciBuildError:
        return
    assert release.sha256 and all(len(h) == 64 and n >= 0 for h, n in release.sha256.values())


@settings(max_examples=1000, **COMMON)
@given(st.binary(max_size=400).map(
    lambda b: b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + b
    + b"\n-----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n")
    | st.binary(max_size=400))
def test_unverified_inrelease(blob: bytes) -> None:
    try:
        text = unverified_text(blob)
    except OciBuildError:
        return
    assert "-----BEGIN PGP SIGNATURE-----" not in text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(
        ["amd64", "pool/a.deb", "0" * 64, "a", "verified by gpgv with k"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["version", "request", "packages", "inrelease_signature", "amd64",
                         "name", "version", "architecture", "filename", "size", "sha256",
                         "suite", "mirror", "components", "architectures", "sources", "url",
                         "date", "timestamp"]), inner, max_size=6),
    max_leaves=30)
GOOD_LOCK = {"version": 2,
             "sources": [{"suite": "s", "mirror": "http://m", "date": "", "timestamp": "",
                          "inrelease_signature": "verified by gpgv with k"}],
             "request": {"sources": [{"suite": "s", "mirror": "http://m"}],
                         "components": ["main"], "architectures": ["amd64"], "packages": ["a"]},
             "packages": {"amd64": [{"name": "a", "version": "1", "architecture": "all",
                                     "filename": "pool/a.deb", "size": 1, "sha256": "0" * 64,
                                     "suite": "s", "url": "http://m/pool/a.deb"}]}}


@settings(max_examples=700, **COMMON)
@given(st.one_of(
    JSON.map(lambda doc: json.dumps(doc).encode()),
    st.builds(lambda key, value: json.dumps({**GOOD_LOCK, key: value}).encode(),
              st.sampled_from(sorted(GOOD_LOCK)), JSON),
    mutated([json.dumps(GOOD_LOCK).encode()])))
def test_lockfile_load(data: bytes) -> None:
    try:
        doc = lockfile.load(data, "x.lock.json")
        for arch in doc["packages"]:
            lockfile.packages_for(doc, arch, "x.lock.json")
        lockfile.check_signature(doc, False, "x.lock.json", "fix")
        lockfile.check_current(doc, GOOD_LOCK["request"], "x.lock.json", "fix")
    except OciBuildError:
        return
