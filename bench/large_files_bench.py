"""One file changed in a 470 MB `files` dependency: `pants package` against the layer process.

    python3 bench/large_files_bench.py [--total-mb 470] [--runs 3]

In a copy of this repository: 250 files of `--total-mb` MB in all (a third random bytes, the
rest text that compresses), a `files` target and an `oci_image` on scratch (SBOM and
provenance off). With pantsd warm and the image packaged once, each run rewrites one file and
times `pants package`; for reference, `ocibuild layer` over all the files (what one layer
costs) and `tar | pigz -4`. A dependency this large is split into layers by a hash of each path
(pants_oci.util_rules.layer_content.file_parts), so a change rebuilds one part. Prints a table
for docs/performance.md. Not a test: timing needs a quiet machine.
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
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.peers_bench import ensure_tool_python  # noqa: E402
from tests.e2e.repo import copy_repo, stop_pantsd  # noqa: E402

BUILD = """
files(name="data", sources=["data/*"])
oci_image(name="image", base="scratch", dependencies=[":data"], sbom=False, provenance=False)
"""
WORDS = b"the quick brown fox jumps over the lazy dog while pants builds images "


def _files(directory: Path, total_mb: int, count: int = 250) -> None:
    directory.mkdir(parents=True)
    size = total_mb * 1_000_000 // count
    for i in range(count):
        data = os.urandom(size) if i % 3 == 0 else (WORDS * (size // len(WORDS) + 1))[:size]
        (directory / f"{i:03}.bin").write_bytes(data)


def _timed(argv: list, **kwargs) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   **kwargs)
    return time.monotonic() - start


def main() -> None:
    ensure_tool_python()
    parser = argparse.ArgumentParser()
    parser.add_argument("--total-mb", type=int, default=470)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="large-files-bench-"))
    repo = copy_repo(work / "repo", REPO)
    bench = repo / "bench-files"
    (bench).mkdir()
    (bench / "BUILD").write_text(BUILD)
    _files(bench / "data", args.total_mb)
    pants = ["./pants", "--no-dynamic-ui", "package", "bench-files:image"]
    try:
        _timed(pants, cwd=repo)  # warm: pantsd, the files in the store, every part built
        package = []
        for i in range(args.runs):
            changed = bench / "data" / f"{(37 * i + 1) % 250:03}.bin"
            data = bytearray(changed.read_bytes())
            data[:32] = uuid.uuid4().hex.encode()
            changed.write_bytes(bytes(data))
            package.append(_timed(pants, cwd=repo))
        meta = json.loads((repo / "dist/bench-files/image.json").read_text())
        spec = work / "spec.json"
        spec.write_text(json.dumps({"mappings": [{"source": str(bench / "data"),
                                                  "dest": "bench-files/data"}]}))
        env = {**os.environ, "PYTHONPATH": str(REPO / "src/python")}
        layer = statistics.median(
            _timed([sys.executable, "-m", "ocibuild", "layer", "--spec", str(spec),
                    "--out-dir", str(work / f"layer-{i}")], env=env) for i in range(args.runs))
        pigz = statistics.median(
            _timed(["bash", "-c", f"tar -C {bench} -cf - data | pigz -4 > {work}/p.tgz"])
            for _ in range(args.runs))
        print(f"| {args.total_mb} MB, 250 files, one changed | median s |")
        print("| --- | ---: |")
        print(f"| `pants package`, pantsd warm ({len(meta['layers'])} layers) | "
              f"{statistics.median(package):.2f} |")
        print(f"| `ocibuild layer` of all the files (one layer) | {layer:.2f} |")
        print(f"| `tar \\| pigz -4` of all the files | {pigz:.2f} |")
        ratio = statistics.median(package) / layer
        print(f"\ntarget: package within 1.3x of the one-layer process: {ratio:.2f}x, "
              f"{'met' if ratio <= 1.3 else 'not met'}")
    finally:
        stop_pantsd(repo)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
