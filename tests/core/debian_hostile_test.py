"""Hostile mirrors, indexes, lockfiles and .deb files: each is one clear OciBuildError naming
the file and what is wrong; nothing unsigned is parsed, nothing hangs, nothing escapes.

The mirror is the signed loopback repository of tests/fixtures/debian_repo.py (real gpg key,
real gpgv); hostile InRelease files are signed with that same key. Hostile .debs are written
with the standard library (ar + tar), as dpkg-deb refuses to build them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Tuple

import pytest
import zstandard

from ocibuild.debian import deb as debmod
from ocibuild.debian import layers, lockfile, repository
from ocibuild.debian.control import paragraphs, parse_relations
from ocibuild.debian.repository import Mirror, parse_release, verify_signature
from ocibuild.debian.version import compare
from ocibuild.errors import OciBuildError
from tests.fixtures.time_limit import within
from tests.fixtures.debian_repo import (
    DebianRepo,
    ar_archive,
    hand_made_deb,
    make_deb,
    tar_bytes,
)


# --- InRelease: only what gpgv verified is parsed -------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[DebianRepo]:
    repo = DebianRepo(tmp_path / "mirror")
    repo.add(make_deb(tmp_path, "app", depends="libfoo"))
    repo.add(make_deb(tmp_path, "libfoo", "1.2-3"))
    repo.publish()
    with repo:
        yield repo


EVIL = (b"Suite: testing\nSHA256:\n " + b"e" * 64 + b" 14 main/binary-amd64/Packages.xz\n\n")


def test_gpgv_output_is_what_is_parsed(repo: DebianRepo) -> None:
    """An unsigned paragraph before the signed message: gpgv says "Good signature" (for the
    signed part), and what it returns is exactly the signed Release, without the prefix."""
    signed = repo.clearsign(repo.release_text())
    verified = verify_signature(EVIL + signed, str(repo.keyring))
    assert verified.text == repo.release_text().decode()
    assert verified.fingerprints == (repo.fingerprint,)
    release = parse_release(verified.text, "testing", "x")
    assert "e" * 64 not in {hex_ for hex_, _ in release.sha256.values()}


@pytest.mark.parametrize("hostile,message", [
    (lambda signed: EVIL + signed,
     "InRelease does not start with `-----BEGIN PGP SIGNED MESSAGE-----`; refusing a file "
     "with unsigned text before (or instead of) its signed message"),
    (lambda signed: signed + b"\n" + EVIL,
     "InRelease does not end with `-----END PGP SIGNATURE-----`; refusing a file with text "
     "after its signature"),
    (lambda signed: signed + signed,
     "InRelease holds more than one signed message; refusing it"),
    (lambda signed: EVIL, "InRelease does not start with"),
], ids=[
    'unsigned-prefix', 'trailing-text', 'two-signed-messages', 'unsigned-only'])
def test_hostile_inrelease_is_refused(repo: DebianRepo, hostile: Callable[[bytes], bytes],
                                      message: str) -> None:
    repo.write_inrelease(hostile(repo.clearsign(repo.release_text())))
    with pytest.raises(OciBuildError) as err:
        Mirror(repo.url, repo.suite, None, str(repo.keyring)).release()
    assert message in str(err.value)


def test_inrelease_of_another_suite_is_refused(repo: DebianRepo) -> None:
    """A validly signed InRelease of another suite (replayed) is not this suite's."""
    other = repo.release_text().replace(b"Suite: testing\nCodename: testing",
                                        b"Suite: oldstable\nCodename: bullseye")
    repo.write_inrelease(repo.clearsign(other))
    with pytest.raises(OciBuildError, match="InRelease of testing is signed for bullseye / "
                                            "oldstable, not for this suite"):
        Mirror(repo.url, repo.suite, None, str(repo.keyring)).release()


def test_whitespace_around_the_signed_message_is_fine(repo: DebianRepo) -> None:
    repo.write_inrelease(b"\n" + repo.clearsign(repo.release_text()) + b"\n\n")
    release = Mirror(repo.url, repo.suite, None, str(repo.keyring)).release()
    assert "main/binary-amd64/Packages.xz" in release.sha256


# --- A keyring is required, unless the target says otherwise ---------------------------------


def test_no_keyring_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(repository, "KEYRINGS", (str(tmp_path / "none.gpg"),))
    with pytest.raises(OciBuildError) as err:
        Mirror("http://127.0.0.1:9/debian", "testing")
    assert str(err.value) == (
        f"no keyring to check the suite's InRelease signature with: {tmp_path}/none.gpg does "
        "not exist. Install the Debian archive keyring (package `debian-archive-keyring`), set "
        "the target's `keyring`, or, accepting that anyone between you and the mirror can then "
        "choose the packages, set `allow_unsigned_index=True`")


def test_no_gpgv_is_an_error(monkeypatch: pytest.MonkeyPatch, repo: DebianRepo,
                             tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OciBuildError, match=r"gpgv is not installed to check the InRelease "
                                            r"signature with .*keyring.gpg; install gpgv"):
        Mirror(repo.url, repo.suite, None, str(repo.keyring))
    with pytest.raises(OciBuildError, match="gpgv is not installed, so the InRelease signature "
                                            "cannot be checked"):
        verify_signature(repo.clearsign(b"x: y\n"), str(repo.keyring))


def test_allowed_unsigned_index_is_recorded_as_such(repo: DebianRepo,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setattr(repository, "KEYRINGS", (str(tmp_path / "none.gpg"),))
    release = Mirror(repo.url, repo.suite, None, allow_unsigned=True).release()
    assert release.signature == lockfile.UNSIGNED
    assert release.signature == ("NOT verified: the target allows an unsigned index "
                                 "(allow_unsigned_index=True)")
    assert set(release.sha256) == {"main/binary-amd64/Packages", "main/binary-amd64/Packages.xz"}
    # Unsigned is not unparsed: the same framing rules hold.
    repo.write_inrelease(EVIL + repo.clearsign(repo.release_text()))
    with pytest.raises(OciBuildError, match="InRelease does not start with"):
        Mirror(repo.url, repo.suite, None, allow_unsigned=True).release()


def test_allowing_unsigned_still_checks_a_given_keyring(repo: DebianRepo, tmp_path: Path) -> None:
    other = DebianRepo(tmp_path / "other")
    other._sign_key()
    with pytest.raises(OciBuildError) as err:
        Mirror(repo.url, repo.suite, None, str(other.keyring), allow_unsigned=True).release()
    assert str(err.value) == (
        f"InRelease: the signature by key {repo.fingerprint[-16:]} is by a key that is not in "
        f"{other.keyring} (gpgv: NO_PUBKEY); refusing the index")


def _lock_doc(signature: str) -> dict:
    return {"version": 2, "packages": {"amd64": []},
            "sources": [{"suite": "s", "mirror": "http://m", "inrelease_signature": signature,
                         "date": "", "timestamp": ""}],
            "request": {"sources": [{"suite": "s", "mirror": "http://m"}],
                        "components": ["main"], "architectures": ["amd64"], "packages": ["a"]}}


def test_unsigned_lockfile_is_refused_unless_allowed() -> None:
    doc = lockfile.load(lockfile.dumps(_lock_doc(lockfile.UNSIGNED)), "x.lock.json")
    with pytest.raises(OciBuildError) as err:
        lockfile.check_signature(doc, False, "x.lock.json", "pants debian-lock x:x")
    assert str(err.value) == (
        "x.lock.json was locked from an index whose signature was not verified "
        "(s: inrelease_signature: 'NOT verified: the target allows an unsigned index "
        "(allow_unsigned_index=True)'), and the target does not set "
        "`allow_unsigned_index=True`; lock again with a keyring (`pants debian-lock x:x`), or "
        "set `allow_unsigned_index=True` if trusting the mirror and the network is intended")
    lockfile.check_signature(doc, True, "x.lock.json", "f")
    # What lockfiles written before this rule say when gpgv or the keyring was missing.
    old = _lock_doc("NOT verified: gpgv is not installed")
    with pytest.raises(OciBuildError, match="was locked from an index whose signature"):
        lockfile.check_signature(old, False, "x.lock.json", "f")
    verified = _lock_doc("verified by gpgv with /usr/share/keyrings/debian-archive-keyring.gpg")
    lockfile.check_signature(verified, False, "x.lock.json", "f")


# --- ar members ------------------------------------------------------------------------------


GOOD_MEMBERS = [("debian-binary", b"2.0\n"), ("control.tar.gz", b"c" * 11),
                ("data.tar.xz", b"d" * 20)]


@pytest.mark.parametrize("archive,message", [
    (ar_archive(GOOD_MEMBERS, size_fields={"control.tar.gz": b"-100"}),
     "x.deb: the ar header of member 'control.tar.gz' at byte 72 gives the size '-100', not a "
     "decimal number; the file is corrupt"),
    (ar_archive(GOOD_MEMBERS, size_fields={"control.tar.gz": b"0x1f"}),
     "x.deb: the ar header of member 'control.tar.gz' at byte 72 gives the size '0x1f', not "
     "a decimal number; the file is corrupt"),
    (ar_archive(GOOD_MEMBERS, size_fields={"data.tar.xz": b"9999999999"}),
     "x.deb: member 'data.tar.xz' (9999999999 bytes at byte 204) runs past the end of the "
     "file (224 bytes); the file is truncated"),
    (ar_archive(GOOD_MEMBERS)[:-5],
     "x.deb: member 'data.tar.xz' (20 bytes at byte 204) runs past the end of the file (219 "
     "bytes); the file is truncated"),
    (ar_archive(GOOD_MEMBERS + [("data.tar.xz", b"evil")]),
     "x.deb: member 'data.tar.xz' appears twice; refusing an archive whose reading depends on "
     "which copy wins"),
    (ar_archive([(f"_m{i}", b"") for i in range(17)]),
     "x.deb has more than 16 ar members; a Debian package has three"),
    (ar_archive([("../../etc", b"")]),
     "x.deb: the ar member at byte 8 has the name '../../etc', not one a Debian package uses"),
    (ar_archive(GOOD_MEMBERS) + b"short",
     "x.deb: corrupt ar member header at byte 224"),
], ids=[
    'negative-size', 'hex-size', 'size-past-end', 'truncated', 'repeated-name',
    'too-many-members', 'path-name', 'short-header'])
def test_hostile_ar_headers(archive: bytes, message: str) -> None:
    with within(5), pytest.raises(OciBuildError) as err:
        debmod.members(io.BytesIO(archive), "x.deb")
    assert message in str(err.value)


def test_members_of_a_good_archive() -> None:
    assert debmod.members(io.BytesIO(ar_archive(GOOD_MEMBERS)), "x.deb") == {
        "debian-binary": (68, 4), "control.tar.gz": (132, 11), "data.tar.xz": (204, 20)}


# --- Member paths and links ------------------------------------------------------------------


def _layer(deb: Path) -> dict:
    out = io.BytesIO()
    layers.write_package_layer(str(deb), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        return {m.name: m for m in tar}


@pytest.mark.parametrize("entries,message", [
    ([("file", "./../../etc/cron.d/evil", "x")],
     "the member './../../etc/cron.d/evil' has a `..` component; refusing a package that would "
     "write outside the image's root"),
    ([("dir", "./usr/", ""), ("file", "./usr/../../../tmp/x", "x")],
     "the member './usr/../../../tmp/x' has a `..` component"),
    ([("hardlink", "./usr/bin/x", "../../etc/shadow")],
     "the hardlink target '../../etc/shadow' has a `..` component"),
    ([("hardlink", "./usr/bin/x", "/etc/shadow")],
     "./usr/bin/x is a hardlink to '/etc/shadow', which is not a regular file earlier in the "
     "package"),
    ([("symlink", "./usr/lib/evil", "/etc"), ("file", "./usr/lib/evil/passwd", "root::0:0")],
     "./usr/lib/evil/passwd lies under usr/lib/evil, a symlink earlier in the package; refusing "
     "a path that escapes through a symlink"),
    ([("symlink", "./usr/lib/evil", "../../../../../tmp"), ("file", "./usr/lib/evil/x", "x")],
     "./usr/lib/evil/x lies under usr/lib/evil, a symlink earlier in the package"),
    ([("symlink", "./usr/lib/evil", "/tmp"), ("dir", "./usr/lib/evil/", ""),
      ("file", "./usr/lib/evil/x", "x")],
     "./usr/lib/evil appears twice as different kinds of entry (or as a link); refusing an "
     "archive whose result depends on the extractor"),
    ([("symlink", "./lib", "/etc"), ("file", "./lib/passwd", "x")], None),  # merged-/usr: fine
    ([("symlink", "./usr/share/x", "/etc/passwd"), ("file", "./usr/share/x", "root::0:0")],
     "./usr/share/x appears twice as different kinds of entry (or as a link)"),
    ([("symlink", "./usr/share/x", "/tmp"), ("hardlink", "./usr/bin/y", "/usr/share/x/f")],
     "./usr/bin/y is a hardlink to '/usr/share/x/f', which is not a regular file earlier"),
    ([("fifo", "./usr/share/fifo", "")],
     "./usr/share/fifo is a device, FIFO or sparse file"),
], ids=[
    'dotdot', 'dotdot-inside', 'hardlink-dotdot', 'hardlink-outside',
    'through-absolute-symlink', 'through-relative-symlink', 'dir-over-symlink',
    'merged-usr-symlink', 'file-over-symlink', 'hardlink-through-symlink', 'fifo'])
def test_hostile_member_paths(tmp_path: Path, entries, message) -> None:
    deb = hand_made_deb(tmp_path / "hostile.deb", entries)
    if message is None:
        # `lib` is a merged-/usr symlink of the root layer: the package's own one is dropped
        # and its files move to usr/lib, so nothing passes through a symlink.
        assert "usr/lib/passwd" in _layer(deb)
        return
    with pytest.raises(OciBuildError) as err:
        _layer(deb)
    assert str(err.value).startswith(f"{deb}: ")
    assert message in str(err.value)


def test_absolute_names_and_symlinks_are_normal(tmp_path: Path) -> None:
    deb = hand_made_deb(tmp_path / "ok.deb", [
        ("dir", "./", ""), ("file", "/usr/bin/tool", "#!"), ("file", "usr//share/./doc/x", "d"),
        ("symlink", "./usr/bin/abs", "/usr/bin/tool"), ("symlink", "./usr/bin/rel", "../bin/x"),
        ("hardlink", "./usr/bin/tool2", "/usr/bin/tool"), ("hardlink", "./usr/bin/t3", "./bin/tool")])
    entries = _layer(deb)
    assert entries["usr/bin/tool"].isfile() and "usr/share/doc/x" in entries
    assert entries["usr/bin/abs"].linkname == "/usr/bin/tool"  # verbatim
    assert entries["usr/bin/rel"].linkname == "../bin/x"
    assert entries["usr/bin/tool2"].linkname == "usr/bin/tool"
    assert entries["usr/bin/t3"].linkname == "usr/bin/tool"  # bin/ moved under /usr


def test_hostile_package_name(tmp_path: Path) -> None:
    deb = hand_made_deb(tmp_path / "n.deb", [("file", "./x", "x")], package="../../../etc/x")
    with pytest.raises(OciBuildError, match=r"n.deb: the control file's Package "
                                            r"'../../../etc/x' is not a Debian package name"):
        _layer(deb)


def test_status_files_are_not_written_through_a_symlink(tmp_path: Path) -> None:
    deb = hand_made_deb(tmp_path / "s.deb", [("symlink", "./var/lib/dpkg", "/etc")])
    with pytest.raises(OciBuildError, match="s.deb: var/lib/dpkg appears twice as different "
                                            "kinds of entry"):
        _layer(deb)


# --- Corrupt compression ---------------------------------------------------------------------


TAR = tar_bytes([("dir", "./", ""), ("dir", "./usr/", ""), ("file", "./usr/x", "x" * 5000)])


@pytest.mark.parametrize("member,message", [
    (("data.tar.xz", b"garbage, not xz"), "data.tar.xz is corrupt or truncated: Input format "
                                          "not supported by decoder"),
    (("data.tar.xz", lzma.compress(TAR)[:-30]), "data.tar.xz is corrupt or truncated: "
                                                "Compressed file ended before the "
                                                "end-of-stream marker was reached"),
    (("data.tar.gz", b"garbage, not gzip"), "data.tar.gz is corrupt or truncated: Not a "
                                            "gzipped file"),
    (("data.tar.gz", gzip.compress(TAR)[:-40]), "data.tar.gz is corrupt or truncated: "
                                                "Compressed file ended before"),
    (("data.tar.gz", gzip.compress(TAR)[:20] + b"\xff" * 30 + gzip.compress(TAR)[50:]),
     "data.tar.gz is corrupt or truncated: "),
    (("data.tar.zst", b"garbage, not zstd"), "data.tar.zst is corrupt or truncated: "),
    (("data.tar.zst", zstandard.ZstdCompressor().compress(TAR)[:-20]),
     "data.tar.zst is corrupt or truncated: "),
    (("data.tar", b"\x01" * 1024), "data.tar is corrupt or truncated: "),
    (("data.tar", TAR[:1024 + 300]), "data.tar is corrupt or truncated: "),
    (("data.tar", TAR[:1536 + 100]), "data.tar is corrupt or truncated: "),
    (("data.tar", TAR[:1536 + 512 + 512 * 9]), "data.tar is corrupt or truncated: "),
    # A bad header after the first: tarfile alone would end the archive there, quietly.
    (("data.tar", TAR[:1024] + b"\x07" * 512 + TAR[1536:]), "data.tar is corrupt or truncated: "
                                                            "invalid header at byte 1024"),
], ids=[
    'xz-garbage', 'xz-truncated', 'gz-garbage', 'gz-truncated', 'gz-flipped', 'zst-garbage',
    'zst-truncated', 'tar-garbage', 'tar-cut-in-header', 'tar-cut-in-data',
    'tar-no-end-marker', 'tar-bad-second-header'])
def test_corrupt_data_tar(tmp_path: Path, member: Tuple[str, bytes], message: str) -> None:
    deb = hand_made_deb(tmp_path / "c.deb", [], data_member=member)
    with pytest.raises(OciBuildError) as err:
        _layer(deb)
    assert str(err.value).startswith(f"{deb}: {member[0]} is corrupt or truncated: ")
    assert message in str(err.value)


def test_oversized_control_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deb = make_deb(tmp_path, "big", files={f"usr/share/f{i}": b"x" for i in range(50)})
    monkeypatch.setattr(debmod, "MAX_CONTROL_FILE", 1000)
    with pytest.raises(OciBuildError, match=r"big_1.0_amd64.deb: control.tar: ./md5sums is "
                                            r"\d+ bytes, over the 1000-byte limit for a file read "
                                            "into memory; refusing it"):
        debmod.control_files(str(deb))


# --- Indexes: compression, bounds, deadlines, no debris -------------------------------------


def _resign(repo: DebianRepo, name: str, data: bytes) -> None:
    """Replace one Packages file and sign a Release that vouches for it: a consistent,
    signed mirror serving hostile bytes."""
    index = repo.root / f"debian/dists/{repo.suite}/main/binary-amd64"
    (index / name).write_bytes(data)
    lines = []
    for line in repo.release_text().decode().splitlines():
        if line.endswith(f"main/binary-amd64/{name}"):
            line = f" {hashlib.sha256(data).hexdigest()} {len(data)} main/binary-amd64/{name}"
        lines.append(line)
    repo.write_inrelease(repo.clearsign(("\n".join(lines) + "\n").encode()))


@pytest.mark.parametrize("data,message", [
    (b"not xz at all", "Packages.xz is corrupt or truncated: Input format not supported"),
    (lzma.compress(b"Package: a\n" * 100)[:-20], "Packages.xz is corrupt or truncated: the xz "
                                                 "stream does not end"),
    (lzma.compress(b"Package: a\n" * 1000), "Packages.xz decompresses to more than 5000 "
                                            "bytes (at most 100 times its "),
    (lzma.compress(b"Package: ../x\nVersion: 1\nArchitecture: all\nFilename: pool/x.deb\n"
                   b"Size: 1\nSHA256: " + b"0" * 64 + b"\n"), "'../x' is not a Debian package name"),
    (lzma.compress(b"Package: x\nVersion: 1\nArchitecture: all\nFilename: ../../x.deb\n"
                   b"Size: 1\nSHA256: " + b"0" * 64 + b"\n"),
     "package x: the file name '../../x.deb' is not a relative pool path"),
    (lzma.compress(b"Package: x\nVersion: 1\nArchitecture: all\nFilename: pool/x.deb\n"
                   b"Size: -1\nSHA256: " + b"0" * 64 + b"\n"),
     "package x: Size '-1' is not a byte count"),
    (lzma.compress(b"Package: x\nVersion: 1\n"), "the entry 'x' lacks Architecture, Filename"),
    (lzma.compress(b" continuation first\n"), "continuation line before any field"),
], ids=[
    'not-xz', 'xz-truncated', 'xz-bomb', 'dotdot-name', 'dotdot-filename', 'negative-size',
    'missing-fields', 'continuation-first'])
def test_hostile_packages_index(repo: DebianRepo, tmp_path: Path, data: bytes, message: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository, "PACKAGES_MAX_BYTES", 5000)
    _resign(repo, "Packages.xz", data)
    mirror = Mirror(repo.url, repo.suite, str(tmp_path / "cache"), str(repo.keyring))
    with pytest.raises(OciBuildError) as err:
        mirror.packages(mirror.release(), "main", "amd64")
    assert message in str(err.value)


def test_index_larger_than_inrelease_says(repo: DebianRepo, tmp_path: Path) -> None:
    mirror = Mirror(repo.url, repo.suite, str(tmp_path / "cache"), str(repo.keyring))
    release = mirror.release()
    index = repo.root / f"debian/dists/{repo.suite}/main/binary-amd64/Packages.xz"
    declared = release.sha256["main/binary-amd64/Packages.xz"][1]
    index.write_bytes(index.read_bytes() + b"\0" * 100)
    with pytest.raises(OciBuildError, match=rf"Packages.xz: the server announces "
                                            rf"{declared + 100} bytes, over the {declared}-byte "
                                            "limit; refusing to download it"):
        mirror.packages(release, "main", "amd64")
    assert not (tmp_path / "cache").exists() or not os.listdir(tmp_path / "cache")


class _Hostile(BaseHTTPRequestHandler):
    """No Content-Length: `endless` streams bytes forever, `trickle` sends one byte every
    0.05 s forever; a naive client reads either until memory or patience runs out."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            while True:
                if self.path.endswith("/endless/dists/s/InRelease"):
                    self.wfile.write(b"x" * 65536)
                else:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
        except OSError:
            return

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_endless_inrelease_is_cut_at_the_cap(hostile_server: str, repo: DebianRepo,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository, "INRELEASE_MAX_BYTES", 1 << 20)
    mirror = Mirror(f"{hostile_server}/endless", "s", None, str(repo.keyring))
    with within(20), pytest.raises(OciBuildError) as err:
        mirror.release()
    assert str(err.value) == (f"GET {hostile_server}/endless/dists/s/InRelease: more than "
                              "1048576 bytes arrived; refusing it")


def test_trickling_mirror_meets_the_deadline(hostile_server: str, repo: DebianRepo,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository, "DEADLINE_S", 1.0)
    mirror = Mirror(f"{hostile_server}/trickle", "s", None, str(repo.keyring))
    started = time.monotonic()
    with within(20), pytest.raises(OciBuildError) as err:
        mirror.release()
    assert time.monotonic() - started < 3
    assert str(err.value).startswith(f"GET {hostile_server}/trickle/dists/s/InRelease: not "
                                     "complete after ")
    assert str(err.value).endswith(" bytes when the deadline of 1 s passed; the mirror is too "
                                   "slow or stalled, retry or use another mirror")


def test_failed_index_download_leaves_no_debris(repo: DebianRepo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    mirror = Mirror(repo.url, repo.suite, str(cache), str(repo.keyring))
    release = mirror.release()
    index = repo.root / f"debian/dists/{repo.suite}/main/binary-amd64/Packages.xz"
    good = index.read_bytes()
    index.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # same size, other bytes
    with pytest.raises(OciBuildError, match="does not match the SHA256 in InRelease"):
        mirror.packages(release, "main", "amd64")
    assert not cache.exists() or os.listdir(cache) == []
    index.write_bytes(good)
    assert [p.name for p in mirror.packages(release, "main", "amd64")] == ["app", "libfoo"]
    assert os.listdir(cache) == [hashlib.sha256(good).hexdigest()]


def test_credentials_in_the_mirror_url_stay_out_of_messages(repo: DebianRepo) -> None:
    url = repo.url.replace("http://", "http://user:s3cret@")
    mirror = Mirror(url, "nosuchsuite", None, str(repo.keyring))
    with pytest.raises(OciBuildError) as err:
        mirror.release()
    assert "s3cret" not in str(err.value)
    assert str(err.value) == (f"GET {repo.url.replace('http://', 'http://***@')}/dists/"
                              "nosuchsuite/InRelease: 404: File not found")


# --- Control data, relations, versions, lockfiles: every failure is OciBuildError ------------


@pytest.mark.parametrize("call,message", [
    (lambda: list(paragraphs(" continued\n")), "continuation line before any field"),
    (lambda: list(paragraphs("no colon here\n")), "is not `Field: value`"),
    (lambda: parse_relations("libc6 (>= 2"), "cannot parse the package relation 'libc6 (>= 2'"),
    (lambda: parse_relations("Bad_Name"), "cannot parse the package relation"),
    (lambda: compare("x:1.0", "1.0"), "'x:1.0' is not a Debian version: the epoch 'x' is not "
                                      "a number"),
    (lambda: compare("1.0", "²:1"), "is not a Debian version"),
    (lambda: parse_release("SHA256:\n zz 1 x\n", "s", ""),
     "InRelease of s: the SHA256 line 'zz 1 x' is not `HEX SIZE PATH`"),
    (lambda: parse_release("SHA256:\n " + "a" * 64 + " ten x\n", "s", ""),
     "is not `HEX SIZE PATH`"),
], ids=[
    'continuation-first', 'no-colon', 'open-paren', 'uppercase-name', 'epoch-letters',
    'epoch-superscript', 'sha256-not-hex', 'size-not-number'])
def test_bad_control_data_is_an_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(OciBuildError) as err:
        call()
    assert message in str(err.value)


PKG = {"name": "a", "version": "1", "architecture": "all", "filename": "pool/a.deb", "size": 1,
       "sha256": "0" * 64, "suite": "s", "url": "http://m/pool/a.deb"}


@pytest.mark.parametrize("doc,message", [
    (b"[]", "x.lock.json must be a JSON object, not array"),
    (b"{", "x.lock.json is not valid JSON"),
    (b"[" * 100_000, "nests deeper than 64 levels"),
    ({"version": "1"}, "x.lock.json: `version` must be a JSON integer, not string ('1')"),
    ({"version": 1}, "x.lock.json is a version-1 Debian lockfile; this pants-oci reads version 2 "
                     "(several suites, each package's suite and URL): regenerate it with "
                     "`pants debian-lock ADDRESS`"),
    ({"version": 2}, "x.lock.json: `request` is missing"),
    ({"version": 2, "request": {"sources": [{"suite": "s", "mirror": "m"}], "components": "main",
                                "architectures": [], "packages": []}},
     "x.lock.json: request: `components` must be a JSON array, not string ('main')"),
    ({**_lock_doc("v"), "packages": []}, "x.lock.json: `packages` must be a JSON object, not "
                                         "array"),
    ({**_lock_doc("v"), "packages": {"amd64": {}}}, "`packages.amd64` must be a JSON array"),
    ({**_lock_doc("v"), "packages": {"amd64": ["a"]}}, "an entry is not a JSON object"),
    ({**_lock_doc("v"), "packages": {"amd64": [{**PKG, "size": "1"}]}},
     "x.lock.json: packages.amd64: a: `size` must be a JSON integer, not string ('1')"),
    ({**_lock_doc("v"), "packages": {"amd64": [{**PKG, "sha256": "00"}]}},
     "package a: '00' is not a SHA-256"),
    ({**_lock_doc("v"), "packages": {"amd64": [{**PKG, "filename": "../../etc/passwd"}]}},
     "package a: the file name '../../etc/passwd' is not a relative pool path"),
    ({**_lock_doc("v"), "packages": {"amd64": [{**PKG, "filename": "pool/-rf.deb"}]}},
     "is not a relative pool path"),
    ({**_lock_doc("v"), "packages": {"amd64": [{k: v for k, v in PKG.items() if k != "version"}]}},
     "x.lock.json: packages.amd64: a: `version` is missing"),
    ({**_lock_doc(None)}, "x.lock.json: sources: `inrelease_signature` is missing"),  # type: ignore[arg-type]
    ({**_lock_doc("v"), "packages": {"amd64": [{**PKG, "suite": "other"}]}},
     "x.lock.json: packages.amd64: a: the suite 'other' is not one of the lockfile's `sources`"),
    ({**_lock_doc("v"), "sources": []}, "x.lock.json: sources: lists no suite"),
], ids=[
    'array', 'not-json', 'deep', 'version-string', 'version-2', 'no-request',
    'components-string', 'packages-array', 'arch-object', 'entry-string', 'size-string',
    'sha256-short', 'filename-dotdot', 'filename-dash', 'no-version', 'no-signature',
    'unknown-suite', 'no-sources'])
def test_bad_lockfile_is_an_error(doc: object, message: str) -> None:
    data = doc if isinstance(doc, bytes) else lockfile.dumps(doc)  # type: ignore[arg-type]
    with pytest.raises(OciBuildError) as err:
        lockfile.load(data, "x.lock.json")
    assert message in str(err.value)


def test_stale_check_of_a_request_that_is_not_an_object() -> None:
    with pytest.raises(OciBuildError, match="x is stale: packages, sources changed"):
        lockfile.check_current({"request": ["x"]}, {"sources": [], "packages": []}, "x", "fix")


def test_allowed_unsigned_repository_without_inrelease(repo: DebianRepo,
                                                       tmp_path: Path) -> None:
    """A repository that is not signed at all serves only `Release`: allowed, it is read."""
    (repo.root / f"debian/dists/{repo.suite}/InRelease").unlink()
    release = Mirror(repo.url, repo.suite, None, allow_unsigned=True).release()
    assert release.signature == lockfile.UNSIGNED
    assert "main/binary-amd64/Packages.xz" in release.sha256
    with pytest.raises(OciBuildError, match=r"GET .*/dists/testing/InRelease: 404"):
        Mirror(repo.url, repo.suite, None, str(repo.keyring)).release()


def _pax_header(body: bytes = b"20 path=usr/bin/aaaa\n", claim: int = -1) -> bytes:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, len(body) if claim < 0 else claim
    return info.tobuf(format=tarfile.USTAR_FORMAT) + body + b"\0" * (-len(body) % 512)


@pytest.mark.parametrize("data,message", [
    # tarfile follows a chain of extended headers by recursion: RecursionError, a traceback.
    (b"".join(_pax_header() for _ in range(5000)) + b"\0" * 1024,
     "data.tar.xz is corrupt or truncated: more than 16 extended headers in a row"),
    # tarfile reads what an extended header claims into memory: 2 GB of zeros compress to
    # almost nothing.
    (_pax_header(claim=2_000_000_000) + b"\0" * (1 << 20),
     "data.tar.xz is corrupt or truncated: an extended header claims 2000000000 bytes (at "
     "byte 0), over 1048576"),
], ids=[
    'extended-header-chain', 'extended-header-claims-2GB'])
def test_extended_tar_headers_are_bounded(tmp_path: Path, data: bytes, message: str) -> None:
    deb = hand_made_deb(tmp_path / "x.deb", [], data_member=("data.tar.xz", lzma.compress(data)))
    with within(10), pytest.raises(OciBuildError) as err:
        _layer(deb)
    assert str(err.value).startswith(f"{deb}: {message}")
