"""The core as a wheel: `./pants package src/python:ocibuild`, pip-installed into a fresh venv,
gives an `ocibuild` command that builds a layer outside Pants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import deflate
import requests
import urllib3
import zstandard

from tests.e2e.repo import copy_repo, run_pants


def test_the_wheel_installs_an_ocibuild_command(tmp_path: Path) -> None:
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
    dirs = {str(Path(m.__file__).resolve().parents[1]) for m in (deflate, requests, urllib3,
                                                                  zstandard)}
    Path(site, "ocibuild-test-deps.pth").write_text("\n".join(sorted(dirs)) + "\n")
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--no-index", "--no-deps",
                    "--quiet", str(wheel)], check=True)

    ocibuild = venv / "bin/ocibuild"
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
