"""One layer, built by pants-oci's core and by its peers, side by side: time, size, memory.

    python3 bench/peers_bench.py                      # ~210 MB of real site-packages
    python3 bench/peers_bench.py --synthetic-mb 1024  # the generated input of layer_bench.py

The site-packages input is numpy, pandas, botocore and Babel installed with pip from PyPI
into ~/.cache/pants-oci-bench (once; pinned versions, so every run compresses the same
files). Each tool turns the directory into one layer blob:

* ocibuild: `python -m ocibuild layer` (tar, diff_id, compression, digest in one pass);
* `tar -cf - . | pigz -N` and `tar -cf - . | zstd -3 -T0` (no digests: a lower bound);
* the same work as ocibuild's in C tools: `tar --sort=name` (reproducible) through zstd, with
  both SHA-256 digests by `openssl dgst` beside it (`SAME_WORK`);
* `umoci insert` into an empty image (umoci's own tar + gzip);
* buildah: `from scratch`, `copy`, `commit` to an OCI layout (vfs storage).

Missing peers are installed with apt-get when run as root (else reported and skipped). Each
tool runs five times (`--runs`), alternating with its peer so drift hits both alike; the table
shows the median run. Not a test: timing needs a quiet machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

HERE = Path(__file__).resolve().parent
SOURCE_ROOT = HERE.parent / "src" / "python"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pants-oci-bench"
SITE_PACKAGES = ("numpy==1.26.4", "pandas==2.2.2", "botocore==1.34.131", "Babel==2.15.0")
MB = 1_000_000


BENCH_EXTRAS = ("pytest",)  # the Debian budget bench starts the tests' registry fixture


def ensure_tool_python() -> None:
    """Re-run under a venv with the core's requirements (zstandard, deflate) and pytest if this
    Python lacks them. The venv is named by what it holds: a new pin gets a new venv."""
    try:
        import deflate  # noqa: F401
        import isal  # noqa: F401
        import pytest  # noqa: F401
        import zstandard  # noqa: F401
        return
    except ImportError as err:
        if os.environ.get("PANTS_OCI_BENCH_VENV"):  # already re-run there: never loop
            raise SystemExit(f"the bench venv {os.environ['PANTS_OCI_BENCH_VENV']} lacks "
                             f"{err.name}; delete it and run again") from None
    requirements = HERE.parent / "3rdparty/python/ocibuild-requirements.txt"
    key = hashlib.sha256(requirements.read_bytes() + repr(BENCH_EXTRAS).encode()).hexdigest()
    venv = CACHE / f"venv-{key[:12]}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements),
                        *BENCH_EXTRAS], check=True)
        (venv / ".complete").touch()
    os.environ["PANTS_OCI_BENCH_VENV"] = str(venv)
    os.execv(str(python), [str(python), *sys.argv])


PEERS = {"pigz": "pigz", "zstd": "zstd", "umoci": "umoci", "buildah": "buildah"}  # binary: package


def ensure_peers() -> None:
    """Install missing peers from the Debian archive when we are root; else say how."""
    missing = [package for binary, package in PEERS.items() if shutil.which(binary) is None]
    if not missing or shutil.which("apt-get") is None:
        return
    if os.geteuid() != 0:
        print(f"peers missing (skipped below); install them with: sudo apt-get install -y "
              f"{' '.join(missing)}", flush=True)
        return
    print(f"installing peers: {' '.join(missing)} ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def site_packages() -> Path:
    target = CACHE / "site-packages"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        python = shutil.which("python3.11") or sys.executable
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                        str(target), *SITE_PACKAGES], check=True)
        (target / ".complete").write_text("")
    return target


def synthetic(size_mb: int) -> Path:
    target = CACHE / f"synthetic-{size_mb}"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([sys.executable, str(HERE / "layer_bench.py"), "--size-mb", str(size_mb),
                        "--generate-into", str(target)], check=True)
        (target / ".complete").write_text("")
    return target


def measure(argv: List[str], env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None,
            stdout: Optional[Path] = None) -> dict:
    """Wall and CPU time and peak RSS of one child (and its children, via a shell)."""
    start = time.monotonic()
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if stdout:
            out.close()
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.read().decode()[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "rss_mb": usage.ru_maxrss * 1024 / MB}


def ocibuild(src: Path, work: Path, compression: str, level: Optional[int],
             engine: Optional[str] = None) -> dict:
    spec = work / "spec.json"
    spec.write_text(json.dumps({"mappings": [{"source": str(src), "dest": "site-packages"}],
                                "compression": compression, "level": level,
                                "gzip_engine": engine}))
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}
    result = measure([sys.executable, "-m", "ocibuild", "layer", "--spec", str(spec),
                      "--out-dir", str(out)], env=env)
    result["bytes"] = json.loads((out / "layer.json").read_text())["size"]
    return result


def pipeline(src: Path, work: Path, command: str) -> dict:
    blob = work / "blob"
    result = measure(["sh", "-c", f"tar -C '{src}' -cf - . | {command} > '{blob}'"])
    result["bytes"] = blob.stat().st_size
    return result


# What a layer needs besides the compressed bytes, done by C tools: a reproducible tar (sorted,
# no clock, no owner names) and the two SHA-256 digests (diff_id of the tar, digest of the
# blob), by OpenSSL (SHA-NI, as Python's hashlib), beside the pipeline through `tee`.
SAME_WORK = ("tar -C '{src}' --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - . "
             "| tee >(openssl dgst -sha256 > '{work}/diff_id') | {command} "
             "| tee >(openssl dgst -sha256 > '{work}/digest') > '{blob}'; wait")


def same_work_pipeline(src: Path, work: Path, command: str) -> dict:
    blob = work / "blob"
    result = measure(["bash", "-c", SAME_WORK.format(src=src, work=work, command=command,
                                                     blob=blob)])
    result["bytes"] = blob.stat().st_size
    return result


def umoci(src: Path, work: Path) -> dict:
    layout = work / "umoci"
    shutil.rmtree(layout, ignore_errors=True)
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:t"], check=True)
    result = measure(["umoci", "insert", "--rootless", "--image", f"{layout}:t", str(src),
                      "/site-packages"])
    result["bytes"] = max(p.stat().st_size for p in (layout / "blobs/sha256").iterdir())
    return result


def buildah(src: Path, work: Path) -> dict:
    root, layout = work / "buildah-root", work / "buildah-oci"
    flags = ["--root", str(root), "--runroot", str(work / "buildah-run"), "--storage-driver", "vfs"]
    script = (f"set -e; c=$(buildah {' '.join(flags)} from scratch); "
              f"buildah {' '.join(flags)} copy $c '{src}' /site-packages >/dev/null; "
              f"buildah {' '.join(flags)} commit --quiet $c oci:{layout}:t >/dev/null")
    result = measure(["sh", "-c", script])
    result["bytes"] = max(p.stat().st_size for p in (layout / "blobs/sha256").iterdir())
    subprocess.run(["sh", "-c", f"buildah {' '.join(flags)} rm --all >/dev/null; "
                    f"rm -rf '{root}' '{layout}'"], check=False)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic-mb", type=int, help="use generated input of this size")
    parser.add_argument("--levels", default="4,6",
                        help="gzip levels to compare (4: the default; 6: the best offered)")
    parser.add_argument("--runs", type=int, default=5,
                        help="runs of each tool, alternating with its peer; the table shows the median")
    args = parser.parse_args()
    ensure_tool_python()
    ensure_peers()
    src = synthetic(args.synthetic_mb) if args.synthetic_mb else site_packages()
    files = [p for p in src.rglob("*") if p.is_file() and p.name != ".complete"]
    total = sum(p.stat().st_size for p in files)
    print(f"input: {src} — {total / MB:.1f} MB in {len(files)} files; {os.cpu_count()} cores; "
          f"python {sys.version.split()[0]}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="peers-bench-"))
    rows = []

    def median(results: List[dict]) -> dict:
        return sorted(results, key=lambda r: r["wall_s"])[len(results) // 2]

    def side_by_side(peer: Optional[Callable[[], dict]], ours: Callable[[], dict]):
        """Median of `--runs` runs each, alternating, so that drift hits both alike."""
        peer_runs: List[dict] = []
        our_runs: List[dict] = []
        for _ in range(args.runs):
            if peer:
                peer_runs.append(peer())
            our_runs.append(ours())
        return (median(peer_runs) if peer else None), median(our_runs)

    def row(tool: str, result: dict, peer: Optional[dict] = None) -> None:
        ratio = f"{result['wall_s'] / peer['wall_s']:.2f}x" if peer else ""
        rows.append((tool, result, ratio))
        print(f"| {tool} | {result['wall_s']:.2f} | {result['cpu_s']:.2f} | "
              f"{result['rss_mb']:.0f} | {result['bytes'] / MB:.1f} | {ratio} |", flush=True)

    results: Dict[str, Optional[dict]] = {}

    def pair(peer_name: str, peer: Optional[Callable[[], dict]], name: str,
             ours: Callable[[], dict]) -> None:
        peer_result, our_result = side_by_side(peer, ours)
        if peer_result:
            row(peer_name, peer_result)
        row(name, our_result, peer_result)
        results[peer_name], results[name] = peer_result, our_result

    print("| tool | wall s | cpu s | peak RSS MB | blob MB | time vs peer |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    try:
        have = {name: shutil.which(name) is not None for name in PEERS}
        for level in (int(n) for n in args.levels.split(",")):
            pair(f"tar \\| pigz -{level}",
                 (lambda: pipeline(src, work, f"pigz -{level}")) if have["pigz"] else None,
                 f"ocibuild gzip -{level}" + (" (default)" if level == 4 else ""),
                 lambda: ocibuild(src, work, "gzip", level))
        if have["pigz"]:
            pair("tar \\| pigz -4 (again)", lambda: pipeline(src, work, "pigz -4"),
                 "ocibuild gzip-zlib -4 (system zlib)",
                 lambda: ocibuild(src, work, "gzip", 4, engine="zlib"))
        pair("tar \\| zstd -3 -T0",
             (lambda: pipeline(src, work, "zstd -3 -T0 -q")) if have["zstd"] else None,
             "ocibuild zstd -3", lambda: ocibuild(src, work, "zstd", 3))
        if have["zstd"] and shutil.which("openssl"):
            pair("sorted tar \\| zstd -3 -T0, both SHA-256 (openssl)",
                 lambda: same_work_pipeline(src, work, "zstd -3 -T0 -q"),
                 "ocibuild zstd -3 (again)", lambda: ocibuild(src, work, "zstd", 3))
        if have["umoci"]:
            pair("umoci insert", lambda: umoci(src, work),
                 "ocibuild gzip (default) vs umoci", lambda: ocibuild(src, work, "gzip", None))
        if have["buildah"]:
            row("buildah from scratch + copy + commit (oci:, uncompressed)",
                side_by_side(None, lambda: buildah(src, work))[1])
        missing = [name for name, ok in have.items() if not ok]
        if missing:
            print(f"not installed, skipped: {', '.join(missing)}")
        print_targets(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_targets(results: Dict[str, Optional[dict]]) -> None:
    """The performance issue's targets, each with its measured value (medians above)."""
    print("\n| target | measured | status |\n| --- | --- | --- |")

    def target(text: str, ours: str, peer: str, key: str, limit: float) -> None:
        a, b = results.get(ours), results.get(peer)
        if not a or not b:
            print(f"| {text} | not measured ({ours if not a else peer} missing) | - |")
            return
        ratio = a[key] / b[key]
        scale, unit = (MB, " MB") if key == "bytes" else (1, " s")
        print(f"| {text} | {ratio:.2f}x ({a[key] / scale:.2f}{unit} vs "
              f"{b[key] / scale:.2f}{unit}) | "
              f"{'met' if ratio <= limit else '**not met**'} |")

    default, pigz4 = "ocibuild gzip -4 (default)", "tar \\| pigz -4"
    target("default gzip wall <= 0.75x `tar | pigz -4`", default, pigz4, "wall_s", 0.75)
    target("default gzip CPU <= 0.75x `tar | pigz -4`", default, pigz4, "cpu_s", 0.75)
    target("default gzip blob <= 1.05x `pigz -4`'s", default, pigz4, "bytes", 1.05)
    target("gzip -6 blob <= `pigz -6`'s", "ocibuild gzip -6", "tar \\| pigz -6", "bytes", 1.0)
    target("gzip -6 wall <= 0.8x `tar | pigz -6`", "ocibuild gzip -6", "tar \\| pigz -6",
           "wall_s", 0.8)
    target("zstd wall <= 1.0x `tar | zstd -3 -T0`", "ocibuild zstd -3", "tar \\| zstd -3 -T0",
           "wall_s", 1.0)
    target("(zstd wall vs the same work in C: sorted tar, both digests)",
           "ocibuild zstd -3 (again)", "sorted tar \\| zstd -3 -T0, both SHA-256 (openssl)",
           "wall_s", 1.0)


if __name__ == "__main__":
    main()
