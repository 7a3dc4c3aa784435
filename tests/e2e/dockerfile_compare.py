"""What the docker comparisons share: a dockerd of their own, `docker save` read back as a
filesystem, the config fields compared, and `ocibuild build --dockerfile` run as each user a
build runs as here.

dockerd runs in a temp dir of its own (vfs storage, or the first of the drivers asked for
that starts; no iptables, no bridge, its own socket), as root; a module using it is skipped,
with the reason, only when it cannot start.

`Builder` runs our build as:
* "root": this process's user (root here): mechanism "root";
* "user": uid 65534, no capabilities, unconfined: "userns" where the kernel gives an
  unprivileged user namespaces, else "proot";
* "pod": uid 65534, no capabilities, under tests/core/rootfs_pod.py's seccomp filter (user
  namespaces and mount refused, ptrace allowed): "proot".
The two unprivileged cases need the interpreter, its packages and our sources where that
user can read them: copied once per module into a world-readable directory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

from tests.fixtures.tools import SYSTEM_PATH, require, run, tool_env

import ocibuild

SOURCE_ROOT = str(Path(ocibuild.__file__).resolve().parent.parent)
POD = Path(__file__).resolve().parent.parent / "core" / "rootfs_pod.py"
NOBODY = 65534
CONFIG_FIELDS = ("Env", "Entrypoint", "Cmd", "WorkingDir", "User", "Labels", "ExposedPorts",
                 "Volumes", "StopSignal", "Healthcheck", "OnBuild", "Shell")
# What each way of running our build must have chosen (docs/run-steps.md).
MECHANISMS = {"root": {"root"}, "user": {"userns", "proot"}, "pod": {"proot"}}

Tree = Dict[str, tuple]  # path -> (kind, mode, uid, gid, link target, sha256 or None)


class Docker:
    driver = "vfs"

    def __init__(self, sock: Path) -> None:
        self.env = {**tool_env(), "DOCKER_HOST": f"unix://{sock}", "DOCKER_BUILDKIT": "0",
                    "DOCKER_CONFIG": str(sock.parent / "cli")}

    def __call__(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run([require("docker"), *args], env=self.env, **kwargs)

    def image(self, tag: str, work: Path) -> Tuple[Tree, dict]:
        """`tag`'s filesystem as `docker save` gives it, and its config."""
        saved = work / f"{tag.replace(':', '-').replace('/', '-')}-saved.tar"
        self("save", "-o", str(saved), tag)
        tree = flatten(saved)
        saved.unlink()
        return tree, config(self, tag)


@contextmanager
def dockerd(root: Path, drivers: Sequence[str] = ("vfs",)) -> Iterator[Docker]:
    """A dockerd of our own in `root`, with the first storage driver of `drivers` it starts
    with (`docker.driver` says which)."""
    path = next((p for p in (f"{d}/dockerd" for d in SYSTEM_PATH.split(":"))
                 if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.skip("dockerd is not installed (tests/install-test-tools installs docker.io)")
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root here")
    failures = []
    for driver in drivers:
        proc, client, why = _start(path, root / driver, driver)
        if proc is None:
            failures.append(f"{driver}: {why}")
            continue
        try:
            yield client
        finally:
            from tests.fixtures.tools import stop

            stop(proc)
            # dockerd leaves its default network namespace (and overlay2 mounts) mounted:
            # each run leaked one more mount, and pytest could not remove its directory.
            _unmount_under(root / driver)
            # vfs keeps a full copy of the tree per layer: gigabytes for Debian bases.
            shutil.rmtree(root / driver / "data", ignore_errors=True)
        return
    pytest.skip("dockerd cannot start here:\n" + "\n".join(failures))


def _unmount_under(top: Path) -> None:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].encode().decode("unicode_escape") for line in f]
    prefix = str(top.resolve()) + "/"
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=True)


def _start(dockerd_path: str, root: Path, driver: str):
    root.mkdir()
    sock = root / "docker.sock"
    log = root / "dockerd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [dockerd_path, f"--storage-driver={driver}", "--iptables=false", "--bridge=none",
             f"--data-root={root / 'data'}", f"--exec-root={root / 'exec'}",
             f"--pidfile={root / 'dockerd.pid'}", f"-H=unix://{sock}"],
            stdout=out, stderr=subprocess.STDOUT, env=tool_env())
    client = Docker(sock)
    client.driver = driver
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            return None, None, log.read_text()[-2000:]
        if sock.exists():
            probe = subprocess.run([require("docker"), "version"], env=client.env,
                                   capture_output=True)
            if probe.returncode == 0:
                return proc, client, ""
        if time.monotonic() > deadline:
            from tests.fixtures.tools import stop

            stop(proc)
            return None, None, f"no answer within 60 s:\n{log.read_text()[-2000:]}"
        time.sleep(0.2)


def flatten(archive: Path) -> Tree:
    """A `docker save` tarball's filesystem: path -> (kind, mode, uid, gid, link, sha256).
    A hard link is shown as the file it names (docker's and our layers may pick a different
    one of the names as the file)."""
    tree: Tree = {}
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for name in manifest[0]["Layers"]:
            data = outer.extractfile(name).read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                for m in layer:
                    _apply(tree, layer, m)
    return tree


def _apply(tree: Tree, layer: tarfile.TarFile, m: tarfile.TarInfo) -> None:
    path = m.name.rstrip("/").lstrip("./") if m.name not in ("./", ".") else ""
    parent, _, base = path.rpartition("/")
    if base == ".wh..wh..opq":
        for p in [p for p in tree if p.startswith(parent + "/")]:
            del tree[p]
        return
    if base.startswith(".wh."):
        gone = (parent + "/" if parent else "") + base[4:]
        for p in [p for p in tree if p == gone or p.startswith(gone + "/")]:
            del tree[p]
        return
    kind = "dir" if m.isdir() else "symlink" if m.issym() else \
        "hardlink" if m.islnk() else "file" if m.isfile() else \
        "chardev" if m.ischr() else "blockdev" if m.isblk() else \
        "fifo" if m.isfifo() else "other"
    digest = _digest(path, layer.extractfile(m).read()) if m.isfile() else None
    if kind != "dir" and path in tree:
        for p in [p for p in tree if p == path or p.startswith(path + "/")]:
            del tree[p]
    if m.islnk():  # as the file it names
        kind, digest = "file", tree.get(m.linkname.lstrip("./"), (0,) * 6)[5]
    link = m.linkname if m.issym() else f"{m.devmajor},{m.devminor}" \
        if kind in ("chardev", "blockdev") else ""
    tree[path] = (kind, oct(m.mode & 0o7777), m.uid, m.gid, link, digest)


def _digest(path: str, data: bytes) -> str:
    """The content's sha256; a .pyc's without its bytes 8-12, the source file's mtime that
    the timestamp-checked header holds (the time pip or compileall wrote the source, in
    docker's build and in ours alike; PEP 552)."""
    if path.endswith(".pyc") and len(data) >= 16 and data[4:8] == b"\0\0\0\0":
        data = data[:8] + data[12:]
    return hashlib.sha256(data).hexdigest()


def config(docker: Docker, image: str) -> dict:
    (info,) = json.loads(docker("inspect", image).stdout)
    conf = info["Config"]
    return {k: conf.get(k) or None for k in CONFIG_FIELDS} | {"Author": info.get("Author") or None}


def differences(theirs: Tree, ours: Tree) -> Dict[str, tuple]:
    return {p: (theirs.get(p), ours.get(p)) for p in sorted(set(theirs) | set(ours))
            if theirs.get(p) != ours.get(p)}


def write_context(root: Path, files: Dict[str, object]) -> None:
    """Files of a build context: text, or (bytes, mode)."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            path.write_bytes(content[0])
            path.chmod(content[1])
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(str(content))


def _world_copy(src: str, dest: Path) -> None:
    shutil.copytree(src, dest, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _relocate(python: Path, prefix: str) -> None:
    """Point the copied interpreter's RUNPATH (pyenv's: PREFIX/lib, under root's 0700 home)
    at its own copy of libpython: ocibuild's userns probe runs sys.executable with a bare
    environment, so LD_LIBRARY_PATH alone would make "user" fall back to proot. The new
    string is shorter, NUL-padded in place: the dynamic string table keeps its size."""
    old = f"{os.path.realpath(prefix)}/lib".encode()
    new = b"$ORIGIN/../lib"
    data = python.read_bytes()
    if data.count(old + b"\0") == 1:
        python.write_bytes(data.replace(old + b"\0", new.ljust(len(old) + 1, b"\0")))


class Builder:
    """`ocibuild build --dockerfile` as "root", "user" or "pod" (see the module's doc)."""

    def __init__(self, world: Path) -> None:
        self.world = world
        self._python: Optional[str] = None
        self._paths: List[str] = []

    def _copy_interpreter(self) -> str:
        if self._python is None:
            shutil.copy(POD, self.world / "rootfs_pod.py")
            prefix = self.world / "python"
            _world_copy(sys.base_prefix, prefix)
            self._paths = [str(self.world / "src")]
            _world_copy(os.path.join(SOURCE_ROOT, "ocibuild"), self.world / "src" / "ocibuild")
            for i, entry in enumerate(p for p in sys.path if os.path.isdir(p)
                                      and not p.startswith(sys.base_prefix)
                                      and p != SOURCE_ROOT and "site-packages" in p):
                _world_copy(entry, self.world / f"site{i}")
                self._paths.append(str(self.world / f"site{i}"))
            self._python = str(prefix / os.path.relpath(os.path.realpath(sys.executable),
                                                        os.path.realpath(sys.base_prefix)))
            _relocate(Path(self._python), sys.base_prefix)
            for path in [self.world, *self.world.rglob("*")]:
                os.lchown(path, NOBODY, NOBODY)
        return self._python

    def build(self, as_: str, ctx: Path, out: Path, args: Sequence[str]) -> dict:
        """Build `ctx` into `out`/ours.tar; the --json result. `ctx` and `out` must be
        readable (ctx) and writable (out) by the user `as_` names."""
        argv = ["build", "--dockerfile", str(ctx / "Dockerfile"), "--context", str(ctx),
                "--tar-path", str(out / "ours.tar"), "--no-push", "--json", *args]
        if as_ == "root":
            env = {**tool_env(), "PYTHONPATH": SOURCE_ROOT}
            proc = subprocess.run([sys.executable, "-m", "ocibuild", *argv], cwd=out, env=env,
                                  capture_output=True, text=True, timeout=1200)
        else:
            if not shutil.which("setpriv"):
                pytest.fail("setpriv is needed: run tests/install-test-tools")
            python = self._copy_interpreter()
            build = [python, "-m", "ocibuild", *argv]
            lock = "import rootfs_pod; rootfs_pod.lock_down(); " if as_ == "pod" else ""
            code = (f"import os, sys; sys.path.insert(0, {str(self.world)!r}); {lock}"
                    f"os.execv({python!r}, {build!r})")
            env = {"PATH": SYSTEM_PATH, "HOME": str(out), "TMPDIR": str(out),
                   "PYTHONPATH": ":".join(self._paths), "PYTHONNOUSERSITE": "1",
                   "LD_LIBRARY_PATH": str(Path(python).parent.parent / "lib")}
            for path in [out, *out.rglob("*")]:
                os.lchown(path, NOBODY, NOBODY)
            proc = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                                   "--clear-groups", "--inh-caps=-all", "/usr/bin/python3",
                                   "-c", code], cwd=out, env=env, capture_output=True,
                                  text=True, timeout=1200)
        assert proc.returncode == 0, proc.stderr[-6000:]
        result = json.loads(proc.stdout)
        result["stderr"] = proc.stderr
        return result


def require_pod_tools() -> None:
    if not shutil.which("setpriv") or subprocess.run(
            ["/usr/bin/python3", "-c", "import seccomp"], capture_output=True).returncode:
        pytest.fail("setpriv and python3-seccomp are needed: run tests/install-test-tools")


def world_dir(prefix: str) -> Path:
    """A directory the unprivileged build user can use (pytest's tmp is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path
