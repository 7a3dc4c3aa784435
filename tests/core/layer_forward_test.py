"""ocibuild.layer.forward: a layer read through `open_tar` gives exactly the members, in the
same order, with the same bytes, as tarfile's stream mode ("r|") that it replaced; damaged
or truncated layers fail alike; a backward seek is refused, never answered wrongly."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocibuild.layer.forward import CHUNK, Forward, open_tar

FORMATS = (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT)
NAME = st.text(st.sampled_from("ab/é.-_x"), min_size=1, max_size=120)


def _archive(entries, fmt) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for i, (kind, name, size, extra) in enumerate(entries):
            info = tarfile.TarInfo(f"{i}/{name}")
            info.mtime, info.uid, info.gid, info.mode = 1, extra % 70000, extra % 3, 0o640
            if kind == "file":
                info.size = size
                tar.addfile(info, io.BytesIO(bytes([i % 251]) * size))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "x" * (extra % 300 + 1)
                tar.addfile(info)
            else:
                info.type, info.linkname = tarfile.LNKTYPE, "0/" + name
                tar.addfile(info)
    return out.getvalue()


def _read(tar: tarfile.TarFile, every: int) -> list:
    """Each member's header fields, and the bytes of every `every`-th file (read while it is
    the current member, as content.materialize does)."""
    found = []
    for index, m in enumerate(tar):
        data = None
        if m.isfile() and index % every == 0:
            data = tar.extractfile(m).read()
        found.append((index, m.name, m.type, m.mode, m.uid, m.gid, m.size, m.linkname,
                      m.pax_headers, data))
    return found


def _both(blob: bytes, every: int):
    results = []
    for opener in (lambda s: tarfile.open(fileobj=s, mode="r|"), open_tar):
        try:
            with opener(io.BytesIO(blob)) as tar:
                results.append(("ok", _read(tar, every)))
        except (tarfile.TarError, OSError, EOFError) as err:
            results.append(("error", type(err).__name__, str(err)))
    return results


ENTRY = st.tuples(st.sampled_from(("file", "dir", "symlink", "hardlink")), NAME,
                  st.sampled_from((0, 1, 511, 512, 513, 10240, CHUNK - 1, CHUNK + 700)),
                  st.integers(0, 10 ** 6))


@settings(max_examples=150, deadline=None)
@given(st.lists(ENTRY, max_size=12), st.sampled_from(FORMATS), st.integers(1, 3),
       st.one_of(st.none(), st.floats(0, 1)))
def test_same_members_bytes_and_errors_as_stream_mode(entries, fmt, every, cut) -> None:
    try:
        blob = _archive(entries, fmt)
    except ValueError:
        return  # a name this format cannot hold (ustar): nothing to compare
    if cut is not None:  # truncated anywhere: both must fail, or both read the same prefix
        blob = blob[:int(len(blob) * cut)]
    theirs, ours = _both(blob, every)
    assert ours == theirs


def test_gzip_layer_of_many_members_reads_alike() -> None:
    """A real-sized case: 3,000 members through gzip.GzipFile, as content.py reads a layer."""
    entries = [("file", f"f{i}.py", i % 700, i) for i in range(3000)]
    blob = gzip.compress(_archive(entries, tarfile.PAX_FORMAT))
    results = []
    for opener in (lambda s: tarfile.open(fileobj=s, mode="r|"), open_tar):
        with opener(gzip.GzipFile(fileobj=io.BytesIO(blob))) as tar:
            results.append(_read(tar, 7))
    assert len(results[0]) == 3000
    assert results[1] == results[0]


def test_backward_seek_is_refused() -> None:
    f = Forward(io.BytesIO(b"0123456789"))
    assert f.read(4) == b"0123"
    assert f.seek(6) == 6 and f.read(2) == b"67"
    with pytest.raises(io.UnsupportedOperation) as err:
        f.seek(2)
    assert str(err.value) == "a layer stream cannot seek back from 8 to 2"
    assert f.read(5) == b"89"
    assert f.seek(20) == 20 and f.read(1) == b"" and f.tell() == 20


def test_reads_across_chunks() -> None:
    data = bytes(range(256)) * (3 * CHUNK // 256 + 5)
    f = Forward(io.BytesIO(data))
    assert f.read(CHUNK - 3) == data[:CHUNK - 3]
    assert f.read(CHUNK + 10) == data[CHUNK - 3:2 * CHUNK + 7]
    f.seek(3 * CHUNK - 1)
    assert f.read() == data[3 * CHUNK - 1:]
