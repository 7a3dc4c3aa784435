"""Killed or failed runs leave no debris: real `python -m ocibuild` processes, real signals."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from ocibuild import atomic
from ocibuild.atomic import TempFile, atomic_directory, sweep_debris
from ocibuild.errors import OciBuildError

from .conftest import SOURCE_ROOT, SYSTEM_PATH, run_ocibuild


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    """64 MiB of base64 text: gzip takes seconds on it, so a signal lands mid-write."""
    root = tmp_path_factory.mktemp("big")
    (root / "big.txt").write_bytes(base64.b64encode(os.urandom(48 << 20)))
    (root / "small.txt").write_text("small")
    for name in ("big", "small"):
        (root / f"{name}.json").write_text(json.dumps(
            {"mappings": [{"source": str(root / f"{name}.txt"), "dest": f"{name}.txt"}]}))
    return root


def start_layer(spec: Path, out: Path) -> subprocess.Popen:
    env = {"PATH": os.environ.get("PATH", SYSTEM_PATH), "PYTHONPATH": SOURCE_ROOT,
           "LANG": "C.UTF-8"}
    return subprocess.Popen([sys.executable, "-m", "ocibuild", "layer", "--spec", str(spec),
                             "--out-dir", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def partials(root: Path) -> List[Path]:
    return sorted(p for p in root.rglob(".partial-*")) if root.exists() else []


def wait_mid_write(proc: subprocess.Popen, out: Path) -> Path:
    """The temp blob, once it holds some bytes (the process is then mid-way)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [p for p in partials(out) if p.is_file() and p.stat().st_size > 0]
        if found:
            return found[0]
        assert proc.poll() is None, f"finished before it could be stopped: {proc.stderr.read()}"
        time.sleep(0.005)
    raise AssertionError("no temp blob appeared within 60 s")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_unwinds_and_removes_the_temp_blob(big_input: Path, tmp_path: Path,
                                                        signum: int) -> None:
    out = tmp_path / "out"
    proc = start_layer(big_input / "big.json", out)
    temp = wait_mid_write(proc, out)
    assert temp.name.startswith(f".partial-{proc.pid}-")  # the writer's PID is in the name
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stderr) == (128 + signum, "ocibuild: interrupted\n")
    assert json.loads(stdout)["error"] == "interrupted"
    assert not out.exists()  # the temp blob, and the directories made for it, are gone
    later = run_ocibuild("layer", "--spec", str(big_input / "small.json"), "--out-dir", str(out),
                         cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    assert partials(out) == []


def test_sigkill_debris_is_swept_by_the_next_run(big_input: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_layer(big_input / "big.json", out)
    temp = wait_mid_write(proc, out)
    proc.kill()
    proc.communicate(timeout=60)
    assert partials(out) == [temp]  # SIGKILL cannot be caught: the temp blob stays
    later = run_ocibuild("layer", "--spec", str(big_input / "small.json"), "--out-dir", str(out),
                         cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    assert partials(out) == []  # the next writer in that directory removed it
    digest = json.loads(later.stdout)["digest"]
    assert sorted(p.name for p in (out / "blobs/sha256").iterdir()) == [digest[7:]]


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_sweep_removes_only_the_temps_of_dead_writers_of_this_pid_namespace(
        tmp_path: Path) -> None:
    ns = atomic._pid_namespace()
    dead, alive = dead_pid(), os.getppid()
    names = {
        "dead_file": f".partial-{dead}-{ns}-abc",
        "dead_dir": f".partial-{dead}-{ns}-dir",
        "alive": f".partial-{alive}-{ns}-abc",
        "other_namespace": f".partial-{dead}-1{ns}-abc",
        "old_style": ".partial-x1y2z3",  # not ours to judge: no PID in the name
        "blob": "a" * 64,
    }
    for key, name in names.items():
        (tmp_path / name).mkdir() if key == "dead_dir" else (tmp_path / name).write_bytes(b"x")
    (tmp_path / names["dead_dir"] / "blobs").mkdir()
    assert sorted(sweep_debris(str(tmp_path))) == sorted([names["dead_file"], names["dead_dir"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        names[k] for k in ("alive", "other_namespace", "old_style", "blob"))


def test_temp_file_sweeps_its_directory_when_it_is_created(tmp_path: Path) -> None:
    stale = tmp_path / f".partial-{dead_pid()}-{atomic._pid_namespace()}-zzz"
    stale.write_bytes(b"half a blob")
    with TempFile(str(tmp_path)) as tmp:
        assert os.path.basename(tmp.path).startswith(f".partial-{os.getpid()}-")
        tmp.file.write(b"whole")
        tmp.commit(str(tmp_path / "blob"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob"]


def test_atomic_directory_renames_on_success_and_removes_its_temp_on_failure(
        tmp_path: Path) -> None:
    target = tmp_path / "deep/out"
    with pytest.raises(RuntimeError):
        with atomic_directory(str(target)) as tmp:
            Path(tmp, "index.json").write_text("{}")
            raise RuntimeError("failed mid-way")
    assert not (tmp_path / "deep").exists()  # nor the parent it created
    with atomic_directory(str(target)) as tmp:
        Path(tmp, "index.json").write_text("{}")
    assert sorted(p.name for p in target.parent.iterdir()) == ["out"]
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    assert (target / "index.json").read_text() == "{}"


def test_atomic_directory_fills_an_empty_directory_and_refuses_a_full_one(
        tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with atomic_directory(str(tmp_path / "empty")) as tmp:
        Path(tmp, "x").write_text("x")
    assert (tmp_path / "empty/x").read_text() == "x"
    with pytest.raises(OciBuildError) as err:
        with atomic_directory(str(tmp_path / "empty")):
            raise AssertionError("not reached: refused before any work")
    assert str(err.value) == (
        f"the output directory {str(tmp_path / 'empty')!r} exists and is not empty; it is left "
        "as it is: give a new directory, or remove it first")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
