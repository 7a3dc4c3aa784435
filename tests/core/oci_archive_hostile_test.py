"""Hostile OCI archives: decompression bombs, lying sizes, sparse and repeated members.

A bomb is a valid archive: its blob is named by its true digest. What makes it hostile is
that a few KiB expand to more than any image needs, so it must be refused before it fills
the disk: each test measures the bytes this process wrote (/proc/self/io) while unpacking.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import tarfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
import zstandard

from ocibuild import mediatypes
from ocibuild.bounded_decompress import MAX_RATIO, SLACK
from ocibuild.errors import OciBuildError
from ocibuild.layout import OciLayout, resolve_image
from ocibuild.oci_archive import unpack_oci_archive

from .oci_archive_test import one_image_archive

MiB = 1 << 20
COMPRESSORS: Dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "bzip2": lambda data: bz2.compress(data, 9),
    "xz": lambda data: lzma.compress(data),
    "zstd": lambda data: zstandard.ZstdCompressor(level=19).compress(data),
}


def written() -> int:
    """Bytes this process has written so far (every write(2), to any file)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


def tar_bytes(members: List[Tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def blob(data: bytes) -> Tuple[str, bytes]:
    return f"blobs/sha256/{hashlib.sha256(data).hexdigest()}", data


@pytest.fixture(scope="module")
def zeros_tar() -> bytes:
    """A valid layout member: 64 MiB of zeros named by their digest."""
    return tar_bytes([blob(bytes(64 * MiB))])


def unpack_refused(archive: Path, out: Path) -> Tuple[str, int, float]:
    """The error, the bytes written and the seconds taken by a refused unpack."""
    before, start = written(), time.monotonic()
    with pytest.raises(OciBuildError) as err:
        unpack_oci_archive(str(archive), str(out))
    taken, wrote = time.monotonic() - start, written() - before
    assert not out.exists()
    assert sorted(p.name for p in archive.parent.iterdir()) == [archive.name]  # no debris
    return str(err.value), wrote, taken


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_a_tiny_compressed_archive_expanding_past_the_bound_is_refused_before_writing(
        tmp_path: Path, zeros_tar: bytes, compression: str) -> None:
    data = COMPRESSORS[compression](zeros_tar)
    assert len(data) < 64 * 1024  # a few KiB: 64 MiB of zeros compress ~1000x or more
    archive = tmp_path / "in" / f"bomb.tar.{compression}"
    archive.parent.mkdir()
    archive.write_bytes(data)
    message, wrote, taken = unpack_refused(archive, tmp_path / "out")
    name = blob(b"")[0][:13]
    assert message.startswith(f"OCI archive {str(archive)!r}: '{name}")
    assert message.endswith(
        f"' declares {64 * MiB} bytes, which would take OCI archive {str(archive)!r} to "
        f"{64 * MiB} before any of it is written, past its {SLACK}-byte bound ({compression}: "
        f"at most {MAX_RATIO}x its {len(data)} bytes, at least 8 MiB, at most 64 GiB); refusing "
        "it as a decompression bomb. If it is genuine, unpack it yourself and use the directory")
    assert wrote < 64 * 1024, wrote  # nothing of the member; at most the temp dir's names
    assert taken < 5, taken


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_many_small_blobs_stop_at_the_bound(tmp_path: Path, compression: str) -> None:
    """Each blob is small and honest; together they pass the bound: at most the bound is
    written, then the archive is refused and what was written removed."""
    members = [blob(bytes([i]) * MiB) for i in range(16)]
    data = COMPRESSORS[compression](tar_bytes(members))
    archive = tmp_path / "in" / "many.tar"
    archive.parent.mkdir()
    archive.write_bytes(data)
    message, wrote, _ = unpack_refused(archive, tmp_path / "out")
    # The stream's own count (headers included) passes the bound before the 9th header does.
    assert message.startswith(f"OCI archive {str(archive)!r} decompresses ({compression}) to "
                              f"more than {SLACK} bytes, past its {SLACK}-byte bound")
    assert SLACK - MiB <= wrote <= SLACK + 64 * 1024, wrote


def test_skipped_members_count_too(tmp_path: Path) -> None:
    """A member the unpacker skips (docker's manifest.json, junk) is decompressed to skip it."""
    data = gzip.compress(tar_bytes([("junk", bytes(64 * MiB))]), mtime=0)
    archive = tmp_path / "in" / "junk.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(data)
    message, wrote, taken = unpack_refused(archive, tmp_path / "out")
    assert message.startswith(f"OCI archive {str(archive)!r}: 'junk' declares 67108864 bytes")
    assert wrote < 64 * 1024 and taken < 5


def test_a_member_bigger_than_the_archive_is_refused_unread(tmp_path: Path) -> None:
    """A plain tar holds every byte it unpacks: a header (or PAX size record) claiming more is
    a lie, refused before anything is written."""
    info = tarfile.TarInfo(blob(b"y")[0])
    info.size = 1 << 40
    pax = info.tobuf(tarfile.PAX_FORMAT)  # sizes over 8 GiB go in a PAX record
    archive = tmp_path / "in" / "liar.tar"
    archive.parent.mkdir()
    archive.write_bytes(pax + bytes(4096))
    message, wrote, _ = unpack_refused(archive, tmp_path / "out")
    size = len(pax) + 4096
    assert message == (
        f"OCI archive {str(archive)!r}: {info.name!r} declares {1 << 40} bytes, which would "
        f"take OCI archive {str(archive)!r} to {1 << 40} before any of it is written, past its "
        f"{size}-byte bound (its own {size} bytes); refusing it as a decompression bomb. If it "
        "is genuine, unpack it yourself and use the directory")
    assert wrote < 64 * 1024


@pytest.mark.parametrize("compressed", [False, True])
def test_a_huge_pax_header_is_refused_not_read_into_memory(tmp_path: Path,
                                                           compressed: bool) -> None:
    """tarfile reads an extended header whole: 64 MiB of it is refused after 1 MiB."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 64 * MiB
    data = header.tobuf(tarfile.USTAR_FORMAT) + bytes(2 * MiB)
    archive = tmp_path / "in" / "pax.tar"
    archive.parent.mkdir()
    archive.write_bytes(gzip.compress(data, mtime=0) if compressed else data)
    message, _, _ = unpack_refused(archive, tmp_path / "out")
    assert message == (  # refused by its header (ocibuild.layer.tarinfo), before any read
        f"OCI archive {str(archive)!r} is not a readable tar: an extended header claims "
        f"{64 * MiB} bytes (at byte 0), over {1 << 20}")


def test_a_sparse_member_is_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo(blob(b"")[0])
    info.type = tarfile.GNUTYPE_SPARSE
    archive = tmp_path / "in" / "sparse.tar"
    archive.parent.mkdir()
    archive.write_bytes(info.tobuf(tarfile.GNU_FORMAT) + bytes(10240))
    message, _, _ = unpack_refused(archive, tmp_path / "out")
    assert message == (f"OCI archive {str(archive)!r}: {info.name!r} is a sparse file; an OCI "
                       "layout holds plain files")


@pytest.mark.parametrize("name", ["index.json", "oci-layout", "blob"])
def test_a_layout_file_twice_is_refused(tmp_path: Path, name: str) -> None:
    """Readers disagree on which copy of a repeated member counts (the first, the last)."""
    archive = one_image_archive(tmp_path)
    with tarfile.open(archive) as tar:
        names = [m.name for m in tar.getmembers()]
        member = next(n for n in names
                      if n == name or (name == "blob" and n.startswith("blobs/sha256/")))
        content = tar.extractfile(member).read()  # type: ignore[union-attr]
    with tarfile.open(archive, "a") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    with pytest.raises(OciBuildError) as err:
        unpack_oci_archive(str(archive), str(tmp_path / "out"))
    assert str(err.value) == (
        f"OCI archive {str(archive)!r}: {member!r} appears twice in the archive; which copy "
        "counts would depend on the reader, so the archive is refused")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_an_honest_compressed_archive_unpacks(tmp_path: Path, compression: str) -> None:
    archive = one_image_archive(tmp_path)
    packed = tmp_path / f"a.tar.{compression}"
    packed.write_bytes(COMPRESSORS[compression](archive.read_bytes()))
    unpack_oci_archive(str(packed), str(tmp_path / "out"))
    assert resolve_image(OciLayout(tmp_path / "out"), ref_name="1.0").manifest_descriptor \
        .digest == resolve_image(OciLayout(tmp_path / "layout")).manifest_descriptor.digest


def test_corrupt_compressed_data_is_one_error(tmp_path: Path) -> None:
    archive = one_image_archive(tmp_path)
    data = bytearray(lzma.compress(archive.read_bytes()))
    data[len(data) // 2] ^= 0xFF
    packed = tmp_path / "in" / "a.tar.xz"
    packed.parent.mkdir()
    packed.write_bytes(bytes(data))
    message, _, _ = unpack_refused(packed, tmp_path / "out")
    assert message.startswith(f"OCI archive {str(packed)!r} is not readable xz data (corrupt or "
                              "truncated): ")


def test_docker_manifest_json_paths_are_never_followed(tmp_path: Path) -> None:
    """docker's manifest.json is not layout data: its `../` paths name nothing we read."""
    archive = one_image_archive(tmp_path)
    evil = json.dumps([{"Config": "../../../etc/passwd", "RepoTags": ["x:1"],
                        "Layers": ["/etc/shadow", "../outside.tar"]}]).encode()
    with tarfile.open(archive, "a") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(evil)
        tar.addfile(info, io.BytesIO(evil))
    unpack_oci_archive(str(archive), str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "blobs", "index.json", "oci-layout"]
    image = resolve_image(OciLayout(tmp_path / "out"))
    assert image.manifest_descriptor.media_type == mediatypes.OCI_MANIFEST


def test_an_index_entry_whose_size_is_not_the_blobs_is_refused(tmp_path: Path) -> None:
    manifest = blob(b'{"schemaVersion": 2}')
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": "sha256:" + manifest[0][13:],
         "size": 1 << 30}]}).encode()
    archive = tmp_path / "in" / "a.tar"
    archive.parent.mkdir()
    archive.write_bytes(tar_bytes([manifest, ("index.json", index)]))
    message, _, _ = unpack_refused(archive, tmp_path / "out")
    assert message == (
        f"OCI archive {str(archive)!r}: index.json lists sha256:{manifest[0][13:]} as "
        f"{1 << 30} bytes; the archive's blob has {len(manifest[1])}: the archive is corrupt; "
        "create it again")


@pytest.mark.parametrize("spelling,cleaned", [
    ("x/../index.json", "index.json"), ("/index.json", "index.json"),
    ("INDEX.JSON", "index.json"), ("blobs//sha256/" + "a" * 64, "blobs/sha256/" + "a" * 64),
    ("./blobs/./sha256/" + "A" * 64, "blobs/sha256/" + "a" * 64), ("Oci-Layout", "oci-layout"),
])
def test_a_layout_file_under_another_spelling_is_refused(tmp_path: Path, spelling: str,
                                                         cleaned: str) -> None:
    """We would skip it; an extractor that cleans paths (or a case-insensitive disk) would
    take it for the layout's own file: one archive, two layouts."""
    archive = one_image_archive(tmp_path)
    with tarfile.open(archive, "a") as tar:
        info = tarfile.TarInfo(spelling)
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(OciBuildError) as err:
        unpack_oci_archive(str(archive), str(tmp_path / "out"))
    assert str(err.value) == (
        f"OCI archive {str(archive)!r}: {spelling!r} is a layout file under another spelling, "
        f"which extractors read differently; name it {cleaned!r} or leave it out")
