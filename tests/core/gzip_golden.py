"""The input and settings of the golden gzip digests (gzip_reproducible_test.py). No pytest:
the test also runs this under other interpreters, from PEXes that hold only `deflate`."""

from __future__ import annotations

import hashlib
import io
from typing import Dict, Optional

from ocibuild.layer.compression import LayerWriter

LEVELS = (0, 1, 4, 6, 9, 12)


def layer_input() -> bytes:
    """~3.3 MB: text, incompressible noise (stored blocks), a mix, and a short last block."""
    text = b"".join(b"%d: layer digest image manifest config blob %x\n" % (i, i * i)
                    for i in range(30_000))
    noise = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(40_000))
    mixed = b"".join(noise[i:i + 3000] + text[i:i + 2000] for i in range(0, 400_000, 5000))
    return text + noise + mixed + b"tail"


def compress(data: bytes, level: int, threads: int = 2,
             engine: Optional[str] = None) -> bytes:
    out = io.BytesIO()
    writer = LayerWriter(out, "gzip", level, threads=threads, engine=engine)
    for i in range(0, len(data), 100_003):  # writes that do not line up with blocks
        writer.write(data[i:i + 100_003])
    writer.close()
    return out.getvalue()


def compressed_digests() -> Dict[str, str]:
    data = layer_input()
    return {str(level): hashlib.sha256(compress(data, level)).hexdigest() for level in LEVELS}


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
