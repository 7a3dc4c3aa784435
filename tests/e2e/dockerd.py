"""A docker.io daemon of the tests' own, for the e2e tests that compare with `docker build` or
run images in docker: vfs storage, no iptables, no bridge (containers run with `--network
host` or none), its own socket, data and exec roots in a temp dir, as root. Its client uses
the classic builder (DOCKER_BUILDKIT=0: BuildKit/buildx are not installed here).

Shared by the test modules that need a daemon (`from tests.e2e.dockerd import docker`, the
module-scoped fixture); a module is skipped, with the reason, only when dockerd cannot start.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.fixtures.tools import SYSTEM_PATH, require, run, stop, tool_env

_START_TIMEOUT_S = 60


class Docker:
    """`docker ARGS` against one daemon; raises (with stdout and stderr) on a non-zero exit
    unless `check=False` (then the CompletedProcess is returned as is)."""

    def __init__(self, sock: Path) -> None:
        self.sock = sock
        self.env = {**tool_env(), "DOCKER_HOST": f"unix://{sock}", "DOCKER_BUILDKIT": "0",
                    "DOCKER_CONFIG": str(sock.parent / "cli")}

    def __call__(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        if not check:
            kwargs.setdefault("text", True)
            return subprocess.run([require("docker"), *args], env=self.env,
                                  capture_output=True, **kwargs)
        return run([require("docker"), *args], env=self.env, **kwargs)


def _dockerd() -> str:
    found = next((p for p in (f"{d}/dockerd" for d in SYSTEM_PATH.split(":"))
                  if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.skip("dockerd is not installed (tests/install-test-tools installs docker.io)")
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root here")
    return found


@contextlib.contextmanager
def start_dockerd(root: Path) -> Iterator[Docker]:
    """A daemon with its state under `root`, stopped (SIGTERM, then SIGKILL) on exit."""
    sock = root / "docker.sock"
    log = root / "dockerd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [_dockerd(), "--storage-driver=vfs", "--iptables=false", "--bridge=none",
             f"--data-root={root / 'data'}", f"--exec-root={root / 'exec'}",
             f"--pidfile={root / 'dockerd.pid'}", f"-H=unix://{sock}"],
            stdout=out, stderr=subprocess.STDOUT, env=tool_env())
    client = Docker(sock)
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.skip(f"dockerd cannot start here:\n{log.read_text()[-2000:]}")
            if sock.exists() and client("version", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.skip(f"dockerd did not answer within {_START_TIMEOUT_S} s:\n"
                            f"{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield client
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def docker(tmp_path_factory) -> Iterator[Docker]:
    with start_dockerd(tmp_path_factory.mktemp("dockerd")) as client:
        yield client
