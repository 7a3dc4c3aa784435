"""debian_packages bases from a signed Debian repository on loopback: lock, build, run, errors."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from textwrap import dedent

import pytest
from pants.engine.addresses import Address
from pants.testutil.rule_runner import RuleRunner

from ocibuild.layout import OciLayout, resolve_image
from pants_oci.goals.debian_lock import DebianLock
from tests.backend.conftest import build, configure, debian_lock, package_error, run_goal
from tests.fixtures.debian_repo import DebianRepo, make_deb
from tests.fixtures.image_checks import run_in_rootfs, umoci_unpack
from tests.fixtures.tools import require


@pytest.fixture
def repo(tmp_path: Path):
    busybox = Path(shutil.which("busybox") or require("busybox")).read_bytes()
    repo = DebianRepo(tmp_path / "mirror")
    repo.add(make_deb(tmp_path, "busybox-test", "1.36-1", depends="libfake (>= 2) | libother",
                      files={"bin/busybox": (busybox, 0o755)},
                      symlinks={"bin/sh": "busybox", "usr/bin/cat": "/bin/busybox",
                                "bin/ls": "busybox", "bin/grep": "busybox"}))
    repo.add(make_deb(tmp_path, "libfake", "2.1", arch="all",
                      # Unique bytes: no test finds this package in Pants' store already.
                      files={"usr/lib/libfake/data.txt": b"fake\n",
                             "usr/lib/libfake/id": uuid.uuid4().hex.encode()}))
    repo.add(make_deb(tmp_path, "ca-certificates", "20230311", arch="all", files={
        "usr/share/ca-certificates/mozilla/Test_Root.crt": b"-----BEGIN CERTIFICATE-----\nTEST\n"}))
    repo.publish()
    with repo:
        yield repo


def _runner(runner: RuleRunner, repo: DebianRepo, packages: list,
            trust: str = 'keyring="archive-keyring.gpg"', source: str = "") -> RuleRunner:
    source = source or f'suite="testing", mirror="{repo.url}"'
    runner.write_files({
        "img/BUILD": dedent(f"""\
            debian_packages(name="base", packages={packages!r},
                            {source}, {trust})
            files(name="f", sources=["hello.txt"])
            oci_image(name="image", base=":base", dependencies=[":f"],
                      entrypoint=["/bin/sh", "-c"], user="nonroot")
            """),
        "img/hello.txt": "hello from a Debian base\n",
    })
    Path(runner.build_root, "img/archive-keyring.gpg").write_bytes(repo.keyring.read_bytes())
    return runner


def test_lock_build_and_run(rule_runner: RuleRunner, repo: DebianRepo, tmp_path: Path) -> None:
    runner = _runner(rule_runner, repo, ["busybox-test", "ca-certificates"])
    out = debian_lock(runner)
    assert "img:base: wrote img/base.lock.json: 3 packages for amd64" in out
    # The keyring as the BUILD file names it: the lockfile is the same in every checkout.
    signature = f"verified by gpgv with img/archive-keyring.gpg (key {repo.fingerprint})"
    assert f"InRelease signature {signature}" in out
    lock = json.loads(Path(runner.build_root, "img/base.lock.json").read_text())
    assert lock["sources"] == [{
        "suite": "testing", "mirror": repo.url, "inrelease_signature": signature,
        "date": lock["sources"][0]["date"], "timestamp": lock["sources"][0]["timestamp"]}]
    assert len(lock["sources"][0]["timestamp"]) == 16
    assert "  new lockfile: 3" in out and "  amd64: added libfake 2.1 (testing)" in out
    assert [p["name"] for p in lock["packages"]["amd64"]] == ["busybox-test", "ca-certificates", "libfake"]
    assert lock["request"]["packages"] == ["busybox-test", "ca-certificates"]
    assert lock["packages"]["amd64"][2]["url"] == f"{repo.url}/pool/main/libfake_2.1_all.deb"

    _, dist = build(runner, Address("img", target_name="image"))
    image = resolve_image(OciLayout(dist / "img/image"), ref_name="latest")
    # root layer, three packages, config layer, then the image's own layer.
    assert len(image.layers) == 6
    assert image.config["config"]["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    rootfs = umoci_unpack(dist / "img/image", "latest", tmp_path / "bundle")
    assert (rootfs / "bin").is_symlink() and (rootfs / "usr/bin/busybox").is_file()
    script = ("cat /img/hello.txt; ls /var/lib/dpkg/status.d; grep nonroot /etc/passwd; "
              "cat /etc/ssl/certs/ca-certificates.crt")
    done = run_in_rootfs(rootfs, ["/bin/sh", "-c", script])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "hello from a Debian base",
        "busybox-test", "busybox-test.md5sums", "ca-certificates", "ca-certificates.md5sums",
        "libfake", "libfake.md5sums",
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin",
        "-----BEGIN CERTIFICATE-----", "TEST"]


def _error(runner: RuleRunner) -> str:
    return package_error(runner, "img:image")


def test_missing_and_stale_lockfile(rule_runner: RuleRunner, repo: DebianRepo) -> None:
    runner = _runner(rule_runner, repo, ["busybox-test"])
    assert ("the debian_packages img:base: no lockfile at img/base.lock.json; create it with "
            "`pants debian-lock img:base`") in _error(runner)
    debian_lock(runner)
    runner.write_files({"img/BUILD": Path(runner.build_root, "img/BUILD").read_text().replace(
        "['busybox-test']", "['busybox-test', 'ca-certificates']")})
    assert ("img/base.lock.json is stale: packages changed in the BUILD file since it was "
            "written; run `pants debian-lock img:base`") in _error(runner)


def test_unknown_package_fails_the_lock(rule_runner: RuleRunner, repo: DebianRepo) -> None:
    runner = _runner(rule_runner, repo, ["busybox-test", "no-such-package"])
    result = run_goal(runner, DebianLock, ["img:base"])
    assert result.exit_code == 1
    assert "img:base (amd64): no package named no-such-package" in result.stderr
    assert not Path(runner.build_root, "img/base.lock.json").exists()


def test_checksum_mismatch_on_download(rule_runner: RuleRunner, repo: DebianRepo,
                                       tmp_path: Path) -> None:
    runner = _runner(rule_runner, repo, ["busybox-test"])
    debian_lock(runner)
    pool = tmp_path / "mirror/debian/pool/main/libfake_2.1_all.deb"
    pool.write_bytes(pool.read_bytes()[:-1] + b"X")
    message = _error(runner)
    url = f"{repo.url}/pool/main/libfake_2.1_all.deb"
    assert (f"the debian_packages img:base: downloading the locked package {url} failed:\n"
            f"  {url}: Wrong digest for downloaded file") in message


def test_a_new_lock_changes_the_digest_and_the_same_lock_does_not(
        rule_runner: RuleRunner, repo: DebianRepo, tmp_path: Path) -> None:
    runner = _runner(rule_runner, repo, ["busybox-test"])
    debian_lock(runner)
    _, dist = build(runner, Address("img", target_name="image"))
    first = json.loads((dist / "img/image.json").read_text())["manifest_digest"]
    shutil.rmtree(dist)
    # Built again for real: nothing from the engine's memory or the local process cache (the
    # downloaded .debs are still in the store, by their SHA-256).
    runner.scheduler.scheduler.invalidate_all()
    configure(runner, ("--no-local-cache",))
    _, dist = build(runner, Address("img", target_name="image"))
    assert json.loads((dist / "img/image.json").read_text())["manifest_digest"] == first
    shutil.rmtree(dist)
    configure(runner)
    # The mirror moves libfake to 2.2: a new lock, a new image.
    repo.add(make_deb(tmp_path, "libfake", "2.2", arch="all",
                      files={"usr/lib/libfake/data.txt": b"fake 2.2\n"}))
    repo.publish()
    debian_lock(runner)
    lock = json.loads(Path(runner.build_root, "img/base.lock.json").read_text())
    assert {p["name"]: p["version"] for p in lock["packages"]["amd64"]}["libfake"] == "2.2"
    _, dist = build(runner, Address("img", target_name="image"))
    assert json.loads((dist / "img/image.json").read_text())["manifest_digest"] != first


UNSIGNED = "NOT verified: the target allows an unsigned index (allow_unsigned_index=True)"


def test_an_unsigned_index_needs_allow_unsigned_index_to_lock_and_to_build(
        rule_runner: RuleRunner, repo: DebianRepo) -> None:
    runner = _runner(rule_runner, repo, ["busybox-test"], "allow_unsigned_index=True")
    assert f"InRelease signature {UNSIGNED}" in debian_lock(runner)
    lock_path = Path(runner.build_root, "img/base.lock.json")
    locked = lock_path.read_text()
    assert json.loads(locked)["sources"][0]["inrelease_signature"] == UNSIGNED
    _, dist = build(runner, Address("img", target_name="image"))
    shutil.rmtree(dist)

    # The same BUILD without the field: the unsigned lockfile is refused...
    build_file = Path(runner.build_root, "img/BUILD")
    runner.write_files({"img/BUILD": build_file.read_text().replace(
        "allow_unsigned_index=True", 'lockfile="base.lock.json"')})
    assert ("the debian_packages img:base: img/base.lock.json was locked from an index whose "
            "signature was not verified (testing: inrelease_signature: 'NOT verified: the target allows "
            "an unsigned index (allow_unsigned_index=True)'), and the target does not set "
            "`allow_unsigned_index=True`; lock again with a keyring (`pants debian-lock "
            "img:base`)") in _error(runner)
    # ...and locking again needs a keyring that verifies: the Debian archive keyring (when
    # installed) does not verify the test key, and without it there is no keyring at all.
    result = run_goal(runner, DebianLock, ["img:base"])
    assert result.exit_code == 1
    assert result.stderr.startswith("img:base: ")
    assert ("is by a key that is not in /usr/share/keyrings/debian-archive-keyring.gpg "
            "(gpgv: NO_PUBKEY)" in result.stderr
            or "no keyring to check the suite's InRelease signature with" in result.stderr)
    assert lock_path.read_text() == locked


def test_a_hostile_inrelease_fails_the_lock(rule_runner: RuleRunner, repo: DebianRepo) -> None:
    """Only what gpgv verified is read: an unsigned paragraph before the signed message is
    refused, not parsed."""
    signed = repo.clearsign(repo.release_text())
    repo.write_inrelease(b"Suite: testing\nSHA256:\n " + b"e" * 64 + b" 1 x\n\n" + signed)
    runner = _runner(rule_runner, repo, ["busybox-test"])
    result = run_goal(runner, DebianLock, ["img:base"])
    assert result.exit_code == 1
    assert ("img:base: suite testing: InRelease does not start with "
            "`-----BEGIN PGP SIGNED MESSAGE-----`; refusing a file with unsigned text before (or instead of) its signed message"
            ) in result.stderr
    assert not Path(runner.build_root, "img/base.lock.json").exists()


# --- several suites, fallback mirrors, --check ------------------------------------------------


def test_several_suites_resolve_together_each_with_its_keyring(
        rule_runner: RuleRunner, repo: DebianRepo, tmp_path: Path) -> None:
    """A security suite on another mirror, signed by another key: its newer libfake wins."""
    security = DebianRepo(tmp_path / "security", suite="testing-security")
    security.add(make_deb(tmp_path, "libfake", "2.1+sec1", arch="all",
                          files={"usr/lib/libfake/data.txt": b"patched\n",
                                 "usr/lib/libfake/id": uuid.uuid4().hex.encode()}))
    security.publish()
    with security:
        runner = _runner(rule_runner, repo, ["busybox-test"], "lockfile='base.lock.json'", source=(
            f'sources=[{{"suite": "testing", "mirror": "{repo.url}", '
            '"keyring": "archive-keyring.gpg"}, '
            f'{{"suite": "testing-security", "mirror": "{security.url}", '
            '"keyring": "security-keyring.gpg"}]'))
        Path(runner.build_root, "img/security-keyring.gpg").write_bytes(
            security.keyring.read_bytes())
        out = debian_lock(runner)
        assert (f"testing-security: InRelease signature verified by gpgv with "
                f"img/security-keyring.gpg (key {security.fingerprint})") in out
        lock = json.loads(Path(runner.build_root, "img/base.lock.json").read_text())
        assert [s["suite"] for s in lock["sources"]] == ["testing", "testing-security"]
        assert lock["request"]["sources"] == [{"suite": "testing", "mirror": repo.url},
                                              {"suite": "testing-security",
                                               "mirror": security.url}]
        assert [(p["name"], p["version"], p["suite"], p["url"])
                for p in lock["packages"]["amd64"]] == [
            ("busybox-test", "1.36-1", "testing",
             f"{repo.url}/pool/main/busybox-test_1.36-1_amd64.deb"),
            ("libfake", "2.1+sec1", "testing-security",
             f"{security.url}/pool/main/libfake_2.1+sec1_all.deb")]
        _, dist = build(runner, Address("img", target_name="image"))
        rootfs = umoci_unpack(dist / "img/image", "latest", tmp_path / "bundle")
        assert (rootfs / "usr/lib/libfake/data.txt").read_bytes() == b"patched\n"


def _snapshot_archive(root: Path):
    """A second loopback server standing in for snapshot.debian.org."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_a_file_the_mirror_dropped_comes_from_a_fallback_mirror(
        rule_runner: RuleRunner, repo: DebianRepo, tmp_path: Path) -> None:
    runner = _runner(rule_runner, repo, ["busybox-test"])
    debian_lock(runner)
    lock = json.loads(Path(runner.build_root, "img/base.lock.json").read_text())
    timestamp = lock["sources"][0]["timestamp"]
    # The mirror moves on and drops libfake 2.1 (its bytes are unique to this test, so it is
    # not in Pants' store); the snapshot archive keeps it under the lock's timestamp.
    pool = tmp_path / "mirror/debian/pool/main/libfake_2.1_all.deb"
    kept = tmp_path / f"snapshot/archive/debian/{timestamp}/pool/main/libfake_2.1_all.deb"
    kept.parent.mkdir(parents=True)
    pool.rename(kept)
    url = f"{repo.url}/pool/main/libfake_2.1_all.deb"
    message = _error(runner)
    assert f"downloading the locked package {url} failed:\n  {url}: " in message
    assert "404" in message and "add a fallback mirror that keeps old files" in message

    server = _snapshot_archive(tmp_path / "snapshot")
    try:
        snapshot = f"http://127.0.0.1:{server.server_address[1]}"
        # A fallback that lacks the file too is tried and passed over; the next one serves it,
        # checked against the locked SHA-256 like any download.
        configure(runner, (f"--oci-debian-fallback-mirrors=['{snapshot}/nothing/{{suite}}', "
                           f"'{snapshot}/archive/{{archive}}/{{timestamp}}']",))
        _, dist = build(runner, Address("img", target_name="image"))
        rootfs = umoci_unpack(dist / "img/image", "latest", tmp_path / "bundle")
        assert (rootfs / "usr/lib/libfake/data.txt").read_bytes() == b"fake\n"
    finally:
        server.shutdown()
        server.server_close()


def test_bad_fallback_mirror_option_is_an_error(rule_runner: RuleRunner, repo: DebianRepo) -> None:
    runner = _runner(rule_runner, repo, ["busybox-test"])
    debian_lock(runner)
    configure(runner, ("--oci-debian-fallback-mirrors=['http://s/{date}']",))
    assert ("the debian_packages img:base: [oci].debian_fallback_mirrors: the fallback mirror "
            "'http://s/{date}' uses {date}; the placeholders are {archive}, {suite}, "
            "{timestamp}") in _error(runner)


def test_check_fails_on_a_newer_version_and_passes_after_a_new_lock(
        rule_runner: RuleRunner, repo: DebianRepo, tmp_path: Path) -> None:
    runner = _runner(rule_runner, repo, ["busybox-test"])
    missing = run_goal(runner, DebianLock, ["--check", "img:base"])
    assert missing.exit_code == 1
    assert ("img:base: img/base.lock.json is 1 newer or out of date:\n  no lockfile at "
            "img/base.lock.json; create it with `pants debian-lock img:base`") in missing.stdout
    debian_lock(runner)
    lock_path = Path(runner.build_root, "img/base.lock.json")
    locked = lock_path.read_text()
    current = run_goal(runner, DebianLock, ["--check", "img:base"])
    assert current.exit_code == 0, current.stderr
    assert current.stdout == "img:base: img/base.lock.json is up to date\n"

    # A newer libfake is published: --check fails, names it, and writes nothing.
    repo.add(make_deb(tmp_path, "libfake", "2.2", arch="all",
                      files={"usr/lib/libfake/data.txt": b"fake 2.2\n"}))
    repo.publish()
    outdated = run_goal(runner, DebianLock, ["--check", "img:base"])
    assert outdated.exit_code == 1
    assert outdated.stdout == ("img:base: img/base.lock.json is 1 newer or out of date:\n"
                               "  amd64: libfake 2.1 -> 2.2 (testing)\n")
    assert lock_path.read_text() == locked

    # A new lock reports the upgrade; then --check passes.
    out = debian_lock(runner)
    assert "  changes: 1\n  amd64: upgraded libfake 2.1 -> 2.2 (testing)\n" in out
    again = run_goal(runner, DebianLock, ["--check", "img:base"])
    assert again.exit_code == 0 and "is up to date" in again.stdout
    unchanged = debian_lock(runner)
    assert "  changes: none\n" in unchanged


def test_an_old_lockfile_version_asks_for_a_new_lock(rule_runner: RuleRunner, repo: DebianRepo) -> None:
    runner = _runner(rule_runner, repo, ["busybox-test"])
    runner.write_files({"img/base.lock.json": json.dumps({
        "version": 1, "inrelease_signature": "verified by gpgv with k", "packages": {},
        "request": {"suite": "testing", "mirror": repo.url}})})
    assert ("img/base.lock.json is a version-1 Debian lockfile; this pants-oci reads version 2 "
            "(several suites, each package's suite and URL): regenerate it with "
            "`pants debian-lock img:base`") in _error(runner)
    # The report of the new lock compares with whatever was there.
    assert ("  changes: 2\n  amd64: added busybox-test 1.36-1 (testing)\n"
            "  amd64: added libfake 2.1 (testing)\n") in debian_lock(runner)
