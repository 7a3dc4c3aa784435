"""The Python examples: pex_binary apps on the Debian python3 base, run from the image."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.repo import copy_repo, debian_mirrors, run_pants
from tests.fixtures.image_checks import podman_load_and_run, run_in_rootfs, umoci_unpack

HELLO, CLI = "examples.python-hello/image", "examples.python-cli/image"
FILES = "examples.python-cli/image-files"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy for the module's tests (and one pantsd); a test that edits a file puts it
    back as it was."""
    return copy_repo(tmp_path_factory.mktemp("python-examples") / "repo", pantsd=True)


# The SHA-256 of click-8.1.7-py3-none-any.whl, as the `examples` lockfile has it.
CLICK_WHEEL_SHA256 = "ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28"


def _check_cli_sbom(dist: Path) -> None:
    """The PEX's distributions come with their lockfile's wheel hashes, the base's packages
    with their .deb hashes; the image is the one packaged."""
    spdx = json.loads((dist / f"{CLI}.spdx.json").read_text())
    packages = {p["name"]: p for p in spdx["packages"]}
    assert packages["click"]["versionInfo"] == "8.1.7"
    assert packages["click"]["checksums"] == [{"algorithm": "SHA256",
                                               "checksumValue": CLICK_WHEEL_SHA256}]
    debs = [p for p in spdx["packages"] if p.get("packageFileName", "").endswith(".deb")]
    assert len(debs) == 34 and all(len(p["checksums"][0]["checksumValue"]) == 64 for p in debs)
    meta = json.loads((dist / f"{CLI}.json").read_text())
    image = next(p for p in spdx["packages"] if p["SPDXID"] == "SPDXRef-Image")
    assert image["versionInfo"] == meta["manifest_digest"]


def _check_cli_provenance(repo: Path, dist: Path) -> None:
    """The provenance names the image, the base it was built on, and both lockfiles by the
    SHA-256 of the files in the repository."""
    statement = json.loads((dist / f"{CLI}.provenance.json").read_text())
    meta = json.loads((dist / f"{CLI}.json").read_text())
    assert statement["subject"][0]["digest"] == {"sha256": meta["manifest_digest"].split(":")[1]}
    deps = {d["annotations"]["role"]: d
            for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert deps["base-image"]["name"] == "examples/python-base:python-base"
    for role, path in (("python-lockfile", "3rdparty/python/examples.lock"),
                       ("debian-lockfile", "examples/python-base/python-base.lock.json")):
        assert deps[role]["name"] == path
        assert deps[role]["digest"] == {
            "sha256": hashlib.sha256((repo / path).read_bytes()).hexdigest()}


def test_python_examples_run(repo: Path, tmp_path: Path) -> None:
    run_pants(repo, "package", "examples/python-hello:image", "examples/python-cli:image")
    dist = repo / "dist"
    hello_meta = json.loads((dist / f"{HELLO}.json").read_text())
    cli_meta = json.loads((dist / f"{CLI}.json").read_text())
    base = [layer["digest"] for layer in hello_meta["layers"] if layer["from_base"]]
    # 34 packages (trixie, one from trixie-security) in the default budget of 8 layers (6
    # alone, 2 shared), + the root and config layers, shared as they are by both apps.
    assert len(base) == 8 + 2
    assert [layer["digest"] for layer in cli_meta["layers"] if layer["from_base"]] == base
    _check_cli_sbom(dist)
    _check_cli_provenance(repo, dist)

    rootfs = umoci_unpack(dist / HELLO, "latest", tmp_path / "hello")
    env = {"PEX_ROOT": "/tmp/pex", "PATH": "/usr/bin:/bin"}
    done = run_in_rootfs(rootfs, ["/usr/bin/python3", "/app/app.pex", "e2e"], env=env)
    lines = done.stdout.splitlines()
    assert lines[0] == "hello e2e from Python 3.13.5 on x86_64 as uid 0", done.stderr
    assert lines[1].startswith("CA bundle: /usr/lib/ssl/cert.pem (")
    stdlib = run_in_rootfs(rootfs, ["/usr/bin/python3", "-c",
                                    "import json, sqlite3, ssl, zoneinfo; print(ssl.OPENSSL_VERSION)"],
                           env=env)
    assert stdlib.stdout.startswith("OpenSSL 3.5."), stdlib.stderr
    status = sorted(p.name for p in (rootfs / "var/lib/dpkg/status.d").iterdir())
    assert "python3-minimal" in status and "libc6" in status and "libc6.md5sums" in status
    assert (rootfs / "bin").is_symlink() and (rootfs / "usr/bin/python3.13").is_file()

    # podman runs the OCI layout in dist/ with the image's own entrypoint, user and env.
    ran = podman_load_and_run(dist / CLI, ["--count", "1", "podman"],
                              tmp_path / "podman")
    assert ran.stdout.strip() == "greeting 1 of 1: hello podman (click 8.1.7)", ran.stderr


def _image_for(layout: Path, arch: str) -> dict:
    """The manifest of `arch`'s image in a layout whose `latest` is an image or an index."""
    def blob(digest: str) -> dict:
        return json.loads((layout / "blobs/sha256" / digest.split(":", 1)[1]).read_text())
    (top,) = [m for m in json.loads((layout / "index.json").read_text())["manifests"]
              if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "latest"]
    doc = blob(top["digest"])
    if "manifests" in doc:
        doc = blob(next(m["digest"] for m in doc["manifests"]
                        if m["platform"]["architecture"] == arch))
    return doc


def test_the_cli_builds_the_base_pants_builds_from_the_same_lock(repo: Path,
                                                                  tmp_path: Path) -> None:
    """examples/cli locks the packages examples/python-base locks: `ocibuild build -f` makes
    the same base image (same digest, same layers) as the `debian_packages` target."""
    run_pants(repo, "package", "examples/python-hello:image")
    mirrors = [f"--debian-mirror={named}={url}" for named, url in debian_mirrors(repo).items()]
    built = subprocess.run(
        [sys.executable, "-m", "ocibuild", "build", "-f", "examples/cli/image.yaml", "--output",
         str(tmp_path / "cli"), "--quiet", f"--cache-dir={tmp_path / 'cache'}", *mirrors],
        cwd=repo, capture_output=True, text=True,
        env={"PYTHONPATH": str(repo / "src/python"), "PATH": "/usr/bin:/bin"})
    assert built.returncode == 0, built.stderr
    pants_image = _image_for(repo / "dist" / HELLO, "amd64")
    cli_image = _image_for(tmp_path / "cli", "amd64")
    key = "org.opencontainers.image.base.digest"
    assert cli_image["annotations"][key] == pants_image["annotations"][key]
    assert cli_image["layers"][:10] == pants_image["layers"][:10]


def test_lock_against_real_debian_indexes(repo: Path) -> None:
    """`pants debian-lock` on the real trixie, trixie-updates and trixie-security InRelease and
    Packages indexes (served from the test cache on 127.0.0.1): the real signatures, real
    indexes, same closure as committed; then `--check` against the same indexes."""
    lock_path = repo / "examples/python-base/python-base.lock.json"
    committed_text = lock_path.read_text()
    committed = json.loads(committed_text)
    lock_path.unlink()
    try:
        _relock_and_check(repo, lock_path, committed)
    finally:
        lock_path.write_text(committed_text)


def _relock_and_check(repo: Path, lock_path: Path, committed: dict) -> None:
    result = run_pants(repo, "debian-lock", "examples/python-base:python-base")
    for suite in ("trixie", "trixie-updates", "trixie-security"):
        assert (f"{suite}: InRelease signature verified by gpgv with "
                "/usr/share/keyrings/debian-archive-keyring.gpg") in result.stdout
    relocked = json.loads(lock_path.read_text())
    assert relocked["request"] == committed["request"]
    assert [s["suite"] for s in relocked["sources"]] == ["trixie", "trixie-updates",
                                                         "trixie-security"]
    for arch in ("amd64", "arm64"):
        assert [p["name"] for p in relocked["packages"][arch]] == \
            [p["name"] for p in committed["packages"][arch]]
        # URLs name the real mirrors (as the BUILD file does), not the loopback one.
        assert {p["url"].split("/pool/")[0] for p in relocked["packages"][arch]} <= {
            "http://deb.debian.org/debian", "http://deb.debian.org/debian-security"}
    check = run_pants(repo, "debian-lock", "--check", "examples/python-base:python-base")
    assert "examples/python-base:python-base: examples/python-base/python-base.lock.json is " \
        "up to date" in check.stdout


def test_a_code_change_changes_only_the_sources_layer(repo: Path) -> None:
    targets = ("examples/python-cli:image", "examples/python-cli:image-files")
    run_pants(repo, "package", *targets)
    metas = [repo / f"dist/{CLI}.json", repo / f"dist/{FILES}.json"]
    before = [json.loads(meta.read_text())["layers"] for meta in metas]
    source = repo / "examples/python-cli/greet/cli.py"
    original = source.read_text()
    source.write_text(original + "# a one-line change\n")
    try:
        run_pants(repo, "package", *targets)
    finally:
        source.write_text(original)
    # A packed PEX is two layers: requirements + pex bootstrap (unchanged), then sources; an
    # oci_python_app is site-packages layers (unchanged), then sources.
    for meta, old in zip(metas, before):
        new = json.loads(meta.read_text())["layers"]
        assert [l["digest"] for l in new[:-1]] == [l["digest"] for l in old[:-1]]
        assert new[-1]["digest"] != old[-1]["digest"]
        assert new[-1]["size"] < 16 * 1024


def _tree_state(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.lstat().st_mtime_ns, p.lstat().st_size)
            for p in root.rglob("*")}


def test_an_oci_python_app_runs_from_byte_compiled_files_and_writes_nothing(
        repo: Path, tmp_path: Path) -> None:
    run_pants(repo, "package", "examples/python-cli:image-files")
    dist = repo / "dist"
    layers = json.loads((dist / f"{FILES}.json").read_text())["layers"]
    assert [l["from_base"] for l in layers] == [True] * 10 + [False, False]
    # The SBOM names click with its lockfile's wheel hash, as for the PEX.
    spdx = {p["name"]: p for p in json.loads((dist / f"{FILES}.spdx.json").read_text())["packages"]}
    assert spdx["click"]["checksums"] == [{"algorithm": "SHA256",
                                           "checksumValue": CLICK_WHEEL_SHA256}]
    rootfs = umoci_unpack(dist / FILES, "latest", tmp_path / "files")
    assert not list(rootfs.glob("app/*.pex"))
    before = _tree_state(rootfs / "app")
    env = {"PYTHONPATH": "/app/src:/app/site-packages", "PATH": "/usr/bin:/bin"}
    done = run_in_rootfs(rootfs, ["/usr/bin/python3", "-v", "-m", "greet.cli", "--count", "1",
                                  "files"], env=env)
    assert done.stdout == "greeting 1 of 1: hello files (click 8.1.7)\n"
    # Each module of the app and of click came from its .pyc (checked by Python: "matches"),
    # nothing was compiled, and /app is untouched (it works read-only). (The Debian base has no
    # .pyc for the standard library: Python writes those where it can.)
    loaded = [line for line in done.stderr.splitlines() if " matches /app/" in line]
    assert any("/app/src/greet/__pycache__/cli.cpython-313.pyc" in line for line in loaded)
    assert any("/app/site-packages/click/__pycache__/core.cpython-313.pyc" in line
               for line in loaded)
    assert "code object from '/app/src/greet/cli.py'" not in done.stderr
    assert _tree_state(rootfs / "app") == before
