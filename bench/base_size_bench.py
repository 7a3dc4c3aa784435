"""A one-line change on a 5 MB base against the same on a 500 MB base (issue 14's target: at
most 1.2x).

    python3 bench/base_size_bench.py [--big-mb 500] [--runs 3]

In a copy of this repository: two bases as `oci_layout` targets (made by `ocibuild build` from
random, incompressible files: 5 MB and `--big-mb` MB, ten layers each), an `oci_image` on each
with one small `files` dependency, and the CNCF registry on 127.0.0.1. With pantsd warm and both
images published once, each run edits the file and times `pants package` and `pants publish`
of each image. Prints a table for docs/performance.md. Not a test: timing needs a quiet
machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.peers_bench import ensure_tool_python  # noqa: E402
from bench.publish_bench import pants  # noqa: E402
from tests.e2e.repo import copy_repo, stop_pantsd  # noqa: E402
from tests.fixtures.registry import start_registry  # noqa: E402

BUILD = """
oci_layout(name="small-base", layout="small-base")
oci_layout(name="big-base", layout="big-base")
files(name="page", sources=["page.txt"])
oci_image(name="on-small", base=":small-base", dependencies=[":page"], sbom=False,
          provenance=False)
oci_image(name="on-big", base=":big-base", dependencies=[":page"], sbom=False,
          provenance=False)
"""


def _base(directory: Path, megabytes: int, work: Path) -> None:
    """An OCI layout of ten layers of random bytes, `megabytes` in all."""
    src = work / f"src-{directory.name}"
    flags = []
    for i in range(10):
        (src / str(i)).mkdir(parents=True)
        with open(src / str(i) / "data.bin", "wb") as f:
            for _ in range(megabytes * 1024 // 10 // 64):
                f.write(os.urandom(64 * 1024))
        flags += ["--layer", f"{src / str(i)}:/data/{i}"]
    subprocess.run([sys.executable, "-m", "ocibuild", "build", "--base", "scratch", *flags,
                    "--output", str(directory), "--quiet"], check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO / "src/python")},
                   stdout=subprocess.DEVNULL)
    shutil.rmtree(src)


def _pants(repo: Path, *args: str) -> float:
    return pants(repo, *args, env=dict(os.environ))


def main() -> None:
    ensure_tool_python()  # the bases are made with ocibuild, which needs the core's packages
    parser = argparse.ArgumentParser()
    parser.add_argument("--big-mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="base-size-bench-"))
    repo = copy_repo(work / "repo", REPO)
    bench = repo / "bench-images"
    bench.mkdir()
    (bench / "BUILD").write_text(BUILD)
    (bench / "page.txt").write_text("hello\n")
    _base(bench / "small-base", 5, work)
    _base(bench / "big-base", args.big_mb, work)
    try:
        with start_registry(work / "registry") as registry:
            option = (f"--oci-registries={ {'bench': {'address': registry.host, 'insecure': True, 'default': True}} !r}")
            targets = {"5 MB base": "bench-images:on-small",
                       f"{args.big_mb} MB base": "bench-images:on-big"}
            for target in targets.values():  # warm: pantsd, bases in the store, first push
                _pants(repo, option, "publish", target)
            times = {label: {"package": [], "publish": []} for label in targets}
            for _ in range(args.runs):
                for label, target in targets.items():
                    (bench / "page.txt").write_text(f"hello {uuid.uuid4().hex}\n")
                    times[label]["package"].append(_pants(repo, option, "package", target))
                    (bench / "page.txt").write_text(f"hello {uuid.uuid4().hex}\n")
                    times[label]["publish"].append(_pants(repo, option, "publish", target))
            print("| one-line change, pantsd warm | package (median s) | publish (median s) |")
            print("| --- | ---: | ---: |")
            for label, found in times.items():
                print(f"| {label} | {statistics.median(found['package']):.2f} | "
                      f"{statistics.median(found['publish']):.2f} |")
            print()
            for step in ("package", "publish"):
                small, big = (statistics.median(times[label][step]) for label in targets)
                print(f"target: {step} on the big base at most 1.2x the small base's: "
                      f"{big / small:.2f}x, {'met' if big / small <= 1.2 else 'not met'}")
    finally:
        stop_pantsd(repo)  # this copy's
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
