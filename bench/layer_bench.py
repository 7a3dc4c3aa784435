"""Benchmark `ocibuild layer`: wall time, peak memory and blob size per compression.

    python bench/layer_bench.py [--size-mb 200] [--compression gzip --compression zstd]

Generates SIZE MB of input in a temp dir (90% in 1-16 MiB files, 10% in 4-64 KiB files; half
of each random bytes, as in zipped artifacts such as PEXes, half text), then runs
`python -m ocibuild layer` on it once per compression in a fresh subprocess. Memory must not
grow with the layer's size: the layer is streamed, never held.

Not a test: it takes minutes at 1 GB. The input is generated from a fixed seed, so runs are
comparable across machines and commits.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent / "src" / "python"
MIB = 1 << 20
_WORDS = ("layer digest image manifest config blob tar gzip zstd stream hash pants build "
          "oci registry index platform sandbox entrypoint").split()


def _text_pool(rng: random.Random) -> bytes:
    lines = (" ".join(rng.choice(_WORDS) for _ in range(12)) for _ in range(60_000))
    return "\n".join(lines).encode()  # about 5 MiB of compressible text


def _content(rng: random.Random, pool: bytes, size: int, compressible: bool) -> bytes:
    if not compressible:
        return rng.getrandbits(size * 8).to_bytes(size, "little") if size else b""
    start = rng.randrange(0, max(1, len(pool) - size)) if size < len(pool) else 0
    return (pool[start:start + size] * (size // len(pool) + 1))[:size]


def generate(root: Path, size_mb: int) -> int:
    """Write the input tree; returns the total number of bytes written."""
    rng = random.Random(20240101)
    pool = _text_pool(rng)
    total, budget, index = 0, size_mb * MIB, 0
    small_budget = budget // 10
    while total < budget:
        small = total < small_budget
        size = rng.randint(4 << 10, 64 << 10) if small else rng.randint(1 * MIB, 16 * MIB)
        size = min(size, budget - total)
        path = root / ("small" if small else "big") / f"d{index % 37:02d}" / f"f{index:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_content(rng, pool, size, compressible=index % 2 == 0))
        total += size
        index += 1
    return total


def run_layer(work: Path, compression: str) -> dict:
    spec = work / f"spec-{compression}.json"
    spec.write_text(json.dumps({"mappings": [{"source": str(work / "in"), "dest": "app"}],
                                "compression": compression}))
    out, stdout_path = work / f"out-{compression}", work / f"stdout-{compression}.json"
    env = {**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}
    argv = [sys.executable, "-m", "ocibuild", "layer", "--spec", str(spec), "--out-dir", str(out)]
    start = time.monotonic()
    pid = os.posix_spawn(sys.executable, argv, env, file_actions=[
        (os.POSIX_SPAWN_OPEN, 1, str(stdout_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)])
    # wait4 gives this child's own peak RSS; RUSAGE_CHILDREN would report the maximum over
    # every child so far, mixing up the runs.
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"ocibuild layer ({compression}) failed: status {status}")
    layer = json.loads(stdout_path.read_text())
    shutil.rmtree(out)
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    rss_mib = usage.ru_maxrss / (MIB if sys.platform == "darwin" else 1024)
    return {"compression": compression, "wall_s": wall, "peak_rss_mib": rss_mib,
            "blob_bytes": layer["size"], "cpu_s": usage.ru_utime + usage.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--compression", action="append", choices=("gzip", "zstd", "none"))
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--generate-into", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_into:
        generate(Path(args.generate_into), args.size_mb)
        return
    from peers_bench import ensure_tool_python  # bench/ is this script's sys.path[0]

    ensure_tool_python()  # zstd layers need zstandard
    work = Path(tempfile.mkdtemp(prefix="ocibuild-bench-"))
    try:
        start = time.monotonic()
        # In a child: this process must stay small, because a child's ru_maxrss starts from
        # the RSS of the process that spawned it (Linux counts the pre-exec memory).
        subprocess.run([sys.executable, __file__, "--size-mb", str(args.size_mb),
                        "--generate-into", str(work / "in")], check=True)
        total = sum(f.stat().st_size for f in (work / "in").rglob("*") if f.is_file())
        files = sum(len(f) for _, _, f in os.walk(work / "in"))
        print(f"input: {total / MIB:.0f} MiB in {files} files "
              f"(generated in {time.monotonic() - start:.1f} s), python {sys.version.split()[0]}")
        print(f"{'compression':<12}{'wall s':>9}{'cpu s':>9}{'MiB/s':>9}{'peak RSS MiB':>14}"
              f"{'blob MiB':>11}{'ratio':>8}")
        for compression in args.compression or ["gzip", "zstd"]:
            r = run_layer(work, compression)
            print(f"{compression:<12}{r['wall_s']:>9.1f}{r['cpu_s']:>9.1f}"
                  f"{total / MIB / r['wall_s']:>9.1f}{r['peak_rss_mib']:>14.1f}"
                  f"{r['blob_bytes'] / MIB:>11.1f}{r['blob_bytes'] / total:>8.3f}", flush=True)
            rss_mb = r["peak_rss_mib"] * MIB / 1e6
            print(f"  target: peak memory of the layer process < 100 MB: {rss_mb:.1f} MB, "
                  f"{'met' if rss_mb < 100 else 'NOT MET'}", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
