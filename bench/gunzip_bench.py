"""Benchmark gzip layer *decompression*: the standard library's gzip (zlib) against ISA-L's
igzip (python-isal, what `ocibuild.gunzip` reads base layers with).

    python bench/gunzip_bench.py [--size-mb 100] [--runs 5]

Generates a tar-like stream of SIZE MB from a fixed seed (half random bytes, as in wheels and
PEXes, half text), gzips it with libdeflate level 6 as `ocibuild layer` does, then times
reading it to the end through each reader, median of RUNS, and checks both give the same bytes.
Not a test: it takes a minute.
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src" / "python"))

from ocibuild import gunzip  # noqa: E402

MIB = 1 << 20
_WORDS = b"layer digest image manifest config blob tar gzip usr lib share python site".split()


def _payload(size: int) -> bytes:
    rng = random.Random(21)
    text = b"\n".join(b" ".join(rng.choice(_WORDS) for _ in range(12)) for _ in range(40_000))
    out, made = [], 0
    while made < size:
        piece = rng.getrandbits(MIB * 8).to_bytes(MIB, "little") if rng.random() < 0.5 \
            else text[:MIB]
        out.append(piece)
        made += len(piece)
    return b"".join(out)[:size]


def _time(read, blob: bytes, runs: int) -> tuple:
    times, out = [], b""
    for _ in range(runs):
        start = time.perf_counter()
        stream = read(io.BytesIO(blob))
        pieces = iter(lambda: stream.read(1 << 16), b"")  # as tarfile reads: 64 KiB at a time
        out = b"".join(pieces)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import deflate

    data = _payload(args.size_mb * MIB)
    blob = deflate.gzip_compress(data, 6)
    print(f"{len(data) / MIB:.0f} MiB in, {len(blob) / MIB:.1f} MiB gzip (libdeflate 6); "
          f"median of {args.runs}:")
    zlib_s, zlib_out = _time(lambda f: gzip.GzipFile(fileobj=f), blob, args.runs)
    isal_s, isal_out = _time(gunzip.reader, blob, args.runs)
    assert zlib_out == isal_out == data, "the readers disagree"
    for name, seconds in (("gzip.GzipFile (zlib)", zlib_s), ("ocibuild.gunzip (igzip)", isal_s)):
        print(f"  {name:24} {seconds:6.3f} s  {len(data) / MIB / seconds:7.0f} MiB/s")
    print(f"  igzip takes {isal_s / zlib_s:.0%} of zlib's time")


if __name__ == "__main__":
    main()
