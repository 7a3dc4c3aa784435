"""A copy of this repository in a temp dir, and `./pants` run in it as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
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


def run_pants(repo: Path, *args: str, check: bool = True,
              extra_env: Optional[Dict[str, str]] = None) -> PantsResult:
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
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
