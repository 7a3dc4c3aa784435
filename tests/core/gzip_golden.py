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
