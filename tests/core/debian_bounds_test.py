"""Compressed Debian inputs expand within bounds, and a .deb is read in bounded memory.

Every compressed input of the debian code (a Packages.xz, a .deb's control.tar and data.tar
in xz, gzip or zstd) may decompress to at most a ratio of its size (and a total); past it the
read stops before a byte beyond the bound is handed on. control.tar members that are not
used are skipped unread: the peak memory of reading a .deb is measured in a subprocess.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from ocibuild.debian import deb as debmod
from ocibuild.debian import layers, repository
from ocibuild.errors import OciBuildError
from tests.fixtures.debian_repo import ar_archive, hand_made_deb, tar_bytes

ZEROS = 8 << 20  # 8 MiB of zeros: a few KiB compressed, over 1000 times that expanded

COMPRESS = {
    "xz": lzma.compress,
    "gz": lambda data: gzip.compress(data, mtime=0),
    "zst": lambda data: zstandard.ZstdCompressor().compress(data),
}


def _bomb_tar() -> bytes:
    return tar_bytes([("dir", "./", ""), ("dir", "./usr/", ""),
                      ("file", "./usr/zeros", b"\0" * ZEROS)])


@pytest.mark.parametrize("suffix", ["xz", "gz", "zst"])
def test_a_data_tar_bomb_is_refused_before_the_bound(tmp_path: Path, suffix: str) -> None:
    data = COMPRESS[suffix](_bomb_tar())
    deb = hand_made_deb(tmp_path / "bomb.deb", [], data_member=(f"data.tar.{suffix}", data))
    limit = debmod.expansion_limit(len(data))
    assert limit < ZEROS
    out = io.BytesIO()
    with pytest.raises(OciBuildError) as err:
        layers.write_packages_layer([str(deb)], out)
    assert str(err.value) == (
        f"{deb}: data.tar.{suffix} decompresses to more than {limit} bytes from {len(data)} "
        f"(at most {debmod.RATIO} times its size, {debmod.MAX_EXPANSION} bytes in all); "
        "refusing a decompression bomb")
    # The layer holds headers and what was read, never a byte of the member past the bound.
    assert len(out.getvalue()) <= limit


def test_a_control_tar_bomb_is_refused(tmp_path: Path) -> None:
    control = tar_bytes([("dir", "./", ""),
                         ("file", "./control", "Package: c\nVersion: 1\nArchitecture: all\n"),
                         ("file", "./unused", b"\0" * ZEROS)])
    deb = tmp_path / "c.deb"
    packed = gzip.compress(control, mtime=0)
    deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.gz", packed),
                                ("data.tar.xz", lzma.compress(tar_bytes([("dir", "./", "")])))]))
    with pytest.raises(OciBuildError, match=rf"c.deb: control.tar.gz decompresses to more than "
                                            rf"{debmod.expansion_limit(len(packed))} bytes"):
        debmod.control_files(str(deb))


def test_real_ratios_pass(tmp_path: Path) -> None:
    """Text compressed 100 times (above any real control.tar, near the largest real data.tar
    ratio of 178) is read whole."""
    rng = random.Random(0)
    block = bytes(rng.choice(b"0123456789abcdef:,{}") for _ in range(20000))
    text = block * 250  # a 20 KB block repeated: about 250 times smaller compressed
    data = lzma.compress(tar_bytes([("dir", "./", ""), ("file", "./usr/tz.json", text)]))
    assert 100 < len(text) / len(data) < debmod.RATIO
    deb = hand_made_deb(tmp_path / "ok.deb", [], data_member=("data.tar.xz", data))
    out = io.BytesIO()
    layers.write_packages_layer([str(deb)], out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        assert tar.extractfile("usr/tz.json").read() == text


def test_a_packages_index_bomb_is_refused() -> None:
    paragraph = (b"Package: a\nVersion: 1\nArchitecture: all\nFilename: pool/a.deb\nSize: 1\n"
                 b"SHA256: " + b"0" * 64 + b"\n\n")
    data = lzma.compress(paragraph * 100000)  # 13 MB from a few KiB: a valid, huge index
    with pytest.raises(OciBuildError) as err:
        repository._decompress_xz(data, "http://m/Packages.xz", repository.PACKAGES_MAX_BYTES)
    assert str(err.value) == (
        f"http://m/Packages.xz decompresses to more than {1 << 20} bytes (at most 100 times "
        f"its {len(data)} bytes, {repository.PACKAGES_MAX_BYTES} in all); refusing a "
        "decompression bomb")
    # A real index (about 5 times) is fine.
    assert repository._decompress_xz(lzma.compress(paragraph), "u", 1 << 30) == paragraph


# tracemalloc's peak, not ru_maxrss: Linux keeps the parent's maximum across fork and exec.
_PEAK = """
import sys, tracemalloc
from ocibuild.debian import deb
deb.RATIO = 10 ** 6  # measure memory alone, not the bomb bound
tracemalloc.start()
files = deb.control_files(sys.argv[1])
assert sorted(files) == ["control"], sorted(files)
print(tracemalloc.get_traced_memory()[1] >> 20)
"""


def test_unused_control_members_cost_no_memory(tmp_path: Path) -> None:
    """20 members of 15 MiB each (each under the per-file bound) in a 60 KiB .deb: read
    whole, they took 300 MiB; skipped unread, the peak stays that of the interpreter."""
    members = [("dir", "./", ""), ("file", "./control", "Package: m\nVersion: 1\n")]
    members += [("file", f"./extra{i}", b"\0" * (15 << 20)) for i in range(20)]
    deb = tmp_path / "m.deb"
    deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"),
                                ("control.tar.xz", lzma.compress(tar_bytes(members))),
                                ("data.tar.xz", lzma.compress(tar_bytes([("dir", "./", "")])))]))
    assert deb.stat().st_size < 100 << 10
    done = subprocess.run([sys.executable, "-c", _PEAK, str(deb)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 32, f"peak {done.stdout.strip()} MiB"


def test_a_used_control_member_is_still_bounded(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debmod, "MAX_CONTROL_FILE", 1000)
    postinst = "#!/bin/sh\n" + "true\n" * 1000
    control = tar_bytes([("dir", "./", ""), ("file", "./control", "Package: p\n"),
                         ("file", "./postinst", postinst)])
    deb = tmp_path / "p.deb"
    deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"),
                                ("control.tar.gz", gzip.compress(control, mtime=0)),
                                ("data.tar.xz", lzma.compress(tar_bytes([("dir", "./", "")])))]))
    with pytest.raises(OciBuildError, match=r"p.deb: control.tar: ./postinst is 5010 bytes, over "
                                            "the 1000-byte limit"):
        debmod.control_files(str(deb))
