"""The same Dockerfiles built by `ocibuild build --dockerfile`, `docker build` and `buildah bud`:
cold, warm, and after a one-line change of a file only the final COPY reads.

    python3 bench/dockerfile_bench.py [--runs 3] [--only a|b] [--tools ours-pod,docker-vfs,...]

Run as root (dockerd, and the pod user is made with setpriv). Two Dockerfiles, their bases in
the CNCF registry on 127.0.0.1 (tests/fixtures/registry.py):

* (a) busybox (tests/fixtures/busybox.py) + COPY + three RUN steps + a final COPY of app code;
* (b) Debian trixie with python3 (tests/core/rootfs_debian.lock.json's debs, laid out by
  tests/core/rootfs_base.py, fetched by tests/fetch-example-debs) + COPY of a tarball of 5,000
  Python files + one RUN that extracts it and byte-compiles it (10,000 new files) + a final
  COPY of app code.

Tools (each with caches of its own, emptied for "cold"):

* ours-pod: `python -m ocibuild build --dockerfile --context --output` as uid 65534 under
  tests/core/rootfs_pod.py's seccomp filter (no user namespaces, no mounts: RUN via proot);
* ours-root: the same as root (RUN via chroot, the fastest mechanism);
* docker-vfs / docker-overlay2: a dockerd of its own (as tests/e2e/dockerfile_docker_test.py
  starts it: no bridge, legacy builder), `docker build --network=none`;
* buildah-vfs / buildah-overlay: `buildah bud --isolation chroot --layers` (apt-get installs
  buildah when missing, as root).

Cold: no cache, no base (docker: `system prune -af`; buildah and ours: fresh storage / cache
dirs), `--settle` seconds after the reset (see _settle). Warm: the same build again.
One-line: one line of app/main.py changed, built again.
Ours passes `--cache-dir` (a layer cache from docs/dockerfile.md when the build has one; an
accepted no-op before). Wall seconds of the build command, medians of `--runs`; prints a table
for docs/performance.md. Not a test: timing needs a quiet machine.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src/python"))

from bench.peers_bench import PEERS, ensure_peers, ensure_tool_python  # noqa: E402

POD_UID = 65534
LIB_FILES = 5000
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DOCKERFILE_A = """FROM {host}/busybox:latest
COPY tool.sh /usr/local/bin/tool.sh
RUN mkdir -p /data && echo hello > /data/greeting
RUN for i in $(seq 1 200); do echo "line $i" >> /data/log; done
RUN chmod 0755 /usr/local/bin/tool.sh && /usr/local/bin/tool.sh > /data/tool.out
COPY app/ /app/
"""

DOCKERFILE_B = """FROM {host}/debian-python:latest
COPY lib.tar /tmp/lib.tar
RUN mkdir -p /opt/lib && tar -xf /tmp/lib.tar -C /opt/lib && python3 -m compileall -q /opt/lib
COPY app/ /app/
"""


def _app(ctx: Path, version: int) -> None:
    (ctx / "app").mkdir(exist_ok=True)
    (ctx / "app" / "main.py").write_text(f'VERSION = {version}\nprint("hello", VERSION)\n')
    (ctx / "app" / "util.py").write_text("def helper():\n    return 42\n" * 20)


def _context_a(ctx: Path) -> None:
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE_A)
    (ctx / "tool.sh").write_text("#!/bin/sh\necho tool ran\nls /data\n")
    _app(ctx, 0)


def _context_b(ctx: Path) -> None:
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE_B)
    with tarfile.open(ctx / "lib.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(LIB_FILES):
            data = (f'"""module {i}."""\n\n\ndef f{i}(x):\n    return x * {i} + 1\n\n\n'
                    f'VALUES = {list(range(i % 50))}\n').encode()
            info = tarfile.TarInfo(f"pkg{i // 100:02d}/mod{i:04d}.py")
            info.size, info.mtime, info.mode = len(data), 1, 0o644
            tar.addfile(info, io.BytesIO(data))
    _app(ctx, 0)


# --- bases in the registry -------------------------------------------------------------------

def _push_busybox(host: str, work: Path) -> None:
    from tests.fixtures.busybox import make_busybox_layout
    from tests.fixtures.tools import require, run

    layout = make_busybox_layout(work / "busybox-layout")
    run([require("skopeo"), "copy", "--dest-tls-verify=false",
         f"oci:{layout['layout']}:latest", f"docker://{host}/busybox:latest"])


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _push_debian(host: str, work: Path) -> None:
    """tests/core/rootfs_base.py's Debian layers as an OCI layout (uncompressed), pushed
    gzip-compressed by skopeo."""
    from tests.core.rootfs_base import debian_full_layers
    from tests.fixtures.tools import require, run

    tars = work / "debian-tars"
    tars.mkdir()
    layers = debian_full_layers(tars)
    layout = work / "debian-layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    descriptors, diff_ids = [], []
    for path, media_type in layers:
        descriptor = _blob(layout, Path(path).read_bytes())
        descriptors.append({"mediaType": media_type, **descriptor})
        diff_ids.append(descriptor["digest"])
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": [f"PATH={SYSTEM_PATH}"], "Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              # one history entry a layer: buildah refuses a base whose history lists fewer
              "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"layer {i}"}
                          for i in range(len(diff_ids))]}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **_blob(layout, json.dumps(config).encode())},
                "layers": descriptors}
    m = _blob(layout, json.dumps(manifest).encode())
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": manifest["mediaType"], **m,
         "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    run([require("skopeo"), "copy", "--dest-tls-verify=false", "--dest-compress",
         "--dest-compress-format=gzip", f"oci:{layout}:latest",
         f"docker://{host}/debian-python:latest"])
    shutil.rmtree(tars)


# --- the tools -------------------------------------------------------------------------------

class Failed(Exception):
    """A build that failed: reported in the table, the other tools still measured."""


def _timed(argv: List[str], env: Dict[str, str], log: Path) -> float:
    start = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise Failed(f"{argv[0]} ... failed ({proc.returncode}); see {log}:\n"
                     f"{log.read_text()[-1500:]}")
    return seconds


def _reachable_by_pod(path: str) -> bool:
    """Every directory up to `path` searchable by others (the pod user's only right)."""
    real = Path(os.path.realpath(path))
    return all(os.stat(p).st_mode & 0o001 for p in real.parents)


def _pod_python() -> str:
    """This Python when uid 65534 can run it; else a venv of the system Python (under
    /var/tmp, world-readable) with the core's requirements, made once."""
    if _reachable_by_pod(sys.executable):
        return sys.executable
    requirements = REPO / "3rdparty/python/ocibuild-requirements.txt"
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = Path("/var/tmp/pants-oci-bench") / f"pod-venv-{key}"
    if not (venv / ".complete").exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        venv.parent.chmod(0o755)
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "-r",
                        str(requirements)], check=True)
        (venv / ".complete").touch()
    return str(venv / "bin/python")


class Ours:
    """`python -m ocibuild build --dockerfile`, as root or as the pod user."""

    def __init__(self, name: str, work: Path, host: str, pod: bool,
                 profile: Optional[Path] = None) -> None:
        self.name, self.host, self.pod, self.profile = name, host, pod, profile
        self.builds = 0
        self.home = work / name
        self.log = work / f"{name}.log"
        self.python = _pod_python() if pod else sys.executable

    def reset(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        if self.pod:
            os.chown(self.home, POD_UID, POD_UID)

    def build(self, ctx: Path) -> float:
        out = self.home / "out"
        shutil.rmtree(out, ignore_errors=True)
        self.builds += 1
        profiler = []
        if self.profile is not None:  # one cProfile dump per build, readable by pstats
            self.profile.mkdir(parents=True, exist_ok=True)
            self.profile.chmod(0o777)
            profiler = ["-m", "cProfile", "-o",
                        str(self.profile / f"{self.name}-{ctx.name}-{self.builds}.prof")]
        argv = [self.python, *profiler, "-m", "ocibuild", "build",
                "--dockerfile", str(ctx / "Dockerfile"), "--context", str(ctx),
                "--insecure-registry", self.host, "--output", str(out),
                "--cache-dir", str(self.home / "cache")]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(self.home),
               "XDG_CACHE_HOME": str(self.home / "xdg"), "PYTHONPATH": str(REPO / "src/python")}
        if self.pod:
            launcher = ("import os, sys; sys.path.insert(0, sys.argv[1]); "
                        "from rootfs_pod import lock_down; lock_down(); "
                        "os.execv(sys.argv[2], sys.argv[2:])")
            argv = ["setpriv", f"--reuid={POD_UID}", f"--regid={POD_UID}", "--clear-groups",
                    "--inh-caps=-all", "/usr/bin/python3", "-c", launcher,
                    str(REPO / "tests/core"), *argv]
        return _timed(argv, env, self.log)


class Docker:
    def __init__(self, name: str, work: Path, driver: str) -> None:
        self.name, self.driver = name, driver
        self.root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
        self.log = work / f"{name}.log"
        self.env = {"PATH": os.environ["PATH"], "DOCKER_HOST": f"unix://{self.root / 'sock'}",
                    "DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": str(self.root / "cli")}
        self.proc = None

    def start(self) -> bool:
        with open(self.root / "dockerd.log", "wb") as out:
            self.proc = subprocess.Popen(
                ["dockerd", f"--storage-driver={self.driver}", "--iptables=false",
                 "--bridge=none", f"--data-root={self.root / 'data'}",
                 f"--exec-root={self.root / 'exec'}", f"--pidfile={self.root / 'pid'}",
                 f"-H=unix://{self.root / 'sock'}"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            if subprocess.run(["docker", "info"], env=self.env,
                              capture_output=True).returncode == 0:
                return True
            time.sleep(0.3)
        print(f"{self.name}: dockerd did not start:\n"
              f"{(self.root / 'dockerd.log').read_text()[-1500:]}", flush=True)
        self.stop()
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def reset(self) -> None:
        subprocess.run(["docker", "system", "prune", "-af"], env=self.env, check=True,
                       capture_output=True)

    def build(self, ctx: Path) -> float:
        return _timed(["docker", "build", "-q", "--network=none", "-t", "bench:latest",
                       str(ctx)], self.env, self.log)


class Buildah:
    def __init__(self, name: str, work: Path, driver: str) -> None:
        self.name, self.driver = name, driver
        self.root = work / name
        self.log = work / f"{name}.log"

    def _flags(self) -> List[str]:
        return ["--root", str(self.root / "root"), "--runroot", str(self.root / "run"),
                "--storage-driver", self.driver]

    def start(self) -> bool:
        probe = subprocess.run(["buildah", *self._flags(), "images"], capture_output=True,
                               text=True)
        if probe.returncode != 0:
            print(f"{self.name}: buildah cannot use {self.driver} here: "
                  f"{probe.stderr.strip()[-500:]}", flush=True)
        return probe.returncode == 0

    def stop(self) -> None:
        self.reset()

    def reset(self) -> None:
        if self.root.exists():
            subprocess.run(["buildah", *self._flags(), "rm", "--all"], capture_output=True)
            subprocess.run(["buildah", *self._flags(), "rmi", "--all", "--force"],
                           capture_output=True)
            shutil.rmtree(self.root, ignore_errors=True)

    def build(self, ctx: Path) -> float:
        return _timed(["buildah", *self._flags(), "bud", "--isolation", "chroot", "--layers",
                       "--tls-verify=false", "--quiet", "-t", "bench:latest", str(ctx)],
                      {"PATH": os.environ["PATH"], "HOME": str(self.root)}, self.log)


def _settle(seconds: float) -> None:
    """Let the disk forget what a reset deleted. ext4 without a journal (the reference
    machine's) skips, when it makes a file, every inode freed in the last 30 s (5 min while
    its inode table block is dirty), reading each: right after a reset deleted a tree,
    making a file cost ~300 us of kernel CPU instead of ~10, for whichever tool came next."""
    os.sync()
    time.sleep(seconds)


def _measure(tool, ctx: Path, runs: int, settle: float) -> Dict[str, float]:
    """Medians of `runs` rounds of cold, warm and one-line change."""
    found = {"cold": [], "warm": [], "one-line": []}
    for r in range(runs):
        tool.reset()
        _settle(settle)
        _app(ctx, 0)
        found["cold"].append(tool.build(ctx))
        found["warm"].append(tool.build(ctx))
        _app(ctx, r + 1)
        found["one-line"].append(tool.build(ctx))
        print(f"  {tool.name} {ctx.name} run {r + 1}: "
              + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in found.items()), flush=True)
    return {k: statistics.median(v) for k, v in found.items()}


def main() -> None:
    ensure_tool_python()
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("a", "b"))
    parser.add_argument("--tools", default="ours-pod,ours-root,docker-vfs,docker-overlay2,"
                        "buildah-vfs,buildah-overlay")
    parser.add_argument("--profile", type=Path, help="write a cProfile dump of each of our "
                        "builds here (slower: the numbers are not the bench's)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--settle", type=float, default=35.0, help="seconds to wait after "
                        "each reset, before the cold build (see _settle; 0 on a journaled "
                        "filesystem)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: dockerd, buildah's chroot and the pod user need it")
    PEERS.clear()
    PEERS.update({"buildah": "buildah"})
    ensure_peers()
    from tests.fixtures.registry import start_registry

    work = Path(tempfile.mkdtemp(prefix="dockerfile-bench-"))
    work.chmod(0o755)
    contexts = {"a": work / "a-busybox", "b": work / "b-debian-python"}
    if args.only:
        contexts = {args.only: contexts[args.only]}
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    try:
        with start_registry(work / "registry") as registry:
            if "a" in contexts:
                _push_busybox(registry.host, work)
                _context_a(contexts["a"])
            if "b" in contexts:
                _push_debian(registry.host, work)
                _context_b(contexts["b"])
            for ctx in contexts.values():
                dockerfile = ctx / "Dockerfile"
                dockerfile.write_text(dockerfile.read_text().format(host=registry.host))
            makers: Dict[str, Callable[[], object]] = {
                "ours-pod": lambda: Ours("ours-pod", work, registry.host, pod=True,
                                         profile=args.profile),
                "ours-root": lambda: Ours("ours-root", work, registry.host, pod=False,
                                          profile=args.profile),
                "docker-vfs": lambda: Docker("docker-vfs", work, "vfs"),
                "docker-overlay2": lambda: Docker("docker-overlay2", work, "overlay2"),
                "buildah-vfs": lambda: Buildah("buildah-vfs", work, "vfs"),
                "buildah-overlay": lambda: Buildah("buildah-overlay", work, "overlay"),
            }
            for name in args.tools.split(","):
                if name.startswith("buildah") and shutil.which("buildah") is None:
                    print(f"{name}: skipped, install buildah: apt-get install -y buildah")
                    continue
                tool = makers[name]()
                if hasattr(tool, "start") and not tool.start():
                    continue
                try:
                    for key, ctx in contexts.items():
                        try:
                            results.setdefault(key, {})[name] = _measure(
                                tool, ctx, args.runs, args.settle)
                        except Failed as err:
                            print(f"{name} {ctx.name}: {err}", flush=True)
                            results.setdefault(key, {})[name] = {}
                finally:
                    if hasattr(tool, "stop"):
                        tool.stop()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    load = os.getloadavg()
    print(f"\nmedians of {args.runs} runs, wall s; load average {load[0]:.1f} {load[1]:.1f}")
    print("| Dockerfile | tool | cold | warm | one-line change |")
    print("| --- | --- | ---: | ---: | ---: |")
    labels = {"a": "(a) busybox + COPY + 3 RUN", "b": "(b) Debian python3, 10,000-file RUN"}
    for key, by_tool in results.items():
        for name, m in by_tool.items():
            cells = [f"{m[k]:.2f}" if k in m else "failed" for k in ("cold", "warm", "one-line")]
            print(f"| {labels[key]} | {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
