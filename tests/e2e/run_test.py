"""`./pants run path/to:image -- ARGS` runs the image with podman, passing the arguments;
`./pants oci-load` leaves it there under its name. Without podman on the PATH, both go through
docker: its CLI talks to a real Docker API, podman's (`podman system service`), as it would to
a Docker engine."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest

from tests.e2e.repo import copy_repo, run_pants
from tests.fixtures.tools import require, run, stop, tool_env


def _podman_config(state: Path, short: Path) -> dict[str, str]:
    """podman as it works on the test hosts (vfs storage, cgroupfs, runc, no network), set by
    the config files podman reads from the environment: `pants run` passes its environment on,
    as a user's own podman configuration would be."""
    (state / "containers.conf").write_text(
        '[containers]\nnetns = "none"\n'
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n'
        f'tmp_dir = "{short}/tmp"\n')
    (state / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{state}/root"\nrunroot = "{short}/run"\n')
    return {"CONTAINERS_CONF": str(state / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(state / "storage.conf")}


def test_pants_run_runs_the_image_with_its_arguments(tmp_path: Path) -> None:
    require("podman")
    repo = copy_repo(tmp_path / "repo")
    # Podman refuses a runroot longer than 50 characters: the short-lived state goes to /tmp.
    short = Path(tempfile.mkdtemp(prefix="podman-", dir="/tmp"))
    try:
        env = _podman_config(tmp_path, short)
        result = run_pants(repo, "run", "examples/python-cli:image", "--", "--count", "2", "you",
                           extra_env={**env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        assert result.stdout.splitlines()[-2:] == [
            "greeting 1 of 2: hello you (click 8.1.7)",
            "greeting 2 of 2: hello you (click 8.1.7)",
        ], result.stderr
    finally:
        shutil.rmtree(short, ignore_errors=True)


def _path_without(bin_dir: Path, *missing: str) -> str:
    """A PATH of one directory holding the system's commands, but for those named `missing`."""
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for tool in Path(directory).iterdir() if Path(directory).is_dir() else ():
            if tool.name not in missing and not (bin_dir / tool.name).exists():
                os.symlink(tool, bin_dir / tool.name)
    return str(bin_dir)


def test_without_podman_or_docker_the_error_says_what_to_install(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    result = run_pants(repo, "run", "examples/static-site:image", check=False,
                       extra_env={"PATH": _path_without(tmp_path / "bin", "podman", "docker")})
    assert result.returncode != 0
    assert "neither is on the PATH. Install podman" in result.stderr, result.stderr


def test_oci_load_leaves_the_image_in_podman_under_its_name(tmp_path: Path) -> None:
    require("podman")
    repo = copy_repo(tmp_path / "repo", pantsd=True)  # two runs share its pantsd
    short = Path(tempfile.mkdtemp(prefix="podman-", dir="/tmp"))
    try:
        env = {**_podman_config(tmp_path, short), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        result = run_pants(repo, "oci-load", "examples/static-site:image", extra_env=env)
        assert "Loaded examples/static-site/image:latest into podman" in result.stdout, \
            result.stderr
        run_pants(repo, "package", "examples/static-site:image")
        meta = json.loads((repo / "dist/examples.static-site/image.json").read_text())
        listed = subprocess.run(
            [require("podman"), "image", "inspect", "--format", "{{.Digest}}",
             "localhost/examples/static-site/image:latest"],
            env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout
        assert listed.strip() == meta["manifest_digest"]  # the very image package built
    finally:
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def docker_user(tmp_path: Path) -> Iterator[Dict[str, str]]:
    """The environment of a user who has docker and no podman, their docker CLI talking to a
    Docker API: podman's, served on a unix socket (DOCKER_HOST) for the test's duration.

    docker CLI 28 speaks API 1.50 and podman 4.3 serves 1.41: the CLI asks the server's
    version and downgrades by itself (`docker version`: "API version: 1.41 (downgraded from
    1.50)"), so DOCKER_API_VERSION need not be set."""
    podman = require("podman")
    require("docker")
    short = Path(tempfile.mkdtemp(prefix="podman-", dir="/tmp"))  # runroot and socket
    state = tmp_path / "podman"
    state.mkdir()
    sock = short / "docker.sock"
    log = state / "service.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [podman, "system", "service", "--time=0", f"unix://{sock}"],
            stdout=out, stderr=subprocess.STDOUT,
            env={**tool_env(), **_podman_config(state, short)})
    try:
        _wait_for_socket(proc, sock, log)
        yield {"PATH": _path_without(tmp_path / "bin", "podman"),
               "DOCKER_HOST": f"unix://{sock}",
               "DOCKER_CONFIG": str(tmp_path / "docker-config")}  # not the machine's ~/.docker
    finally:
        stop(proc)
        shutil.rmtree(short, ignore_errors=True)


def _wait_for_socket(proc: subprocess.Popen, sock: Path, log: Path) -> None:
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX) as client:
            if client.connect_ex(str(sock)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"podman system service did not listen on {sock}:\n{log.read_text()}")


def _docker(env: Dict[str, str], *args: str) -> str:
    return run([require("docker"), *args], env={**tool_env(), **env}).stdout


def test_pants_run_through_docker_runs_the_image_with_its_arguments(
        tmp_path: Path, docker_user: Dict[str, str]) -> None:
    repo = copy_repo(tmp_path / "repo")
    result = run_pants(repo, "run", "examples/python-cli:image", "--", "--count", "2", "you",
                       extra_env=docker_user)
    assert result.stdout.splitlines()[-2:] == [
        "greeting 1 of 2: hello you (click 8.1.7)",
        "greeting 2 of 2: hello you (click 8.1.7)",
    ], result.stderr
    # The image went through that Docker API, stays there under its name (as oci-load leaves
    # it), and the container is gone (`--rm`).
    assert _docker(docker_user, "image", "inspect", "--format", "{{.Id}}",
                   "examples/python-cli/image:latest").startswith("sha256:")
    assert _docker(docker_user, "ps", "--all", "--quiet").strip() == ""


def test_oci_load_through_docker_leaves_the_image_under_its_name(
        tmp_path: Path, docker_user: Dict[str, str]) -> None:
    repo = copy_repo(tmp_path / "repo", pantsd=True)  # two runs share its pantsd
    result = run_pants(repo, "oci-load", "examples/static-site:image", extra_env=docker_user)
    assert "Loaded examples/static-site/image:latest into docker" in result.stdout, \
        result.stderr
    run_pants(repo, "package", "examples/static-site:image", extra_env=docker_user)
    meta = json.loads((repo / "dist/examples.static-site/image.json").read_text())
    [image] = json.loads(_docker(docker_user, "image", "inspect",
                                 "examples/static-site/image:latest"))
    # A Docker image's ID is its config's digest: the very image package built. (podman's API
    # names it docker.io/..., as Docker's normalized name; a Docker engine shows it short.)
    assert image["Id"] == meta["config_digest"], image
    assert "docker.io/examples/static-site/image:latest" in image["RepoTags"] \
        or "examples/static-site/image:latest" in image["RepoTags"], image["RepoTags"]
