"""debian_packages bases from a signed Debian repository on loopback: lock, build, run, errors."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from textwrap import dedent

import pytest
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import RuleRunner

from ocibuild.layout import OciLayout, resolve_image
from pants_oci.goals.debian_lock import DebianLock
from tests.backend.conftest import build, configure, make_rule_runner
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


def _runner(repo: DebianRepo, packages: list,
            trust: str = 'keyring="archive-keyring.gpg"') -> RuleRunner:
    runner = make_rule_runner()
    runner.write_files({
        "img/BUILD": dedent(f"""\
            debian_packages(name="base", packages={packages!r}, suite="testing",
                            mirror="{repo.url}", {trust})
            files(name="f", sources=["hello.txt"])
            oci_image(name="image", base=":base", dependencies=[":f"],
                      entrypoint=["/bin/sh", "-c"], user="nonroot")
            """),
        "img/hello.txt": "hello from a Debian base\n",
    })
    Path(runner.build_root, "img/archive-keyring.gpg").write_bytes(repo.keyring.read_bytes())
    return runner


def _lock(runner: RuleRunner) -> str:
    result = runner.run_goal_rule(DebianLock, args=["img:base"])
    configure(runner)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_lock_build_and_run(repo: DebianRepo, tmp_path: Path) -> None:
    runner = _runner(repo, ["busybox-test", "ca-certificates"])
    out = _lock(runner)
    assert "img:base: wrote img/base.lock.json: 3 packages for amd64" in out
    # The keyring as the BUILD file names it: the lockfile is the same in every checkout.
    signature = f"verified by gpgv with img/archive-keyring.gpg (key {repo.fingerprint})"
    assert f"InRelease signature {signature}" in out
    lock = json.loads(Path(runner.build_root, "img/base.lock.json").read_text())
    assert lock["inrelease_signature"] == signature
    assert [p["name"] for p in lock["packages"]["amd64"]] == ["busybox-test", "ca-certificates", "libfake"]
    assert lock["request"]["packages"] == ["busybox-test", "ca-certificates"]

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
    with pytest.raises(ExecutionError) as err:
        build(runner, Address("img", target_name="image"))
    assert not Path(runner.build_root, "dist").exists()
    return str(err.value)


def test_missing_and_stale_lockfile(repo: DebianRepo) -> None:
    runner = _runner(repo, ["busybox-test"])
    assert ("the debian_packages img:base: no lockfile at img/base.lock.json; create it with "
            "`pants debian-lock img:base`") in _error(runner)
    _lock(runner)
    runner.write_files({"img/BUILD": Path(runner.build_root, "img/BUILD").read_text().replace(
        "['busybox-test']", "['busybox-test', 'ca-certificates']")})
    assert ("img/base.lock.json is stale: packages changed in the BUILD file since it was "
            "written; run `pants debian-lock img:base`") in _error(runner)


def test_unknown_package_fails_the_lock(repo: DebianRepo) -> None:
    runner = _runner(repo, ["busybox-test", "no-such-package"])
    result = runner.run_goal_rule(DebianLock, args=["img:base"])
    assert result.exit_code == 1
    assert "img:base (amd64): no package named no-such-package" in result.stderr
    assert not Path(runner.build_root, "img/base.lock.json").exists()


def test_checksum_mismatch_on_download(repo: DebianRepo, tmp_path: Path) -> None:
    runner = _runner(repo, ["busybox-test"])
    _lock(runner)
    pool = tmp_path / "mirror/debian/pool/main/libfake_2.1_all.deb"
    pool.write_bytes(pool.read_bytes()[:-1] + b"X")
    message = _error(runner)
    assert (f"the debian_packages img:base: downloading the locked package {repo.url}/pool/main/"
            "libfake_2.1_all.deb failed: Wrong digest for downloaded file") in message


def test_a_new_lock_changes_the_digest_and_the_same_lock_does_not(repo: DebianRepo,
                                                                   tmp_path: Path) -> None:
    runner = _runner(repo, ["busybox-test"])
    _lock(runner)
    _, dist = build(runner, Address("img", target_name="image"))
    first = json.loads((dist / "img/image.json").read_text())["manifest_digest"]
    shutil.rmtree(dist)
    _, dist = build(runner, Address("img", target_name="image"))
    assert json.loads((dist / "img/image.json").read_text())["manifest_digest"] == first
    shutil.rmtree(dist)
    # The mirror moves libfake to 2.2: a new lock, a new image.
    repo.add(make_deb(tmp_path, "libfake", "2.2", arch="all",
                      files={"usr/lib/libfake/data.txt": b"fake 2.2\n"}))
    repo.publish()
    _lock(runner)
    lock = json.loads(Path(runner.build_root, "img/base.lock.json").read_text())
    assert {p["name"]: p["version"] for p in lock["packages"]["amd64"]}["libfake"] == "2.2"
    _, dist = build(runner, Address("img", target_name="image"))
    assert json.loads((dist / "img/image.json").read_text())["manifest_digest"] != first


UNSIGNED = "NOT verified: the target allows an unsigned index (allow_unsigned_index=True)"


def test_an_unsigned_index_needs_allow_unsigned_index_to_lock_and_to_build(repo: DebianRepo
                                                                         ) -> None:
    runner = _runner(repo, ["busybox-test"], "allow_unsigned_index=True")
    assert f"InRelease signature {UNSIGNED}" in _lock(runner)
    lock_path = Path(runner.build_root, "img/base.lock.json")
    locked = lock_path.read_text()
    assert json.loads(locked)["inrelease_signature"] == UNSIGNED
    _, dist = build(runner, Address("img", target_name="image"))
    shutil.rmtree(dist)

    # The same BUILD without the field: the unsigned lockfile is refused...
    build_file = Path(runner.build_root, "img/BUILD")
    runner.write_files({"img/BUILD": build_file.read_text().replace(
        "allow_unsigned_index=True", 'lockfile="base.lock.json"')})
    assert ("the debian_packages img:base: img/base.lock.json was locked from an index whose "
            "signature was not verified (inrelease_signature: 'NOT verified: the target allows "
            "an unsigned index (allow_unsigned_index=True)'), and the target does not set "
            "`allow_unsigned_index=True`; lock again with a keyring (`pants debian-lock "
            "img:base`)") in _error(runner)
    # ...and locking again needs a keyring that verifies: the Debian archive keyring (when
    # installed) does not verify the test key, and without it there is no keyring at all.
    result = runner.run_goal_rule(DebianLock, args=["img:base"])
    assert result.exit_code == 1
    assert result.stderr.startswith("img:base: ")
    assert ("InRelease: the signature does not verify against "
            "/usr/share/keyrings/debian-archive-keyring.gpg" in result.stderr
            or "no keyring to check the suite's InRelease signature with" in result.stderr)
    assert lock_path.read_text() == locked


def test_a_hostile_inrelease_fails_the_lock(repo: DebianRepo) -> None:
    """Only what gpgv verified is read: an unsigned paragraph before the signed message is
    refused, not parsed."""
    signed = repo.clearsign(repo.release_text())
    repo.write_inrelease(b"Suite: testing\nSHA256:\n " + b"e" * 64 + b" 1 x\n\n" + signed)
    runner = _runner(repo, ["busybox-test"])
    result = runner.run_goal_rule(DebianLock, args=["img:base"])
    assert result.exit_code == 1
    assert ("img:base: InRelease does not start with `-----BEGIN PGP SIGNED MESSAGE-----`; "
            "refusing a file with unsigned text before (or instead of) its signed message"
            ) in result.stderr
    assert not Path(runner.build_root, "img/base.lock.json").exists()
