"""Layer blobs: checked by the system gzip/tar/zstd; digest, size and diff_id verified."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import subprocess
import zlib
from pathlib import Path

import pytest

from ocibuild import mediatypes
from ocibuild.digest import file_digest
from ocibuild.errors import OciBuildError
from ocibuild.layer.builder import LayerBlob, build_layer
from ocibuild.layer.compression import LayerWriter, compressor_version
from ocibuild.layer.entries import FILE, LayerEntry, collect_entries

from .conftest import decompressed, need, run_tool, tar_members


def build(tree: Path, out: Path, **kwargs) -> LayerBlob:
    return build_layer(collect_entries([(str(tree), "app")]), str(out), **kwargs)


def blob_path(out: Path, blob: LayerBlob) -> Path:
    return out / "blobs/sha256" / blob.digest.split(":")[1]


def check_blob(out: Path, blob: LayerBlob) -> bytes:
    path = blob_path(out, blob)
    assert (blob.digest, blob.size) == file_digest(str(path))
    tar = decompressed(path)
    assert blob.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert os.listdir(path.parent) == [path.name]  # no temp file left behind
    return tar


def test_gzip_layer(tree: Path, tmp_path: Path) -> None:
    blob = build(tree, tmp_path / "out")
    assert blob.media_type == mediatypes.OCI_LAYER_GZIP
    check_blob(tmp_path / "out", blob)
    path = blob_path(tmp_path / "out", blob)
    run_tool([need("gzip"), "-t", str(path)])
    listing = run_tool([need("tar"), "-tzf", str(path)]).stdout.decode().split()
    assert listing[:3] == ["app/", "app/bin/", "app/bin/run.sh"]
    header = path.read_bytes()[:10]
    # magic, deflate, no flags (no file name), mtime 0, xfl 0 (level 4), OS "unknown" (255).
    assert header == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def test_zstd_layer(tree: Path, tmp_path: Path) -> None:
    blob = build(tree, tmp_path / "out", compression="zstd")
    assert blob.media_type == mediatypes.OCI_LAYER_ZSTD
    tar = check_blob(tmp_path / "out", blob)
    assert [m.name for m, _ in tar_members(tar)][:2] == ["app", "app/bin"]
    run_tool([need("zstd"), "-q", "-t", str(blob_path(tmp_path / "out", blob))])


def test_uncompressed_layer(tree: Path, tmp_path: Path) -> None:
    blob = build(tree, tmp_path / "out", compression="none")
    assert blob.media_type == mediatypes.OCI_LAYER
    assert blob.digest == blob.diff_id
    check_blob(tmp_path / "out", blob)
    run_tool([need("tar"), "-tf", str(blob_path(tmp_path / "out", blob))])


def test_levels_change_bytes_not_content(tree: Path, tmp_path: Path) -> None:
    fast = build(tree, tmp_path / "a", level=1)
    best = build(tree, tmp_path / "b", level=9)
    assert fast.diff_id == best.diff_id and fast.digest != best.digest


def test_existing_blob_is_kept(tree: Path, tmp_path: Path) -> None:
    first = build(tree, tmp_path / "out")
    inode = blob_path(tmp_path / "out", first).stat().st_ino
    assert build(tree, tmp_path / "out") == first
    assert blob_path(tmp_path / "out", first).stat().st_ino == inode
    assert len(os.listdir(tmp_path / "out/blobs/sha256")) == 1


def test_failure_leaves_no_partial_blob(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"short")
    with pytest.raises(OciBuildError):
        build_layer([LayerEntry("f", FILE, source=str(tmp_path / "f"), size=100)],
                    str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # nor the directories made for the blob


@pytest.mark.parametrize("compression, level, message", [
    ("brotli", None, "compression 'brotli': must be gzip, zstd or none, e.g. \"gzip\""),
    ("gzip", 13, "compression level 13: gzip (libdeflate) takes 0 to 12, e.g. 4"),
    ("zstd", 0, "compression level 0: zstd takes 1 to 22, e.g. 3"),
    ("none", 3, "compression level 3: 'none' takes no level; drop the level or use gzip or zstd"),
])
def test_bad_compression_settings(compression, level, message) -> None:
    with pytest.raises(OciBuildError) as err:
        LayerWriter(io.BytesIO(), compression, level)
    assert str(err.value) == message


@pytest.mark.parametrize("compression, level, engine, message", [
    ("gzip", 10, "zlib", "compression level 10: gzip (zlib) takes 0 to 9, e.g. 4"),
    ("gzip", None, "zopfli", "gzip engine 'zopfli': must be libdeflate (the default: the same "
     'bytes on every machine) or zlib (the system zlib), e.g. "zlib"'),
    ("zstd", None, "zlib", "gzip engine 'zlib': only for gzip layers, not zstd; drop the engine"),
])
def test_bad_gzip_engine_settings(compression, level, engine, message) -> None:
    with pytest.raises(OciBuildError) as err:
        LayerWriter(io.BytesIO(), compression, level, engine=engine)
    assert str(err.value) == message


def _compress(data: bytes, compression: str, threads: int, level=None, engine=None) -> bytes:
    out = io.BytesIO()
    writer = LayerWriter(out, compression, level, threads=threads, engine=engine)
    for i in range(0, len(data), 100_003):  # writes that do not line up with blocks
        writer.write(data[i:i + 100_003])
    writer.close()
    return out.getvalue()


@pytest.mark.parametrize("compression, engine", [("gzip", None), ("gzip", "zlib"),
                                                 ("zstd", None)])
def test_bytes_do_not_depend_on_the_thread_count(compression: str, engine) -> None:
    rng = random.Random(7)
    data = b"".join(rng.choice([b"text " * 2000, rng.randbytes(10_000)]) for _ in range(700))
    outputs = {threads: _compress(data, compression, threads, engine=engine)
               for threads in (1, 2, 5)}
    assert outputs[1] == outputs[2] == outputs[5]
    if compression == "gzip":
        assert gzip.decompress(outputs[1]) == data
        assert subprocess.run(["gzip", "-t"], input=outputs[1]).returncode == 0


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_handed_over_chunks_give_the_same_layer_as_writes(compression: str) -> None:
    """`write_chunk` (hashed in place on a thread), small writes and their mix: one layer."""
    rng = random.Random(11)
    data = b"".join(rng.choice([b"text " * 3000, rng.randbytes(30_000)]) for _ in range(200))

    def layer(chunked: bool):
        out = io.BytesIO()
        writer = LayerWriter(out, compression)
        for n, i in enumerate(range(0, len(data), 300_007)):
            piece = data[i:i + 300_007]
            if chunked and n % 3:
                writer.write_chunk(memoryview(bytearray(piece)))
            else:
                writer.write(piece)
        writer.close()
        return out.getvalue(), writer.diff_id, writer.digest, writer.size

    chunked, plain = layer(True), layer(False)
    assert chunked == plain
    assert plain[1] == "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("engine", [None, "zlib"])
@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 << 20])
def test_pgzip_block_edges(size: int, engine) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    blob = _compress(data, "gzip", 2, engine=engine)
    assert gzip.decompress(blob) == data
    assert subprocess.run(["gzip", "-t"], input=blob).returncode == 0


@pytest.mark.parametrize("engine", [None, "zlib"])
def test_incompressible_blocks_are_stored(engine) -> None:
    rng = random.Random(11)
    noise = rng.randbytes(3 << 20)  # as zipped wheels or jars: deflate would gain nothing
    text = b"".join(b"line %d of a text file\n" % i for i in range(150_000))  # ~3.4 MB
    mixed = b"".join(rng.randbytes(30_000) + text[:10_000] for _ in range(100))
    for data in (noise, text, mixed, noise + text):
        outputs = {threads: _compress(data, "gzip", threads, engine=engine) for threads in (1, 3)}
        assert outputs[1] == outputs[3]
        assert gzip.decompress(outputs[1]) == data
        assert subprocess.run(["gzip", "-t"], input=outputs[1]).returncode == 0
    def size(data: bytes) -> int:
        return len(_compress(data, "gzip", 2, engine=engine))

    # Stored: 5 bytes of framing per 64 KiB (+ 18 per MiB member), not a search through noise.
    assert size(noise) < len(noise) * 1.001
    # Text and mixed blocks are still deflated.
    assert size(text) < len(text) // 5
    assert size(mixed) < len(mixed) * 0.8
    assert size(noise + text) < len(noise) * 1.001 + len(text) // 5


def test_compressor_version_names_every_library() -> None:
    version = compressor_version()
    assert version.startswith("pgzip 3 deflate 0.8.1, ")
    assert f"zlib {zlib.ZLIB_RUNTIME_VERSION}" in version and "zstandard 0.21.0" in version
