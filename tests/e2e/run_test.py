"""`./pants run path/to:image -- ARGS` runs the image with podman, passing the arguments;
`./pants oci-load` leaves it there under its name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.e2e.repo import copy_repo, run_pants
from tests.fixtures.tools import require


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


def test_without_podman_or_docker_the_error_says_what_to_install(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    bin_dir = tmp_path / "bin"  # the system's commands, but for podman and docker
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for tool in Path(directory).iterdir() if Path(directory).is_dir() else ():
            if tool.name not in ("podman", "docker") and not (bin_dir / tool.name).exists():
                os.symlink(tool, bin_dir / tool.name)
    result = run_pants(repo, "run", "examples/static-site:image", check=False,
                       extra_env={"PATH": str(bin_dir)})
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
