"""write_tar: normalized headers, read back with tarfile and checked in the raw bytes."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import List, Tuple

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.layer.entries import (CHARDEV, DIR, FILE, HARDLINK, SYMLINK, LayerEntry,
                                     collect_entries)
from ocibuild.layer.tar_writer import header, write_tar

from .conftest import tar_members, write


def tar_bytes(entries, mtime: int = 0) -> bytes:
    out = io.BytesIO()
    write_tar(entries, out, mtime=mtime)
    return out.getvalue()


def raw_headers(data: bytes) -> List[Tuple[str, str]]:
    """(name field, typeflag) of every header block, PAX extended headers included."""
    headers, offset = [], 0
    while offset + 512 <= len(data) and data[offset:offset + 512] != bytes(512):
        block = data[offset:offset + 512]
        size = int(block[124:136].rstrip(b"\0 ") or b"0", 8)
        headers.append((block[:100].rstrip(b"\0").decode("utf-8", "replace"),
                        chr(block[156])))
        offset += 512 + (size + 511) // 512 * 512
    return headers


def test_headers_are_normalized(tree: Path) -> None:
    members = tar_members(tar_bytes(collect_entries([(str(tree), "app")]), mtime=1700000000))
    assert [(m.name, m.type, oct(m.mode), m.linkname) for m, _ in members] == [
        ("app", tarfile.DIRTYPE, "0o755", ""),
        ("app/bin", tarfile.DIRTYPE, "0o755", ""),
        ("app/bin/run.sh", tarfile.REGTYPE, "0o755", ""),
        ("app/data", tarfile.DIRTYPE, "0o755", ""),
        ("app/data/a.txt", tarfile.REGTYPE, "0o644", ""),
        ("app/data/b.txt", tarfile.REGTYPE, "0o644", ""),
        ("app/data/link", tarfile.SYMTYPE, "0o777", "a.txt"),
        ("app/data/nested", tarfile.DIRTYPE, "0o755", ""),
        ("app/data/nested/deep", tarfile.DIRTYPE, "0o755", ""),
        ("app/data/nested/deep/c.bin", tarfile.REGTYPE, "0o644", ""),
        ("app/data/up", tarfile.SYMTYPE, "0o777", "../bin/run.sh"),
        ("app/empty", tarfile.DIRTYPE, "0o755", ""),
    ]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime, m.devmajor, m.devminor)
            for m, _ in members} == {(0, 0, "", "", 1700000000, 0, 0)}
    contents = {m.name: data for m, data in members if data is not None}
    assert contents["app/bin/run.sh"] == (tree / "bin/run.sh").read_bytes()
    assert contents["app/data/nested/deep/c.bin"] == bytes(range(256)) * 40


def test_plain_entries_are_plain_ustar(tree: Path) -> None:
    data = tar_bytes(collect_entries([(str(tree), "app")]))
    headers = raw_headers(data)
    assert {flag for _, flag in headers} == {"0", "2", "5"}  # no "x": no PAX header anywhere
    assert [name for name, flag in headers if flag == "5"][:2] == ["app/", "app/bin/"]
    assert data[257:265] == b"ustar\x0000"
    assert len(data) % 10240 == 0  # padded to whole tar records


def test_pax_header_only_for_a_long_name(tmp_path: Path) -> None:
    long_name = "d" * 60 + "/" + "f" * 60  # 121 bytes: too long for the 100-byte name field
    write(tmp_path / "in" / long_name, b"x")
    write(tmp_path / "in/short", b"y")
    headers = raw_headers(tar_bytes(collect_entries([(str(tmp_path / "in"), "/")])))
    assert [flag for _, flag in headers] == ["5", "x", "0", "0"]
    assert headers[1][0] == "././@PaxHeader"
    members = tar_members(tar_bytes(collect_entries([(str(tmp_path / "in"), "/")])))
    assert [m.name for m, _ in members] == ["d" * 60, long_name, "short"]


def test_pax_header_only_for_a_non_ascii_name(tmp_path: Path) -> None:
    write(tmp_path / "in/café.txt", b"x")
    write(tmp_path / "in/plain.txt", b"y")
    data = tar_bytes(collect_entries([(str(tmp_path / "in"), "/")]))
    assert [flag for _, flag in raw_headers(data)] == ["x", "0", "0"]
    assert [m.name for m, _ in tar_members(data)] == ["café.txt", "plain.txt"]


def test_pax_header_for_a_long_link_target() -> None:
    target = "../" * 40 + "x"  # 121 bytes: too long for the 100-byte linkname field
    entries = [LayerEntry("l", SYMLINK, mode=0o777, link_target=target),
               LayerEntry("m", SYMLINK, mode=0o777, link_target="x")]
    data = tar_bytes(entries)
    assert [flag for _, flag in raw_headers(data)] == ["x", "2", "2"]
    assert [m.linkname for m, _ in tar_members(data)] == [target, "x"]


def test_hardlink_entry() -> None:
    data = tar_bytes([LayerEntry("a", DIR, mode=0o755),
                      LayerEntry("a/b", HARDLINK, mode=0o644, link_target="a/c")])
    (_, _), (member, _) = tar_members(data)
    assert (member.type, member.linkname, member.size) == (tarfile.LNKTYPE, "a/c", 0)


def test_content_streams_in_bounded_writes(tmp_path: Path) -> None:
    big = write(tmp_path / "big", bytes(5 << 20))

    class Recorder:
        def __init__(self) -> None:
            self.sizes: List[int] = []

        def write(self, data: bytes) -> int:
            self.sizes.append(len(data))
            return len(data)

    sink = Recorder()
    write_tar([LayerEntry("big", FILE, source=str(big), size=5 << 20)], sink, mtime=0)
    assert sum(sink.sizes) >= 5 << 20 and max(sink.sizes) <= 1 << 20


def test_handed_over_chunks_never_change(tmp_path: Path) -> None:
    """A sink with `write_chunk` keeps the chunks it is given without copying them (the layer
    writer hashes them on a thread): the writer must never touch one again. Files that cross
    chunk boundaries, padding and the end of the archive all land in kept chunks here."""
    sources = [write(tmp_path / f"f{i}", bytes([i + 1]) * size)
               for i, size in enumerate([700_000, 1 << 20, 3, (1 << 20) - 512, 2_500_000])]
    entries = collect_entries([(str(p), p.name) for p in sources])

    class Keeper:
        def __init__(self) -> None:
            self.kept: List[memoryview] = []

        def write_chunk(self, chunk: memoryview) -> None:
            self.kept.append(chunk)

        def write(self, data: bytes) -> int:
            raise AssertionError("a chunk sink gets chunks only")

    keeper = Keeper()
    write_tar(entries, keeper, mtime=0)
    kept = b"".join(bytes(c) for c in keeper.kept)
    assert kept == tar_bytes(entries) and len(kept) % (20 * 512) == 0
    assert [m.name for m, _ in tar_members(kept)] == [p.name for p in sources]
    assert all(data == bytes([i + 1]) * len(data) for i, (_, data) in
               enumerate(tar_members(kept)))


@pytest.mark.parametrize("swap", ["shorter", "longer", "symlink", "fifo", "directory"])
def test_a_file_that_changed_since_it_was_listed(tmp_path: Path, swap: str) -> None:
    """Listed as a regular file of 8 bytes, then changed: an error, never a wait (a FIFO has
    no writer) and never a link followed out of the input."""
    path = tmp_path / "f"
    if swap in ("shorter", "longer"):
        write(path, b"12345" if swap == "shorter" else b"123456789012")
    elif swap == "symlink":
        path.symlink_to(write(tmp_path / "elsewhere", b"12345678"))
    elif swap == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    with pytest.raises(OciBuildError) as err:
        tar_bytes([LayerEntry("f", FILE, source=str(path), size=8)])
    assert str(err.value) == (
        f"{str(path)!r} changed while the layer was written; build again once nothing "
        "writes to it"
    )


@pytest.mark.parametrize("mtime", [-1, 1.5, "0"])
def test_bad_mtime(mtime) -> None:
    with pytest.raises(OciBuildError) as err:
        write_tar([], io.BytesIO(), mtime=mtime)
    assert str(err.value) == (
        f"mtime {mtime!r}: must be a whole number of seconds since 1970-01-01 UTC, e.g. 0 "
        "or $SOURCE_DATE_EPOCH"
    )


def tarfile_header(entry: LayerEntry, mtime: int) -> bytes:
    """What CPython's tarfile writes for `entry` in PAX format: the reference for `header`."""
    info = tarfile.TarInfo(entry.path)
    info.type = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE,
                 HARDLINK: tarfile.LNKTYPE}[entry.kind]
    info.mode = entry.mode & 0o7777
    info.uid, info.gid, info.uname, info.gname = entry.uid, entry.gid, entry.uname, entry.gname
    info.mtime = mtime
    info.size = entry.size if entry.kind == FILE else 0
    info.linkname = entry.link_target or ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@pytest.mark.parametrize("mtime", [0, 1700000000, 8 ** 11])
@pytest.mark.parametrize("entry", [
    LayerEntry("a", FILE, size=5),
    LayerEntry("d", DIR, mode=0o755),
    LayerEntry("d/", DIR),
    LayerEntry("n" * 100, FILE),
    LayerEntry("n" * 101, FILE),
    LayerEntry("y" * 200, DIR),
    LayerEntry("é", FILE, size=3),
    LayerEntry("n" * 95 + "é", FILE, uid=2 ** 32 - 1),  # past ustar's 7 octal digits: a pax uid
    LayerEntry("l", SYMLINK, mode=0o777, link_target="t" * 101),
    LayerEntry("h", HARDLINK, link_target="a"),
    LayerEntry("u", FILE, uid=8 ** 7, gid=8 ** 7 - 1, uname="u" * 33, gname="ü"),
    LayerEntry("big", FILE, size=8 ** 11),
    LayerEntry("s", FILE, mode=0o104755),
], ids=repr)
def test_headers_are_tarfiles_bytes(entry: LayerEntry, mtime: int) -> None:
    assert header(entry, mtime) == tarfile_header(entry, mtime)


@pytest.mark.parametrize("uid, gid", [(-1, 0), (0, -1), (1 << 32, 0), (0, 1 << 40)])
def test_no_layer_holds_an_owner_no_linux_file_can_have(uid: int, gid: int) -> None:
    """Whoever made the entry (a COPY --from of a hostile base's file, a ledger): pax would
    carry `uid=-1` or `uid=4294967296`, and unpackers truncate or fail on it."""
    with pytest.raises(OciBuildError, match=r"^layer entry 'f': its [ug]id -?[0-9]+ is outside "
                                            r"0 to 4294967295, the ids a Linux file can have$"):
        write_tar([LayerEntry("f", FILE, uid=uid, gid=gid)], io.BytesIO(), mtime=0)
    write_tar([LayerEntry("f", FILE, uid=(1 << 32) - 1, gid=(1 << 32) - 1)], io.BytesIO(),
              mtime=0)  # chown's "no change": as docker writes and applies it


@pytest.mark.parametrize("entry, fault", [
    (LayerEntry("l", SYMLINK, link_target="a\0b"),
     "its link target 'a\\x00b' holds a NUL byte, which no link target can hold"),
    (LayerEntry("l", SYMLINK, link_target="a" * 4096),
     "its link target is 4096 bytes long, past the 4095 a Linux symlink can hold"),
    (LayerEntry("a\0b", FILE), "its name 'a\\x00b' holds a NUL byte"),
    (LayerEntry("f", FILE, uname="r\0x"), "its owner name 'r\\x00x' holds a NUL byte"),
    (LayerEntry("f", FILE, gname="r\0x"), "its group name 'r\\x00x' holds a NUL byte"),
    (LayerEntry("f", FILE, xattrs=(("user.a\0b", b"v"),)),
     "its xattr name 'user.a\\x00b' is empty or holds a NUL byte or an '='"),
    (LayerEntry("f", FILE, xattrs=(("user.a=b", b"v"),)), "its xattr name 'user.a=b'"),
    (LayerEntry("f", FILE, xattrs=(("", b"v"),)), "its xattr name ''"),
], ids=["link-nul", "link-long", "name-nul", "uname-nul", "gname-nul", "xattr-nul", "xattr-eq",
        "xattr-empty"])
def test_no_layer_holds_a_text_no_reader_takes_back(entry: LayerEntry, fault: str) -> None:
    """A NUL in a short link target was written into the ustar field, which ends at it: a
    COPY --from of a base's link to `a\\0b` became a link to `a`. In a pax record Go's
    archive/tar refuses the layer; an '=' in an xattr name makes the record another xattr's."""
    with pytest.raises(OciBuildError) as err:
        write_tar([entry], io.BytesIO(), mtime=0)
    assert str(err.value).startswith(f"layer entry {entry.path!r}: {fault}")
    write_tar([LayerEntry("l", SYMLINK, link_target="a" * 4095),
               LayerEntry("f", FILE, xattrs=(("security.capability", b"\0\x01"),))],
              io.BytesIO(), mtime=0)  # PATH_MAX's worth, and a value's NULs: as docker writes


def test_no_layer_holds_device_numbers_no_device_can_have() -> None:
    with pytest.raises(OciBuildError, match=r"^layer entry 'x': its device numbers 4096,0 are "
                                            r"outside 0-4095,0-1048575"):
        write_tar([LayerEntry("x", CHARDEV, device=(4096, 0))], io.BytesIO(), mtime=0)
    write_tar([LayerEntry("x", CHARDEV, device=(4095, (1 << 20) - 1))], io.BytesIO(), mtime=0)
