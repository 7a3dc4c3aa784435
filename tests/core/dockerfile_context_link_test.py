"""A build context given as a symlink to a directory, as git-sync leaves a clone
(`--root=/workspace --link=src`: /workspace/src -> .worktrees/HASH), the Job of
docs/kubernetes.md: the context is the directory it names, the same image as from the
directory itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ocibuild

SOURCE_ROOT = str(Path(ocibuild.__file__).resolve().parent.parent)


def _digest(context: Path, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "ocibuild", "build", f"--context=dir://{context}",
                           "--dockerfile=Dockerfile", "--no-push", "--json"], cwd=cwd,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                               "PYTHONPATH": SOURCE_ROOT}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["manifest_digest"]


def test_a_context_that_is_a_symlink_to_a_clone_builds_the_clone(tmp_path: Path) -> None:
    clone = tmp_path / "workspace" / ".worktrees" / "0123abcd"
    (clone / "app").mkdir(parents=True)
    (clone / "Dockerfile").write_text("FROM scratch\nCOPY app/ /app/\nCOPY Dockerfile /\n")
    (clone / "app" / "main.txt").write_text("main\n")
    os.symlink(".worktrees/0123abcd", tmp_path / "workspace" / "src")
    assert _digest(tmp_path / "workspace" / "src", tmp_path) == _digest(clone, tmp_path)
