"""Package and publish the Python example as CI does, cold and warm, and after a one-line change.

    python3 bench/publish_bench.py

Copies this repository to a temp dir (so pantsd starts cold; Pants' caches under ~/.cache
stay as they are: run it twice to see fully warm caches), starts the CNCF registry on
127.0.0.1 behind a counting proxy, and runs ./pants with pantsd:

1. package examples/python-cli:image with empty Pants caches (a new local store and named
   caches, no pantsd: every tool, Debian package and layer from scratch), then with a cold
   pantsd and the usual caches, then publish it (first push);
2. package again and `package ::` with nothing changed (pantsd warm);
3. a one-line change to the app's source, then publish: time and bytes uploaded; the same for
   examples/python-cli:image-files (the app as an oci_python_app: no PEX to rebuild), and for
   that image with `sbom=False` (a target added to the copy's BUILD file), to show what the
   two SBOMs, which name the new image and so change with it, add to the upload.

Prints a table for docs/performance.md. Not a test: timing needs a quiet machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src/python"))

from tests.e2e.repo import copy_repo, debian_mirror_env, stop_pantsd  # noqa: E402
from tests.fixtures.fault_proxy import FaultProxy  # noqa: E402
from tests.fixtures.registry import start_registry  # noqa: E402

IMAGE = "examples/python-cli:image"
FILES_IMAGE = "examples/python-cli:image-files"
NO_SBOM_IMAGE = "examples/python-cli:image-files-no-sbom"
NO_SBOM_TARGET = """
oci_image(
    name="image-files-no-sbom",
    base="//examples/python-base:python-base",
    dependencies=[":app-files"],
    entrypoint=["/usr/bin/python3", "-m", "greet.cli"],
    user="nonroot",
    env={"PYTHONPATH": "/app/src:/app/site-packages"},
    sbom=False,
)
"""


def pants(repo: Path, *args: str, env: dict) -> float:
    start = time.monotonic()
    subprocess.run(["./pants", "--no-dynamic-ui", *args], cwd=repo, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="publish-bench-"))
    repo = copy_repo(work / "repo", REPO)
    with open(repo / "examples/python-cli/BUILD", "a") as build_file:
        build_file.write(NO_SBOM_TARGET)
    # The examples' Debian packages come from the test cache on loopback when it is filled
    # (tests/fetch-example-debs); otherwise from the mirror in the BUILD file.
    try:
        mirror_env = debian_mirror_env(REPO)
    except AssertionError:
        mirror_env = {}
    try:
        with start_registry(work / "registry") as registry, FaultProxy(registry.host) as proxy:
            option = (f"--oci-registries={ {'bench': {'address': proxy.host, 'insecure': True, 'default': True}} !r}")
            env = {**os.environ, **mirror_env}

            def step(label: str, *args: str) -> Tuple[float, int]:
                before = proxy.bytes_received
                seconds = pants(repo, option, *args, env=env)
                uploaded = proxy.bytes_received - before
                print(f"| {label} | {seconds:.1f} | {uploaded / 1e6:.3f} |", flush=True)
                return seconds, uploaded

            print("| step (pantsd) | wall s | MB uploaded |")
            print("| --- | ---: | ---: |")
            empty = work / "empty-caches"
            step("package python-cli, empty Pants caches (no pantsd)", "--no-pantsd",
                 f"--local-store-dir={empty / 'lmdb_store'}",
                 f"--named-caches-dir={empty / 'named_caches'}", "package", IMAGE)
            step("package python-cli, cold pantsd (warm Pants caches)", "package", IMAGE)
            step("publish python-cli, first push", "publish", IMAGE)
            step("package python-cli, nothing changed", "package", IMAGE)
            step("package :: (first time in this pantsd)", "package", "::")
            step("package ::, nothing changed", "package", "::")
            step("publish again, nothing changed", "publish", IMAGE)
            step("publish python-cli image-files (oci_python_app), first push", "publish",
                 FILES_IMAGE)
            step("publish python-cli image-files-no-sbom, first push", "publish", NO_SBOM_IMAGE)
            changes = []
            for image, kind in ((IMAGE, "pex_binary"), (FILES_IMAGE, "oci_python_app"),
                                (NO_SBOM_IMAGE, "oci_python_app, sbom=False")):
                with open(repo / "examples/python-cli/greet/cli.py", "a") as f:
                    # Unique per run: a change Pants' caches have never seen.
                    f.write(f"# a one-line change {uuid.uuid4().hex}\n")
                changes.append((kind, *step(
                    f"one-line change: publish (package + push), {kind}", "publish", image)))
        print()
        for kind, seconds, uploaded in changes:
            print(f"target: one-line change, package + publish under 2.0 s, under 50 KB "
                  f"uploaded: {kind}: {seconds:.1f} s ({'met' if seconds < 2 else 'not met'}), "
                  f"{uploaded / 1e3:.0f} KB ({'met' if uploaded < 50e3 else 'not met'})")
    finally:
        stop_pantsd(repo)  # this copy's
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
