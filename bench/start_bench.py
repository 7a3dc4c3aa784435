"""Container start of the Python example: the packed PEX image against the oci_python_app one.

    python3 bench/start_bench.py [--runs 5]

Packages examples/python-cli:image and :image-files (./pants, this checkout), unpacks each
with `umoci unpack` and runs its entrypoint from the rootfs (`unshare --root` as root, else
`proot`), as a container runtime would, minus the runtime's own overhead. "First run" is a
fresh unpack each time with PYTHONDONTWRITEBYTECODE=1 (what a read-only root filesystem
gives: nothing can be cached in the image); "warm" reruns one rootfs where Python and PEX may
write their caches. Prints a table for docs/performance.md. Not a test: timing needs a quiet
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.repo import debian_mirror_env  # noqa: E402

IMAGES = {"pex_binary (packed PEX)": "examples.python-cli/image",
          "oci_python_app (site-packages + .pyc)": "examples.python-cli/image-files"}


def _run(rootfs: Path, config: dict, extra_env: dict) -> float:
    env = dict(e.split("=", 1) for e in config.get("Env", []))
    env.update(extra_env)
    argv = [*config["Entrypoint"], "--count", "1", "bench"]
    command = ([shutil.which("unshare"), f"--root={rootfs}", "--wd=/", *argv]
               if os.geteuid() == 0 else [shutil.which("proot"), "-r", str(rootfs), "-0", *argv])
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0 or "hello bench" not in done.stdout:
        raise SystemExit(f"{argv} failed: {done.stdout}{done.stderr}")
    return took


def _unpack(layout: Path, into: Path) -> Path:
    subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:latest", str(into)],
                   check=True, capture_output=True)
    return into / "rootfs"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    try:
        env = {**os.environ, **debian_mirror_env(REPO)}
    except AssertionError:
        env = dict(os.environ)
    built = subprocess.run(["./pants", "--no-dynamic-ui", "package", "examples/python-cli:image",
                            "examples/python-cli:image-files"], cwd=REPO, env=env,
                           capture_output=True, text=True)
    if built.returncode != 0:
        raise SystemExit(f"./pants package failed:\n{built.stderr[-3000:]}")
    print("| image | first run, read-only (median s) | warm (median s) |")
    print("| --- | ---: | ---: |")
    firsts = {}
    with tempfile.TemporaryDirectory(prefix="start-bench-") as work:
        for label, dist in IMAGES.items():
            layout = REPO / "dist" / dist
            config = json.loads(subprocess.run(
                ["skopeo", "inspect", "--config", f"oci:{layout}:latest"], check=True,
                capture_output=True, text=True).stdout)["config"]
            first = []
            for i in range(args.runs):
                rootfs = _unpack(layout, Path(work, f"{dist.replace('/', '-')}-{i}"))
                first.append(_run(rootfs, config, {"PYTHONDONTWRITEBYTECODE": "1",
                                                   "PEX_ROOT": "/tmp/pex"}))
            warm = [_run(rootfs, config, {}) for _ in range(args.runs)]
            print(f"| {label} | {statistics.median(first):.3f} | {statistics.median(warm):.3f} |",
                  flush=True)
            firsts[label] = statistics.median(first)
    print()
    for label, seconds in firsts.items():
        print(f"target: first run on a read-only root under 0.3 s: {label}: {seconds:.3f} s, "
              f"{'met' if seconds < 0.3 else 'not met'}")


if __name__ == "__main__":
    main()
