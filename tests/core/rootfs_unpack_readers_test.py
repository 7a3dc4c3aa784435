"""unpack reads a layer with the fast header reader (ocibuild.layer.headers) and, where that
reader says Unusual, applies the layer again from its start with tarfile. Both ways must give
the same tree, ledger and errors: generated layer stacks (files, directories, links, devices,
FIFOs, whiteouts, opaque markers, long names, pax mtimes and xattrs) unpacked both ways, and
layers that turn Unusual after some members were applied (the second pass over the first)."""

from __future__ import annotations

import importlib
import io
import os
import shutil
import tarfile
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild.errors import OciBuildError
from ocibuild.layer import headers
from ocibuild.rootfs.ledger import Ledger
from ocibuild.rootfs.unpack import unpack

unpack_module = importlib.import_module("ocibuild.rootfs.unpack")  # the package names a function so

TAR = "application/vnd.oci.image.layer.v1.tar"
NAMES = ["a", "a/b", "a/b/c", "b", "c", "c/d", ".wh.a", "a/.wh.b", "a/.wh..wh..opq",
         "c/.wh..wh..opq", "d" * 120, "a/" + "e" * 110, "ü"]
KINDS = [tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
         tarfile.CHRTYPE, tarfile.FIFOTYPE]


@st.composite
def _member(draw):
    info = tarfile.TarInfo(draw(st.sampled_from(NAMES)))
    info.type = draw(st.sampled_from(KINDS))
    info.mode = draw(st.sampled_from([0o644, 0o755, 0o4755, 0o700, 0o1777, 0o600]))
    info.uid, info.gid = draw(st.sampled_from([(0, 0), (1000, 1000), (65534, 0), (2 ** 22, 5)]))
    info.mtime = draw(st.sampled_from([0, 1_700_000_000, 2 ** 33]))
    info.pax_headers = draw(st.sampled_from([{}, {"mtime": "1700000000.5"},
                                             {"SCHILY.xattr.user.k": "v"}]))
    if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = draw(st.sampled_from(NAMES + ["/etc/passwd", "../x"]))
    if info.type == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    body = draw(st.binary(max_size=700)) if info.type == tarfile.REGTYPE else b""
    info.size = len(body)
    return info, body


def _layer(fmt: int, members) -> bytes:
    """Mostly layers an unpacker applies: each member's parents first as directories, a hard
    link to a file of the layer before it (else none); some hostile choices stay."""
    out = io.BytesIO()
    files: list = []
    with tarfile.open(fileobj=out, mode="w", format=fmt, encoding="utf-8") as tar:
        for info, body in members:
            parts = info.name.split("/")
            for i in range(1, len(parts)):
                parent = tarfile.TarInfo("/".join(parts[:i]))
                parent.type, parent.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(parent)
            if info.type == tarfile.LNKTYPE:
                if not files:
                    continue
                info.linkname = files[len(info.linkname) % len(files)]
            try:
                tar.addfile(info, io.BytesIO(body))
            except ValueError:
                continue  # what this format cannot hold: tarfile writes nothing
            if info.type == tarfile.REGTYPE:
                files.append(info.name)
    return out.getvalue()


def _tree(root: str) -> dict:
    out = {}
    for path, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            full = os.path.join(path, name)
            st_ = os.lstat(full)
            if os.path.islink(full):
                body = os.readlink(full)
            elif os.path.isfile(full):
                with open(full, "rb") as f:
                    body = f.read()
            else:
                body = None
            mtime = None if os.path.isdir(full) else st_.st_mtime
            out[os.path.relpath(full, root)] = (st_.st_mode, st_.st_nlink, mtime, body)
    return out


def _unpacked(blobs, root: str, real: bool):
    try:
        ledger = unpack([(b, TAR) for b in blobs], root, Ledger(real=real))
    except OciBuildError as err:
        return "error", str(err).replace(root, "ROOT")
    records = {p: (r.meta, r.disk_mode) for p, r in ledger.records.items()}
    return _tree(root), records


def _tarfile_only(stream):
    raise headers.Unusual("read it with tarfile")
    yield  # pragma: no cover


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]),
                          st.lists(_member(), max_size=8)), min_size=1, max_size=3),
       st.booleans())
def test_both_readers_unpack_alike(layers, real):
    if real and os.geteuid() != 0:
        real = False
    work = tempfile.mkdtemp()
    try:
        blobs = []
        for i, (fmt, members) in enumerate(layers):
            path = os.path.join(work, f"{i}.tar")
            with open(path, "wb") as f:
                f.write(_layer(fmt, members))
            blobs.append(path)
        fast = _unpacked(blobs, os.path.join(work, "fast"), real)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(unpack_module, "_fast_members", _tarfile_only)
            slow = _unpacked(blobs, os.path.join(work, "slow"), real)
        if fast[0] == "error":
            assert slow[0] == "error"
            assert fast[1].replace("fast", "X") == slow[1].replace("slow", "X")
        else:
            assert fast == slow
    finally:
        shutil.rmtree(work)


@pytest.mark.parametrize("real", [True, False])
def test_a_layer_unusual_after_some_members_is_applied_again_by_tarfile(tmp_path, real,
                                                                        monkeypatch):
    """A global pax header after the first members: the fast reader has applied those when
    it says Unusual; tarfile then applies the whole layer over them, as a single pass would."""
    if real and os.geteuid() != 0:
        pytest.skip("owners need root")
    low = io.BytesIO()
    with tarfile.open(fileobj=low, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("a/x", "a/y", "b"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"0"))
    up = io.BytesIO()
    with tarfile.open(fileobj=up, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("a/z", b"1"), ("b", b"2")):
            info = tarfile.TarInfo(name)
            info.size, info.uid = len(data), 7
            tar.addfile(info, io.BytesIO(data))
        tar.addfile(tarfile.TarInfo("a/.wh..wh..opq"))
        glob = tarfile.TarInfo("././@PaxHeader")  # a global header: the fast reader's Unusual
        glob.type = tarfile.XGLTYPE
        tar.addfile(glob)
        info = tarfile.TarInfo("c")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"3"))
    (tmp_path / "low.tar").write_bytes(low.getvalue())
    (tmp_path / "up.tar").write_bytes(up.getvalue())
    blobs = [str(tmp_path / "low.tar"), str(tmp_path / "up.tar")]
    with pytest.raises(headers.Unusual):
        list(headers.Reader(io.BytesIO(up.getvalue())))
    calls = []
    tarfile_members = unpack_module._tarfile_members

    def counted(stream):
        calls.append(1)
        return tarfile_members(stream)

    monkeypatch.setattr(unpack_module, "_tarfile_members", counted)
    both = _unpacked(blobs, str(tmp_path / "both"), real)
    assert calls == [1]  # the upper layer only, again from its start
    monkeypatch.setattr(unpack_module, "_fast_members", _tarfile_only)
    slow = _unpacked(blobs, str(tmp_path / "slow"), real)
    assert both == slow
    assert sorted(both[0]) == ["a", "a/z", "b", "c"]
