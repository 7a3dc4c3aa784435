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

from .gzip_golden import LEVELS, compress, layer_input

# `compressed_digests()`: the blob of `layer_input()` at each level (libdeflate's scale).
GOLDEN = {
    "0": "2566618b462d4f968690c80285204272e09c6cebdf519eee0e24be6824a5ca9d",
    "1": "4e4e74770787b5590ac4eb58a5d3a32fc3d7135a59bae1d7916e4244f387c943",
    "4": "cb2d16aaa87b8509a38b0da0df7afbc8453f2e33dd79fed2b6924734cd890855",
    "6": "e9415d4fb9dca29246ac4dad6e2f5bc5bbf167a0b5fc8818ed35b061e9d038eb",
    "9": "07940c7eadc79617fdde89d658459d41d1cf333718839d9588b991396bfef75f",
    "12": "f7af50c4c7c5d403b654e0ccaf13e414594f877e3e6b36e6d31dd75be3f431cf",
}
INPUT_SHA256 = "70f56bf596749cddd37de4354d86c9692915cb111cc58d1239cdc5b8c11590e0"

# Runs in a fresh interpreter: `cpu` "generic" tells libdeflate, before its first call, that
# the CPU has no optional features, so it takes its portable code paths; "native" lets it
# detect them. (libdeflate reads its feature word only while it is 0; bit 31 means "known".)
PROBE = r'''
import ctypes, hashlib, io, json, platform, sys
sys.path.insert(0, sys.argv[1])
cpu = sys.argv[2]
import deflate
lib = ctypes.CDLL(deflate._deflate.__file__)
for name in ("libdeflate_x86_cpu_features", "libdeflate_arm_cpu_features"):
    try:
        word = ctypes.c_uint32.in_dll(lib, name)
    except ValueError:
        continue
    if cpu == "generic":
        word.value = 1 << 31
from ocibuild.layer import libdeflate
from ocibuild.layer.compression import LayerWriter
sys.path.insert(0, sys.argv[3])
from gzip_golden import compressed_digests
features = {}
for name in ("libdeflate_x86_cpu_features", "libdeflate_arm_cpu_features"):
    try:
        features[name] = ctypes.c_uint32.in_dll(lib, name).value
    except ValueError:
        pass
print(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                  "c_api": libdeflate.uses_c_api(), "features": features,
                  "digests": compressed_digests()}))
'''


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
