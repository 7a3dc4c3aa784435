"""Benchmark the Debian layer budget: one layer per package vs `max_layers` (default 8).

    python bench/debian_budget_bench.py [--lockfile examples/python-base/python-base.lock.json]
        [--debs ~/.cache/pants-oci-tests/debian] [--max-layers 8] [--update libssl3t64 ...]

For the lockfile's amd64 closure (the .debs as `tests/fetch-example-debs` caches them), builds
the base both ways with `python -m ocibuild debian-layer`/`assemble`, as `pants package`
does: layer count and total compressed/uncompressed layer sizes. Then, for each package of
`--update`, fakes a new version of it (the cached .deb unpacked and rebuilt by `dpkg-deb`
with `+bench1` appended to its Version, so its files are the same but its status.d entry
and its .deb are new), rebuilds both layouts, pushes old and new to a CNCF `docker-registry`
on 127.0.0.1 with `skopeo copy`, and pulls: the old image into an OCI layout, then the new
one into that same layout (skopeo skips blobs the layout holds). Reports the bytes the
update adds (blobs of the new manifest the old lacks, config and manifest included) and the
pull time of the update (median of `--runs`). Loopback hides the network: the bytes are the
number that carries over to a real registry.

Not a test: timing needs a quiet machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src" / "python"), str(REPO)]

from peers_bench import ensure_tool_python  # noqa: E402 (bench/ is the script's sys.path entry)

ensure_tool_python()  # layers need deflate and zstandard, the registry fixture pytest

from ocibuild.debian.grouping import group_packages  # noqa: E402
from tests.fixtures.registry import start_registry  # noqa: E402

BLOB_GET = re.compile(rb"/blobs/(sha256:[0-9a-f]{64})")
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src" / "python")}
Groups = List[Tuple[str, ...]]


def ocibuild(*argv: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "ocibuild", *argv], cwd=cwd, env=ENV, check=True,
                   stdout=subprocess.DEVNULL)


def build(debs: Dict[str, Path], groups: Groups, work: Path) -> Path:
    """An OCI layout of root layer + one layer per group + config layer, as debian_base.py
    assembles it; each layer built once per content (a cache keyed by its .debs)."""
    layers: List[Tuple[List[str], str]] = [(["debian-root-layer"], "root")]
    for group in groups:
        argv = ["debian-layer"] + [a for name in group for a in ("--deb", str(debs[name]))]
        layers.append((argv, ", ".join(group)))
    ca = ["--ca-certificates", str(debs["ca-certificates"])] if "ca-certificates" in debs else []
    layers.append((["debian-config-layer", *ca], "config"))
    out = work / f"layout-{len(list(work.glob('layout-*')))}"
    spec = {"base": None, "platform": "linux/amd64", "layers": [], "history": [],
            "ref_name": "base", "metadata_out": str(out / "meta.json")}
    blobs = []
    for argv, what in layers:
        key = hashlib.sha256(" ".join(
            argv + [hashlib.sha256(Path(a).read_bytes()).hexdigest() for a in argv
                    if a.endswith(".deb")]).encode()).hexdigest()[:20]
        layer_dir = work / "layers" / key
        if not layer_dir.exists():
            ocibuild(*argv, "--out-dir", str(layer_dir), cwd=work)
        spec["layers"].append(str(layer_dir / "layer.json"))
        spec["history"].append(f"bench: {what}")
        blobs.append(layer_dir / "blobs")
    (work / "spec.json").write_text(json.dumps(spec))
    ocibuild("assemble", "--spec", str(work / "spec.json"), "--out-dir", str(out / "oci"),
             cwd=work)
    for src in blobs:
        for blob in (src / "sha256").iterdir():
            shutil.copyfile(blob, out / "oci/blobs/sha256" / blob.name)
    return out


def layer_sizes(layout: Path) -> Tuple[int, int, int]:
    meta = json.loads((layout / "meta.json").read_text())
    compressed = sum(l["size"] for l in meta["layers"])
    uncompressed = 0
    for layer in meta["layers"]:
        blob = layout / "oci/blobs" / layer["digest"].replace(":", "/")
        uncompressed += int(subprocess.run(f"gzip -dc {blob} | wc -c", shell=True, check=True,
                                           capture_output=True, text=True).stdout)
    return len(meta["layers"]), compressed, uncompressed


def blobs_of(layout: Path) -> Dict[str, int]:
    """digest -> size of the manifest, its config and its layers."""
    index = json.loads((layout / "oci/index.json").read_text())
    (manifest,) = index["manifests"]
    doc = json.loads((layout / "oci/blobs" / manifest["digest"].replace(":", "/")).read_text())
    found = {manifest["digest"]: manifest["size"], doc["config"]["digest"]: doc["config"]["size"]}
    found.update({l["digest"]: l["size"] for l in doc["layers"]})
    return found


def fake_update(deb: Path, work: Path) -> Path:
    """The same package with `+bench1` appended to its Version, rebuilt by dpkg-deb."""
    root = work / f"{deb.stem}-unpacked"
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-R", str(deb), str(root)], check=True)
    control = root / "DEBIAN/control"
    control.write_text("".join(line.rstrip("\n") + "+bench1\n" if line.startswith("Version:")
                               else line for line in control.read_text().splitlines(True)))
    new = work / f"{deb.stem}+bench1.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--nocheck", "-Zxz", "-b", str(root),
                    str(new)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
    shutil.rmtree(root)
    return new


def skopeo(*argv: str) -> None:
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                    *argv], check=True)


def pull_update(registry, name: str, old: Path, new: Path, work: Path, runs: int
                ) -> Tuple[float, float, int]:
    """Pulling `new` into a layout that holds `old` (pulled first): median seconds, the
    median seconds of pulling `new` into an empty layout, and the bytes of the blobs the
    registry served for the update (from its log: what skopeo really fetched)."""
    host = registry.host
    skopeo(f"oci:{old}/oci:base", f"docker://{host}/{name}:old")
    skopeo(f"oci:{new}/oci:base", f"docker://{host}/{name}:new")
    sizes = blobs_of(new)
    update, cold, fetched = [], [], 0
    for run in range(runs):
        dest = work / f"pull-{name.replace('/', '-')}-{run}"
        skopeo(f"docker://{host}/{name}:old", f"oci:{dest}:old")
        log_start = registry.log.stat().st_size
        start = time.perf_counter()
        skopeo(f"docker://{host}/{name}:new", f"oci:{dest}:new")
        update.append(time.perf_counter() - start)
        with open(registry.log, "rb") as log:
            log.seek(log_start)
            served = {m.decode() for line in log if b"GET" in line
                      for m in BLOB_GET.findall(line)}
        fetched = sum(sizes.get(d, 0) for d in served)
        shutil.rmtree(dest)
        start = time.perf_counter()
        skopeo(f"docker://{host}/{name}:new", f"oci:{dest}:new")
        cold.append(time.perf_counter() - start)
        shutil.rmtree(dest)
    return statistics.median(update), statistics.median(cold), fetched


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lockfile", default=str(REPO / "examples/python-base/python-base.lock.json"))
    parser.add_argument("--debs", default=str(Path(os.environ.get(
        "XDG_CACHE_HOME", Path.home() / ".cache")) / "pants-oci-tests" / "debian"))
    parser.add_argument("--max-layers", type=int, default=8)
    parser.add_argument("--update", action="append",
                        help="packages to fake an update of (default: libssl3t64, libsqlite3-0, zlib1g)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(list(argv) or None)
    lock = json.loads(Path(args.lockfile).read_text())
    packages = lock["packages"]["amd64"]
    debs = {p["name"]: Path(args.debs, p["filename"]) for p in packages}
    missing = [str(d) for d in debs.values() if not d.is_file()]
    if missing:
        print(f"missing .debs (run tests/fetch-example-debs): {missing[:3]} ...", file=sys.stderr)
        return 2
    sizes = {p["name"]: p["size"] for p in packages}
    layouts = {
        "one per package": lambda s: [(name,) for name in sorted(s)],
        f"max_layers={args.max_layers}": lambda s: group_packages(s, args.max_layers),
    }
    with tempfile.TemporaryDirectory(prefix="debian-budget-bench-") as tmp:
        work = Path(tmp)
        print(f"{len(packages)} packages of {args.lockfile}, amd64; layers include the root "
              "and config layers")
        print()
        print(f"| layout | layers | compressed MB | uncompressed MB |")
        print("| --- | ---: | ---: | ---: |")
        built = {}
        for label, grouping in layouts.items():
            built[label] = build(debs, grouping(sizes), work)
            count, compressed, uncompressed = layer_sizes(built[label])
            print(f"| {label} | {count} | {compressed / 1e6:.2f} | {uncompressed / 1e6:.2f} |")
        print()
        print("| update | layout | new layers | new bytes (manifest) | bytes pulled (registry "
              "log) | update pull s | full pull s |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        with start_registry(work / "registry") as registry:
            for package in args.update or ["libssl3t64", "libsqlite3-0", "zlib1g"]:
                new_deb = fake_update(debs[package], work)
                new_debs = {**debs, package: new_deb}
                new_sizes = {**sizes, package: new_deb.stat().st_size}
                for label, grouping in layouts.items():
                    new = build(new_debs, grouping(new_sizes), work)
                    old_blobs, new_blobs = blobs_of(built[label]), blobs_of(new)
                    added = {d: s for d, s in new_blobs.items() if d not in old_blobs}
                    layers_changed = len(added) - 2  # less manifest and config
                    repo = f"bench/{package.replace('.', '-')}-{label.split()[0].replace('=', '')}"
                    seconds, cold, fetched = pull_update(registry, repo, built[label], new, work,
                                                         args.runs)
                    print(f"| {package} | {label} | {layers_changed} | "
                          f"{sum(added.values()):,} | {fetched:,} | {seconds:.2f} | {cold:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
