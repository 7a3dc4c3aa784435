""".dockerignore matching, ADD's archives (hostile members, bombs) and ADD of URLs (checksum
required, verified before use, bounded) against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import given, settings, strategies as st

from ocibuild.dockerfile import add, builder, dockerignore
from ocibuild.errors import OciBuildError
from tests.core.conftest import decompressed, tar_members


@pytest.mark.parametrize("patterns,path,excluded", [
    ("*.log", "a.log", True), ("*.log", "sub/a.log", False), ("**/*.log", "sub/a.log", True),
    ("**/*.log", "a.log", True), ("build", "build/x/y", True), ("/build", "build/x", True),
    ("*.log\n!keep.log", "keep.log", False), ("*.log\n!keep.log\nkeep*", "keep.log", True),
    ("docs/**/*.tmp", "docs/a/b/c.tmp", True), ("docs/**/*.tmp", "docs/c.tmp", True),
    ("a/../b", "b", True), ("# c\n  ", "# c", False), ("[ab].txt", "b.txt", True),
    ("[!a].txt", "a.txt", False), ("?.txt", "ab.txt", False), ("x\\*y", "x*y", True),
    ("secret/\n!secret/ok", "secret/ok", False), ("secret/\n!secret/ok", "secret/no", True),
])
def test_dockerignore_matches_as_docker_does(patterns: str, path: str, excluded: bool) -> None:
    parsed = dockerignore.parse(patterns.encode(), ".dockerignore")
    assert dockerignore.excluded(parsed, path) is excluded


def _tar(members, compress: str = "gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w:{compress}") as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            data = extra.encode() if kind == tarfile.REGTYPE else b""
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = extra
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _add(tmp_path: Path, archive: bytes, dest: str = "/opt/") -> builder.Built:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "a.tar").write_bytes(archive)
    (ctx / "Dockerfile").write_text(f"FROM scratch\nADD a.tar {dest}\n")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return builder.build(builder.Options(str(ctx / "Dockerfile"), str(ctx)), str(work))


@pytest.mark.parametrize("compress", ["gz", "bz2", "xz", ""])
def test_add_unpacks_local_archives_by_content(tmp_path: Path, compress: str) -> None:
    built = _add(tmp_path, _tar([("d/f", tarfile.REGTYPE, "f"), ("d/l", tarfile.LNKTYPE, "d/f"),
                                 ("d/s", tarfile.SYMTYPE, "/etc/x")], compress))
    blob = tmp_path / "work/layers/blobs/sha256" / built.layers[0].digest[7:]
    assert [(m.name, (data or b"").decode() or m.linkname)
            for m, data in tar_members(decompressed(blob))] == [
        ("opt", ""), ("opt/d", ""), ("opt/d/f", "f"), ("opt/d/l", "f"), ("opt/d/s", "/etc/x")]


@pytest.mark.parametrize("members,message", [
    ([("../escape", tarfile.REGTYPE, "x")], "has a member ../escape outside its root"),
    ([("a/../../escape", tarfile.REGTYPE, "x")], "has a member a/../../escape outside its root"),
    ([("l", tarfile.LNKTYPE, "/etc/passwd")], "has a hard link l to /etc/passwd, which is not "
     "a file before it in the archive"),
    ([("dev", tarfile.CHRTYPE, "")], "has a device, FIFO or socket dev"),
    ([("fifo", tarfile.FIFOTYPE, "")], "has a device, FIFO or socket fifo"),
    ([("etc/.wh.passwd", tarfile.REGTYPE, "")], "has a member etc/.wh.passwd, which a layer "
     "would read as a whiteout (a deletion); rename it"),
])
def test_hostile_archive_members_are_refused(tmp_path: Path, members, message: str) -> None:
    with pytest.raises(OciBuildError) as err:
        _add(tmp_path, _tar(members))
    assert str(err.value).startswith(f"{tmp_path}/ctx/Dockerfile:2: ADD: the archive a.tar ")
    assert message in str(err.value)


def test_a_decompression_bomb_stops_at_the_bound(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(add, "MAX_ARCHIVE_BYTES", 1000)
    with pytest.raises(OciBuildError) as err:
        _add(tmp_path, _tar([("a", tarfile.REGTYPE, "x" * 600), ("b", tarfile.REGTYPE, "y" * 600)]))
    assert str(err.value) == (f"{tmp_path}/ctx/Dockerfile:2: ADD: the archive a.tar unpacks to "
                              "more than 1000 bytes; refused")


_NAMES = st.lists(st.text(alphabet="ab./-", min_size=1, max_size=12), min_size=1, max_size=6)
CASES = {"n": 0}


@settings(max_examples=300, deadline=None)
@given(names=_NAMES, kinds=st.lists(st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE,
                                                     tarfile.SYMTYPE, tarfile.LNKTYPE]),
                                    min_size=6, max_size=6))
def test_any_archive_gives_paths_inside_the_destination_or_one_error(tmp_path_factory, names,
                                                                     kinds) -> None:
    CASES["n"] += 1
    tmp = tmp_path_factory.mktemp("bomb")
    members = [(n, k, "a" if k in (tarfile.LNKTYPE, tarfile.SYMTYPE) else "x")
               for n, k in zip(names, kinds)]
    work = tmp / "work"
    try:
        tree = add.unpack(_write(tmp, _tar(members)), "a.tar", str(work), "ADD")
    except OciBuildError as err:
        assert str(err).startswith("ADD: the archive a.tar ")
        return
    for path in tree.nodes:
        assert ".." not in path.split("/") and not path.startswith("/")
    for node in tree.nodes.values():  # bytes only ever in numbered files under work
        assert node.content is None or Path(node.content).parent == work


def _write(tmp: Path, data: bytes) -> str:
    (tmp / "a.tar").write_bytes(data)
    return str(tmp / "a.tar")


class _Files(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def _add_url(tmp_path: Path, url: str, checksum: str) -> builder.Built:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(f"FROM scratch\nADD --checksum={checksum} {url} /dl/\n")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return builder.build(builder.Options(str(ctx / "Dockerfile"), str(ctx)), str(work))


def test_add_url_with_checksum_is_verified_and_not_unpacked(tmp_path: Path, server) -> None:
    _Files.body = _tar([("inside", tarfile.REGTYPE, "x")])
    url = f"http://127.0.0.1:{server.server_port}/files/a.tar.gz"
    good = hashlib.sha256(_Files.body).hexdigest()
    built = _add_url(tmp_path, url, f"sha256:{good}")
    blob = tmp_path / "work/layers/blobs/sha256" / built.layers[0].digest[7:]
    members = tar_members(decompressed(blob))
    assert [(m.name, oct(m.mode)) for m, _ in members] == [("dl", "0o755"),
                                                           ("dl/a.tar.gz", "0o600")]
    assert members[1][1] == _Files.body
    with pytest.raises(OciBuildError) as err:
        _add_url(tmp_path, url, "sha256:" + "0" * 64)
    assert str(err.value) == (f"{tmp_path}/ctx/Dockerfile:2: ADD: {url} has sha256:{good}, "
                              f"not sha256:{'0' * 64} as --checksum says; not using it")


def test_add_url_is_bounded(tmp_path: Path, server, monkeypatch) -> None:
    monkeypatch.setattr(add, "MAX_URL_BYTES", 100)
    _Files.body = b"x" * 5000
    url = f"http://127.0.0.1:{server.server_port}/big"
    with pytest.raises(OciBuildError) as err:
        _add_url(tmp_path, url, "sha256:" + hashlib.sha256(_Files.body).hexdigest())
    assert str(err.value) == f"{tmp_path}/ctx/Dockerfile:2: ADD: {url} is over 100 bytes; refused"


def test_add_url_sends_no_credentials_in_the_url(tmp_path: Path) -> None:
    with pytest.raises(OciBuildError) as err:
        _add_url(tmp_path, "http://user:pw@127.0.0.1:9/x", "sha256:" + "0" * 64)
    assert str(err.value) == (f"{tmp_path}/ctx/Dockerfile:2: ADD: the URL names credentials; "
                              "ADD sends none (use a pre-signed URL or download the file "
                              "beforehand)")


@pytest.mark.parametrize("target, fault", [
    ("a\0b", "its link target 'a\\x00b' holds a NUL byte, which no link target can hold "
              "(Go's archive/tar, docker's reader, refuses it)"),
    ("a" * 4096, "its link target is 4096 bytes long, past the 4095 a Linux symlink can hold"),
], ids=["nul", "long"])
def test_a_link_target_no_linux_link_can_have_is_refused(tmp_path: Path, target: str,
                                                         fault: str) -> None:
    """`a\\0b` was layered as a link to `a` (the ustar field ends at the NUL); docker's ADD
    refuses the archive."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("l")
        info.type, info.pax_headers = tarfile.SYMTYPE, {"linkpath": target}
        tar.addfile(info)
    with pytest.raises(OciBuildError) as err:
        _add(tmp_path, out.getvalue())
    assert str(err.value) == (f"{tmp_path}/ctx/Dockerfile:2: ADD: the archive a.tar has a "
                              f"member l: {fault}; refused")


@pytest.mark.parametrize("uid, gid, fault", [
    (1 << 40, 0, "its uid 1099511627776 is outside 0 to 4294967295"),
    (-5, 0, "its uid -5 is outside 0 to 4294967295"),  # base-256, negative
    (0, 1 << 33, "its gid 8589934592 is outside 0 to 4294967295"),
])
def test_an_owner_no_linux_file_can_have_is_refused(tmp_path: Path, uid: int, gid: int,
                                                     fault: str) -> None:
    """Unpackers truncate such ids (Go: 2^40 -> 0, root) or fail; our layer would carry them."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.uid, info.gid, info.size = uid, gid, 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(OciBuildError) as err:
        _add(tmp_path, out.getvalue())
    assert str(err.value) == (f"{tmp_path}/ctx/Dockerfile:2: ADD: the archive a.tar has a "
                              f"member f: {fault}, the ids a Linux file can have; refused")
