"""gzip layers have the same bytes on every machine: any CPython, any CPU code path, any
number of threads. Pinned by golden digests, which every run below must reproduce.

The golden digests cannot come from an independent compressor (nothing else produces
libdeflate's bytes); what is independent is the check of what they contain: Python's gzip
module and GNU gzip decompress them to the input, hashed here by hashlib. A change of the
`deflate` pin or of pgzip that changes bytes fails here: recompute the digests with
`compressed_digests()`, bump `pgzip N` in `compressor_version()`, and say so in the commit.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import platform
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import List

import pytest

from .gzip_golden import GOLDEN, INPUT_SHA256, LEVELS, PROBE, compress, layer_input

def test_golden_digests_and_their_content() -> None:
    data = layer_input()
    assert hashlib.sha256(data).hexdigest() == INPUT_SHA256
    for level in LEVELS:
        blob = compress(data, level)
        assert hashlib.sha256(blob).hexdigest() == GOLDEN[str(level)], level
        assert gzip.decompress(blob) == data
        assert subprocess.run(["gzip", "-t"], input=blob).returncode == 0
        assert compress(data, level, threads=1) == compress(data, level, threads=5) == blob


def _interpreters() -> List[str]:
    found = {}
    for python in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3"))):
        found[python.split("/versions/")[1].split("/")[0].rsplit(".", 1)[0]] = python
    # 3.9: the test's own wheel (cp39); 3.11 and later: the cp311-abi3 wheel. Not 3.10: its
    # wheel (cp310) is not in any PEX here, and the abi3 one is not what pip installs there.
    return [found[v] for v in ("3.9", "3.11", "3.12", "3.13") if v in found]


def _deflate_path(python: str, tmp_path: Path) -> str:
    """A sys.path entry with the pinned `deflate` for `python`: the test's own for this
    interpreter's version; for 3.11 and later, the cp311-abi3 wheel from the PEX that
    tests/core/BUILD builds from the lockfile (no network here: Pants fetched it)."""
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version == str(sys.version_info[:2]):
        import deflate

        return str(Path(deflate.__file__).parent.parent)
    pex = Path("tests.core/deflate-abi3.pex")
    if not pex.exists():
        pytest.skip(f"{pex} is built by `./pants test` (runtime_package_dependencies); "
                    "run this test through Pants to compare interpreters")
    target = tmp_path / "abi3"
    with zipfile.ZipFile(pex) as zf:
        wheels = {n.split("/")[1] for n in zf.namelist() if n.startswith(".deps/deflate-")}
        assert len(wheels) == 1 and "-cp311-abi3-" in next(iter(wheels)), wheels
        zf.extractall(target, [n for n in zf.namelist() if n.startswith(".deps/deflate-")])
    return str(target / ".deps" / wheels.pop())


@pytest.mark.parametrize("cpu", ["native", "generic"])
def test_same_bytes_under_every_interpreter_and_cpu_path(tmp_path: Path, cpu: str) -> None:
    interpreters = _interpreters() or [sys.executable]
    src = str(Path(__import__("ocibuild").__file__).parent.parent)
    here = str(Path(__file__).parent)
    seen = []
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    for python in interpreters:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "PYTHONPATH": _deflate_path(python, tmp_path)}
        result = subprocess.run([python, str(probe), src, cpu, here], env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["c_api"], report  # the GIL-free path is the one in use
        if cpu == "generic":  # no optional CPU feature left on
            assert all(word == 1 << 31 for word in report["features"].values()), report
        assert report["digests"] == GOLDEN, report
        # Left alone, the word stays 0 when nothing consulted it: then compressing (CRC-32
        # included) took no CPU-dependent branch at all in this build of the wheel.
        seen.append(f"{report['python']} (features {report['features']})")
    print(f"{cpu} CPU paths, {platform.machine()}: identical under CPython {'; '.join(seen)}")


def test_zlib_engine_stays_available() -> None:
    data = layer_input()
    blob = compress(data, 6, engine="zlib")
    assert gzip.decompress(blob) == data
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # one member, as before
    assert compress(data, 6, threads=1, engine="zlib") == blob
