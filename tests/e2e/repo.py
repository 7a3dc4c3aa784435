"""A copy of this repository in a temp dir, and `./pants` run in it as a user would.

A copy that several runs share is made with `pantsd=True`, and its runs use pantsd, as
users' do: starting Pants without it solves its rule graph twice (~10 s of CPU), which every
run would pay again; for a single run the daemon only adds its own start and stop. Each
copy's pantsd is stopped when the test module ends (tests/e2e/conftest.py), and a run that
must not find anything in memory (e.g. a build offline) passes `pantsd=False` after
`stop_pantsd`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Optional, Set

# The sandbox holds the //:repo files at their repository paths.
_REPO_ENTRIES = ("pants", "pants.toml", "BUILD", "3rdparty", "pants-plugins", "src", "examples", "docs")
_PASS_ENV = ("HOME", "PATH", "PYENV_ROOT", "SSL_CERT_FILE", "LANG")


@dataclass(frozen=True)
class PantsResult:
    returncode: int
    stdout: str
    stderr: str


# The copies made for several runs, which use pantsd; and those whose pantsd may be running.
_PANTSD_COPIES: Set[Path] = set()
_PANTSD_REPOS: Set[Path] = set()


def copy_repo(dest: Path, source: Path = Path.cwd(), *, pantsd: bool = False) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    if pantsd:
        _PANTSD_COPIES.add(dest)
    for entry in _REPO_ENTRIES:
        src = source / entry
        if src.is_dir():
            shutil.copytree(src, dest / entry, symlinks=False)
        else:
            shutil.copy2(src, dest / entry)
    return dest


_DEBIAN_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pants-oci-tests/debian"
_debian_mirror: Optional[str] = None


def debian_mirror_env(source: Path = Path.cwd()) -> Dict[str, str]:
    """Serve the examples' Debian packages (cached by tests/fetch-example-debs) on 127.0.0.1
    and point the examples' mirror there: tests never reach another host."""
    return {"PANTS_OCI_DEBIAN_MIRRORS": repr(debian_mirrors(source))}


def debian_mirrors(source: Path = Path.cwd()) -> Dict[str, str]:
    """Each mirror the examples' lockfiles name -> the local mirror serving the cache."""
    global _debian_mirror
    locks = sorted(source.glob("examples/**/*.lock.json"))
    if _debian_mirror is None:
        # Checked once, on the committed lockfiles: a test that relocks a copy against today's
        # indexes (newer security updates) needs those indexes, not the new versions' .debs.
        missing = [p["filename"] for lock in locks
                   for pkgs in json.loads(lock.read_text())["packages"].values() for p in pkgs
                   if not (_DEBIAN_CACHE / p["filename"]).is_file()]
        if missing:
            raise AssertionError(f"{len(missing)} Debian packages of the examples are not cached "
                                 f"in {_DEBIAN_CACHE} (e.g. {missing[0]}): run "
                                 "tests/fetch-example-debs")
        handler = partial(_Quiet, directory=str(_DEBIAN_CACHE))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _debian_mirror = f"http://127.0.0.1:{server.server_address[1]}"
    return {source["mirror"]: _debian_mirror for lock in locks
            for source in json.loads(lock.read_text())["request"]["sources"]}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def run_pants(repo: Path, *args: str, check: bool = True,
              extra_env: Optional[Dict[str, str]] = None,
              pantsd: Optional[bool] = None) -> PantsResult:
    """`./pants ARGS` in `repo`, with pantsd if the copy was made for it (or as `pantsd` says)."""
    if pantsd is None:
        pantsd = repo in _PANTSD_COPIES
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.update(debian_mirror_env(repo))
    env.update(extra_env or {})
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if pantsd:
        _PANTSD_REPOS.add(repo)
    proc = subprocess.run(
        ["bash", "./pants", "--pantsd" if pantsd else "--no-pantsd", "--no-dynamic-ui", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    result = PantsResult(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"./pants {' '.join(args)} failed ({proc.returncode}) in {repo}:\n{proc.stderr[-6000:]}"
        )
    return result


def _pantsd_pid(repo: Path) -> Optional[int]:
    """The pid of the pantsd serving `repo`, if one runs: read from the pid file Pants keeps
    in the copy, and only if that process is still that pantsd (a pid may be reused)."""
    for pid_file in repo.glob(".pids/*/pantsd/pid"):
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if b"pantsd" in cmdline and str(repo.resolve()).encode() in cmdline:
            return pid
    return None


def stop_pantsd(repo: Path) -> None:
    """Stop the pantsd of `repo`: SIGTERM, then SIGKILL after 10 s."""
    _PANTSD_REPOS.discard(repo)
    pid = _pantsd_pid(repo)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running, i.e. neither gone nor a zombie (pantsd is a daemon: whoever reaps it, not us)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_all_pantsd() -> None:
    for repo in list(_PANTSD_REPOS):
        stop_pantsd(repo)
