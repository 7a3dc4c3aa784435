"""The core as a wheel: `./pants package src/python:ocibuild`, pip-installed into a fresh venv,
gives an `ocibuild` command that builds a layer outside Pants, and builds, pushes and locks the
examples/cli image (Debian packages + a static site) that then serves the site."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import deflate
import isal
import pytest
import requests
import urllib3
import yaml
import zstandard

from tests.e2e.repo import copy_repo, debian_mirrors, run_pants
from tests.fixtures.image_checks import skopeo_inspect, start_in_rootfs, umoci_unpack
from tests.fixtures.registry import Registry, registry  # noqa: F401 (fixture)
from tests.fixtures.tools import require, run, stop


@pytest.fixture(scope="module")
def ocibuild(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The `ocibuild` command of the wheel, installed into a fresh venv."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    repo = copy_repo(tmp_path / "repo")
    run_pants(repo, "package", "src/python:ocibuild")
    (wheel,) = (repo / "dist").glob("ocibuild-*-py3-none-any.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The tests reach no index: the wheel's requirements are the ones this test runs with,
    # made visible to the venv by a .pth file; the wheel itself is installed as a user would.
    site = subprocess.run([str(venv / "bin/python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dirs = {str(Path(m.__file__).resolve().parents[1]) for m in (deflate, isal, requests,
                                                                  urllib3, yaml, zstandard)}
    Path(site, "ocibuild-test-deps.pth").write_text("\n".join(sorted(dirs)) + "\n")
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--no-index", "--no-deps",
                    "--quiet", str(wheel)], check=True)
    yield venv / "bin/ocibuild"


def test_the_wheel_installs_an_ocibuild_command(ocibuild: Path, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app/hello.txt").write_text("hello\n")
    (tmp_path / "spec.json").write_text(json.dumps(
        {"mappings": [{"source": "app", "dest": "srv"}]}))
    done = subprocess.run([str(ocibuild), "layer", "--spec", "spec.json", "--out-dir", "out"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    layer = json.loads(done.stdout)
    assert layer["kind"] == "layer-descriptor"
    assert (tmp_path / "out/blobs/sha256" / layer["digest"].split(":", 1)[1]).is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_yaml_example_locks_builds_pushes_and_serves(ocibuild: Path, tmp_path: Path,
                                                         registry: Registry) -> None:
    """docs/cli.md's walk-through: `ocibuild lock -f` then `ocibuild build -f --push`, with
    the Debian mirror on 127.0.0.1 (`--debian-mirror`) and a fresh package cache."""
    example = tmp_path / "cli"
    shutil.copytree("examples/cli", example)
    mirrors = [f"--debian-mirror={named}={url}" for named, url in debian_mirrors().items()]
    common = [*mirrors, f"--cache-dir={tmp_path / 'cache'}"]

    # The lock resolves the same closure (names per architecture) as the checked-in one.
    checked_in = json.loads((example / "image.lock.json").read_text())
    (example / "image.lock.json").unlink()
    locked = subprocess.run([str(ocibuild), "lock", "-f", str(example / "image.yaml"), *common],
                            capture_output=True, text=True)
    assert locked.returncode == 0, locked.stderr
    assert "new lockfile" in locked.stdout
    fresh = json.loads((example / "image.lock.json").read_text())
    assert {a: sorted(p["name"] for p in pkgs) for a, pkgs in fresh["packages"].items()} == \
        {a: sorted(p["name"] for p in pkgs) for a, pkgs in checked_in["packages"].items()}
    assert all(s["inrelease_signature"].startswith("verified by gpgv") for s in fresh["sources"])

    # The build uses the checked-in lockfile (its .debs are the cached ones).
    shutil.copy("examples/cli/image.lock.json", example / "image.lock.json")
    ref = f"{registry.host}/cli/site:1.0"
    built = subprocess.run(
        [str(ocibuild), "build", "-f", str(example / "image.yaml"), "--push", ref,
         f"--insecure-registry={registry.host}", "--json", *common],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH": "0"})
    assert built.returncode == 0, built.stderr
    result = json.loads(built.stdout)
    assert [i["platform"] for i in result["images"]] == ["linux/amd64", "linux/arm64"]
    assert result["refs"] == [f"{ref}@{result['manifest_digest']}",
                              f"{registry.host}/cli/site:latest@{result['manifest_digest']}"]

    # Pulled back by skopeo for amd64, unpacked by umoci, its entrypoint serves the site.
    skopeo = require("skopeo")
    run([skopeo, "copy", "--quiet", "--override-arch=amd64", *registry.skopeo_src_flags(),
         f"docker://{ref}", f"oci:{tmp_path / 'pulled'}:site"])
    config = skopeo_inspect(tmp_path / "pulled", "site", config=True)["config"]
    assert config["Entrypoint"] == ["python3", "-m", "http.server", "--directory", "/site"]
    assert config["User"] == "site"
    rootfs = umoci_unpack(tmp_path / "pulled", "site", tmp_path / "bundle")
    assert "site:x:10001:10001:site:/home/site:/sbin/nologin" in \
        (rootfs / "etc/passwd").read_text().splitlines()
    port = _free_port()
    env = dict(e.split("=", 1) for e in config["Env"])
    server = start_in_rootfs(rootfs, [*config["Entrypoint"], str(port)], env,
                             cwd=config["WorkingDir"])
    try:
        page = None
        for _ in range(100):
            try:
                page = requests.get(f"http://127.0.0.1:{port}/index.html", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stdout.read().decode()
                time.sleep(0.1)
        assert page is not None and page.status_code == 200
        assert page.content == (example / "site/index.html").read_bytes()
    finally:
        stop(server)
