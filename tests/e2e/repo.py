"""A copy of this repository in a temp dir, and `./pants` run in it as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Optional

# The sandbox holds the //:repo files at their repository paths.
_REPO_ENTRIES = ("pants", "pants.toml", "BUILD", "3rdparty", "pants-plugins", "src", "examples", "docs")
_PASS_ENV = ("HOME", "PATH", "PYENV_ROOT", "SSL_CERT_FILE", "LANG")


@dataclass(frozen=True)
class PantsResult:
    returncode: int
    stdout: str
    stderr: str


def copy_repo(dest: Path, source: Path = Path.cwd()) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
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
    global _debian_mirror
    locks = sorted(source.glob("examples/**/*.lock.json"))
    missing = [p["filename"] for lock in locks
               for pkgs in json.loads(lock.read_text())["packages"].values() for p in pkgs
               if not (_DEBIAN_CACHE / p["filename"]).is_file()]
    if missing:
        raise AssertionError(f"{len(missing)} Debian packages of the examples are not cached in "
                             f"{_DEBIAN_CACHE} (e.g. {missing[0]}): run tests/fetch-example-debs")
    if _debian_mirror is None:
        handler = partial(_Quiet, directory=str(_DEBIAN_CACHE))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _debian_mirror = f"http://127.0.0.1:{server.server_address[1]}"
    mirrors = {source["mirror"]: _debian_mirror for lock in locks
               for source in json.loads(lock.read_text())["request"]["sources"]}
    return {"PANTS_OCI_DEBIAN_MIRRORS": repr(mirrors)}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def run_pants(repo: Path, *args: str, check: bool = True,
              extra_env: Optional[Dict[str, str]] = None) -> PantsResult:
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.update(debian_mirror_env(repo))
    env.update(extra_env or {})
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    proc = subprocess.run(
        ["bash", "./pants", "--no-pantsd", "--no-dynamic-ui", *args],
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
