"""gzip layers decompressed through igzip (ocibuild.gunzip) give what the standard library's
gzip gives, or both refuse, and every refusal is one the layer readers catch (`unreadable()`).

Inputs: random and compressible payloads (empty included) compressed by gzip, zlib and
libdeflate (`deflate`), as one member or many, with every optional header field, and then cut,
flipped, padded or followed by garbage. The one known difference (a wrong header CRC-16, which
igzip refuses and the standard library skips unread) is asserted as exactly that.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from typing import List, Optional, Tuple

import deflate
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild import gunzip, mediatypes
from ocibuild.bounded_decompress import BETWEEN, open_decompressed
from ocibuild.errors import OciBuildError
from ocibuild.layer.stream import decompressed, unreadable

EXAMPLES = 1500
FTEXT, FHCRC, FEXTRA, FNAME, FCOMMENT = 1, 2, 4, 8, 16

_WORDS = st.sampled_from([b"usr/", b"lib/", b"\x00" * 512, b"ustar", b"hello ", b"\n", b"\xff"])
PAYLOADS = st.one_of(
    st.just(b""),
    st.binary(max_size=3000),
    st.lists(_WORDS, max_size=400).map(b"".join),
    st.binary(min_size=1, max_size=8).flatmap(
        lambda unit: st.integers(1, 20000).map(lambda n: (unit * n)[:70000])),
)


def _header(flags: int, name: bytes, comment: bytes, extra: bytes, crc_ok: bool) -> bytes:
    head = b"\x1f\x8b\x08" + bytes([flags]) + b"\x00\x00\x00\x00\x00\xff"
    if flags & FEXTRA:
        head += struct.pack("<H", len(extra)) + extra
    if flags & FNAME:
        head += name + b"\x00"
    if flags & FCOMMENT:
        head += comment + b"\x00"
    if flags & FHCRC:
        crc = zlib.crc32(head) & 0xFFFF
        head += struct.pack("<H", crc if crc_ok else crc ^ 0x5A5A)
    return head


@st.composite
def members(draw) -> bytes:
    """One gzip member of a payload, from one of three compressors or a header of our own."""
    data = draw(PAYLOADS)
    how = draw(st.sampled_from(["gzip", "deflate", "zlib", "header"]))
    level = draw(st.integers(0, 9))
    if how == "gzip":
        return gzip.compress(data, compresslevel=level, mtime=0)
    if how == "deflate":
        return deflate.gzip_compress(data, draw(st.integers(1, 12)))
    if how == "zlib":
        out = zlib.compressobj(level, zlib.DEFLATED, 31)
        return out.compress(data) + out.flush()
    raw = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = raw.compress(data) + raw.flush()
    text = st.binary(max_size=20).map(lambda b: b.replace(b"\x00", b""))
    head = _header(draw(st.integers(0, 31)), draw(text), draw(text),
                   draw(st.binary(max_size=20)), draw(st.booleans()))
    return head + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


@st.composite
def streams(draw) -> bytes:
    """Members concatenated (zero padding between some), then damaged or not."""
    parts = draw(st.lists(members(), min_size=0, max_size=4))
    blob = b"".join(p + b"\x00" * draw(st.sampled_from([0, 0, 1, 7])) for p in parts)
    damage = draw(st.sampled_from(["none", "cut", "flip", "suffix", "splice"]))
    if damage == "cut" and blob:
        blob = blob[:draw(st.integers(0, len(blob) - 1))]
    elif damage == "flip" and blob:
        at = draw(st.integers(0, len(blob) - 1))
        blob = blob[:at] + bytes([blob[at] ^ draw(st.integers(1, 255))]) + blob[at + 1:]
    elif damage == "suffix":
        blob += draw(st.sampled_from([b"garbage", b"\x1f", b"\x1f\x8b", b"\x1f\x8b\x08",
                                      b"\x00" * 9 + b"x", b"\x1f\x8b\x08\x00" + bytes(6)]))
    elif damage == "splice" and blob:
        at = draw(st.integers(0, len(blob)))
        blob = blob[:at] + draw(st.binary(min_size=1, max_size=16)) + blob[at:]
    return blob


def _outcome(read) -> Tuple[Optional[bytes], Optional[BaseException]]:
    try:
        return read(), None
    except Exception as err:  # noqa: BLE001 - whatever it is, it is compared below
        return None, err


def _chunked(stream, sizes: List[int]) -> bytes:
    """Read as tarfile reads: pieces of varying size, to the end."""
    out, i = [], 0
    while True:
        piece = stream.read(sizes[i % len(sizes)])
        if not piece:
            return b"".join(out)
        out.append(piece)
        i += 1


def _wrong_header_crc(blob: bytes) -> bool:
    """Whether a member the standard library reads whole has FHCRC set and a wrong CRC-16
    (walked as gzip.py walks members: header, raw deflate, trailer, zero padding)."""
    at = 0
    while at < len(blob):
        flags, head_end = blob[at + 3], at + 10
        if flags & FEXTRA:
            head_end += 2 + struct.unpack_from("<H", blob, head_end)[0]
        for field in (FNAME, FCOMMENT):
            if flags & field:
                head_end = blob.index(b"\x00", head_end) + 1
        if flags & FHCRC:
            (stored,) = struct.unpack_from("<H", blob, head_end)
            if stored != zlib.crc32(blob[at:head_end]) & 0xFFFF:
                return True
            head_end += 2
        inflater = zlib.decompressobj(-15)
        inflater.decompress(blob[head_end:])
        at = len(blob) - len(inflater.unused_data) + 8
        while at < len(blob) and blob[at] == 0:
            at += 1
    return False


_counted = {"cases": 0, "accepted": 0, "refused": 0, "header_crc": 0}


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(blob=streams(), sizes=st.lists(st.integers(1, 70000), min_size=1, max_size=4),
       media_type=st.sampled_from([mediatypes.OCI_LAYER_GZIP, mediatypes.DOCKER_LAYER_GZIP]))
def test_igzip_reads_what_gzip_reads_and_refuses_what_it_refuses(blob, sizes, media_type):
    want, stdlib_err = _outcome(lambda: gzip.GzipFile(fileobj=io.BytesIO(blob)).read())
    got, err = _outcome(lambda: decompressed(media_type, io.BytesIO(blob)).read())
    chunked, chunked_err = _outcome(
        lambda: _chunked(decompressed(media_type, io.BytesIO(blob)), sizes))
    _counted["cases"] += 1
    assert (chunked, type(chunked_err)) == (got, type(err))
    if err is not None:
        assert isinstance(err, unreadable()), repr(err)
    if stdlib_err is not None:
        assert isinstance(stdlib_err, unreadable()), repr(stdlib_err)
    if want is not None and err is not None:
        # The one difference: igzip checks the header CRC-16 the standard library skips.
        assert str(err).startswith("Corrupted gzip header. Checksums do not match"), repr(err)
        assert _wrong_header_crc(blob)
        _counted["header_crc"] += 1
        return
    assert (got is None) == (want is None), (repr(stdlib_err), repr(err))
    assert got == want
    _counted["accepted" if got is not None else "refused"] += 1


@settings(max_examples=EXAMPLES // 3, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(blob=streams())
def test_the_bounded_reader_reads_what_gzip_reads_or_names_the_input(blob):
    """bounded_decompress (OCI archives, a RUN step's rootfs) through igzip, over a reader
    with `read` only: the stdlib's bytes, or one OciBuildError naming the input."""
    if not blob.startswith(b"\x1f\x8b"):
        blob = gzip.compress(b"", mtime=0) + blob
    want, stdlib_err = _outcome(lambda: gzip.GzipFile(fileobj=io.BytesIO(blob)).read())

    class ReadOnly:
        def __init__(self) -> None:
            self.raw = io.BytesIO(blob)

        def read(self, n: int = -1) -> bytes:
            return self.raw.read(n)

    def read() -> bytes:
        with open_decompressed(ReadOnly(), "layer.tar.gz", len(blob)) as stream:  # type: ignore
            return _chunked(stream, [65536])

    got, err = _outcome(read)
    if err is not None and "bytes between two members' data" in str(err):
        # Its 1 MiB window between tar members: the same bytes out of either reader.
        assert want is not None and len(want) > BETWEEN, repr(stdlib_err)
        return
    if err is not None:
        assert isinstance(err, OciBuildError), repr(err)
        assert str(err).startswith("layer.tar.gz is not readable gzip data (corrupt or "
                                   "truncated): ")
    if want is not None and err is not None:
        assert "Corrupted gzip header. Checksums do not match" in str(err)
        assert _wrong_header_crc(blob)
        return
    assert got == want


def test_the_known_malformed_inputs_exactly() -> None:
    """Each outcome that differs in kind from the standard library's, named."""
    good = gzip.compress(b"hello\n" * 1000, mtime=0)
    wrong_crc = _header(FHCRC | FNAME, b"layer.tar", b"", b"", crc_ok=False) + good[10:]
    right_crc = _header(FHCRC | FNAME, b"layer.tar", b"", b"", crc_ok=True) + good[10:]

    def fails(blob: bytes) -> str:
        with pytest.raises(unreadable()) as err:
            decompressed(mediatypes.OCI_LAYER_GZIP, io.BytesIO(blob)).read()
        return f"{type(err.value).__name__}: {err.value}"

    assert decompressed(mediatypes.OCI_LAYER_GZIP, io.BytesIO(right_crc)).read() == \
        b"hello\n" * 1000
    assert gzip.GzipFile(fileobj=io.BytesIO(wrong_crc)).read() == b"hello\n" * 1000
    assert fails(wrong_crc).startswith(
        "BadGzipFile: Corrupted gzip header. Checksums do not match: ")
    # The standard library says BadGzipFile("Not a gzipped file (b'ga')") for these.
    assert fails(good + b"garbage") == ("EOFError: Compressed file ended before the "
                                        "end-of-stream marker was reached")
    assert fails(b"\x1f") == ("EOFError: Compressed file ended before the end-of-stream "
                              "marker was reached")
    # A bad deflate stream: igzip's own error, which is neither zlib.error nor OSError.
    flipped = bytearray(gzip.compress(bytes(range(256)) * 40 + b"abc" * 5000, mtime=0))
    flipped[10] ^= 0xFF
    assert fails(bytes(flipped)) == "IsalError: Error -1 Invalid deflate block found"
    assert fails(good[:-4]) == ("EOFError: Compressed file ended before the end-of-stream "
                                "marker was reached")
    assert fails(good[:-8] + bytes([good[-8] ^ 1]) + good[-7:]).startswith(
        "BadGzipFile: CRC check failed ")
    assert fails(good[:-4] + bytes([good[-4] ^ 1]) + good[-3:]) == \
        "BadGzipFile: Incorrect length of data produced"


def test_igzip_is_the_reader() -> None:
    """isal is a requirement of the tool: the layers are read by igzip, not the fallback."""
    from isal import igzip

    assert isinstance(gunzip.reader(io.BytesIO(b"")), igzip.IGzipFile)


def teardown_module() -> None:
    print(f"\ngunzip_test generated cases: {_counted}")
