"""Shared helpers for the core tests: real files, real tools, no mocks."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

import ocibuild

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The directory holding the `ocibuild` package, for subprocesses (works in Pants' sandbox too).
SOURCE_ROOT = str(Path(ocibuild.__file__).resolve().parent.parent)


def which(tool: str) -> Optional[str]:
    return shutil.which(tool, path=os.environ.get("PATH", "") + os.pathsep + SYSTEM_PATH)


def need(tool: str) -> str:
    path = which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def run_tool(argv: List[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, **kwargs)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}: {proc.stderr!r}"
    return proc


def run_ocibuild(*args: str, cwd: Path, extra_env: Optional[dict] = None
                 ) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", SYSTEM_PATH), "PYTHONPATH": SOURCE_ROOT,
           "LANG": "C.UTF-8", **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "ocibuild", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def decompressed(blob: Path) -> bytes:
    """The tar bytes of a gzip, zstd or plain layer blob (sniffed from its magic)."""
    data = blob.read_bytes()
    if data[:2] == b"\x1f\x8b":
        import gzip

        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def tar_members(tar_bytes: bytes) -> List[Tuple[tarfile.TarInfo, Optional[bytes]]]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def write(path: Path, content: bytes = b"", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


def make_tree(root: Path, *, file_mode: int = 0o644, exec_mode: int = 0o755,
              reverse: bool = False) -> Path:
    """A small input tree: files, an executable, nested and empty dirs, two inner symlinks.
    `reverse` creates things in the opposite order (a different directory listing order)."""
    files: Dict[str, Tuple[bytes, int]] = {
        "bin/run.sh": (b"#!/bin/sh\necho run\n", exec_mode),
        "data/a.txt": (b"a\n", file_mode),
        "data/b.txt": (b"bee\n", file_mode),
        "data/nested/deep/c.bin": (bytes(range(256)) * 40, file_mode),
    }
    for name in sorted(files, reverse=reverse):
        write(root / name, *files[name])
    (root / "empty").mkdir()
    os.symlink("a.txt", root / "data/link")
    os.symlink("../bin/run.sh", root / "data/up")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "in")
