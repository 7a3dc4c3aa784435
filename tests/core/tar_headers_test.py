"""ocibuild.layer.headers against tarfile: on generated archives and damaged ones, the fast
reader gives exactly the members (and bytes) tarfile gives, or says `Unusual` (and the
layer is read again by tarfile). Never a different member, never another exception."""

from __future__ import annotations

import io
import tarfile
from typing import List, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild.layer import headers, tarinfo
from ocibuild.layer.forward import open_tar
from ocibuild.layer.stream import unreadable

CASES = 400
FORMATS = (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT)
TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
         tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE)


def _xattrs(member) -> List[Tuple[str, str]]:
    """What the unpacker takes from a member's pax records (rootfs/unpack.py `_xattrs`)."""
    return sorted((k, v) for k, v in member.pax_headers.items() if k.startswith("SCHILY.xattr."))


def _by_tarfile(data: bytes) -> Tuple[List[tuple], bool]:
    """Members as tarfile reads them, and whether it read the archive to its end."""
    found: List[tuple] = []
    try:
        with open_tar(io.BytesIO(data)) as tar:
            for m in tar:
                body = tar.extractfile(m).read() if m.isreg() else b""
                found.append((m.name, m.type, m.mode, m.uid, m.gid, m.size, m.linkname,
                              m.devmajor, m.devminor, m.offset_data, m.mtime, _xattrs(m), body))
    except unreadable():
        return found, False
    return found, True


def _by_headers(data: bytes):
    """Members as the fast reader reads them, or None when it finds the archive unusual."""
    found: List[tuple] = []
    reader = headers.Reader(io.BytesIO(data))
    try:
        for m in reader:
            body = reader.read(m, m.size) if m.isreg() else b""
            found.append((m.name, m.type, m.mode, m.uid, m.gid, m.size, m.linkname,
                          m.devmajor, m.devminor, m.offset_data, m.mtime, _xattrs(m), body))
    except headers.Unusual:
        return None
    return found


def _agree(data: bytes) -> bool:
    """True when the fast reader vouched for `data` (and then it agreed with tarfile)."""
    fast = _by_headers(data)
    slow, complete = _by_tarfile(data)
    if fast is None:
        return False
    assert complete, "the fast reader read to the end an archive tarfile refuses"
    assert fast == slow
    return True


_segment = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
            min_size=1, max_size=12),
    st.binary(min_size=1, max_size=8).filter(lambda b: b"/" not in b and b"\0" not in b)
    .map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.sampled_from([".", "..", ".wh.x", ".wh..wh..opq", "a" * 99, "b" * 150]),
)
_name = st.lists(_segment, min_size=1, max_size=4).map("/".join)
_number = st.one_of(st.integers(0, 0o7777777), st.integers(0, 1 << 40))


@st.composite
def _member(draw):
    info = tarfile.TarInfo(draw(_name) + draw(st.sampled_from(["", "/"])))
    info.type = draw(st.sampled_from(TYPES))
    info.mode = draw(st.integers(0, 0o7777))
    info.uid, info.gid = draw(_number), draw(_number)
    info.mtime = draw(st.integers(0, 1 << 34))
    info.uname = draw(st.sampled_from(["", "root", "ü" * 3]))
    info.pax_headers = draw(st.sampled_from([{}, {}, {"SCHILY.xattr.user.a": "v"},
                                             {"SCHILY.xattr.security.capability": "\x01\x00"},
                                             {"mtime": "1700000000.25"}]))
    if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = draw(_name)
    if info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = draw(st.integers(0, 4095)), draw(st.integers(0, 4095))
    body = b""
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
        body = draw(st.binary(max_size=1200))
        info.size = len(body)
    return info, body


def _archive(fmt: int, members) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for info, body in members:
            try:
                tar.addfile(info, io.BytesIO(body))
            except ValueError:
                pass  # too long or too large for this format: tarfile writes nothing
    return out.getvalue()


_archives = st.builds(_archive, st.sampled_from(FORMATS), st.lists(_member(), max_size=6))


def _headers_at(data: bytes) -> List[int]:
    """Offsets of the 512-byte blocks that hold a valid header (whatever tarfile reads)."""
    return [i for i in range(0, len(data) - 511, 512)
            if data[i:i + 512].count(0) != 512 and _checksum_ok(data[i:i + 512])]


def _checksum_ok(block: bytes) -> bool:
    try:
        return tarfile.nti(block[148:156]) in tarfile.calc_chksums(block)
    except tarfile.HeaderError:
        return False


def _with_checksum(block: bytearray) -> bytes:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % (256 + sum(block) - 8 * 32)
    return bytes(block)


@settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck))
@given(_archives)
def test_well_formed_archives_read_alike(data):
    vouched = _agree(data)
    fast = _by_headers(data)
    # What it may leave to tarfile: a pax header it does not parse (hdrcharset for a name
    # that is no UTF-8), numbers it cannot take; nothing a well-formed UTF-8 archive has.
    if not vouched:
        assert b"hdrcharset" in data or fast is None


@settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck))
@given(_archives, st.data())
def test_damaged_headers_with_good_checksums_read_alike_or_are_unusual(data, draw):
    blocks = _headers_at(data)
    if not blocks:
        return
    damaged = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        at = draw.draw(st.sampled_from(blocks))
        field = draw.draw(st.integers(0, 499))
        damaged[at + field] = draw.draw(st.sampled_from(
            [0, 0x20, ord("0"), ord("7"), ord("8"), ord("/"), ord("-"), ord("+"), 0x80, 0xFF,
             *b"0123456LKxgS\n=", draw.draw(st.integers(0, 255))]))
        damaged[at:at + 512] = _with_checksum(bytearray(damaged[at:at + 512]))
    _agree(bytes(damaged))


@settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck))
@given(_archives, st.data())
def test_cut_or_spliced_archives_read_alike_or_are_unusual(data, draw):
    how = draw.draw(st.sampled_from(["cut", "byte", "zeros", "repeat"]))
    at = draw.draw(st.integers(0, max(0, len(data) - 1)))
    if how == "cut":
        data = data[:at]
    elif how == "byte" and data:
        data = data[:at] + bytes([draw.draw(st.integers(0, 255))]) + data[at + 1:]
    elif how == "zeros":
        data = data[:at // 512 * 512] + bytes(512) + data[at // 512 * 512:]
    else:
        block = at // 512 * 512
        data = data[:block] + data[block:block + 1024] + data[block:]
    _agree(data)


_record_text = st.sampled_from(["path", "linkpath", "size", "uid", "gid", "mtime", "uname",
                                "comment", "SCHILY.xattr.user.x", "hdrcharset", "GNU.sparse.size",
                                "path=x", ""])


@st.composite
def _pax_data(draw):
    """Records as a writer makes them, and some a hostile one makes: wrong lengths, no
    newline, no '=', values that are no numbers, padding that is not NUL."""
    out = b""
    for _ in range(draw(st.integers(0, 4))):
        key = draw(_record_text).encode()
        value = draw(st.one_of(st.sampled_from(["0", "12", "-3", " 7", "1_0", "x", "a/b/",
                                                "é", "9" * 30]).map(str.encode),
                               st.binary(max_size=6)))
        body = b" " + key + b"=" + value + b"\n"
        length = len(body) + len(str(len(body)))
        length = len(body) + len(str(length))  # the digits count themselves
        length = draw(st.sampled_from([length, length, length, length - 1, length + 1, 0, 3]))
        record = str(length).encode() + body
        if draw(st.integers(0, 9)) == 0:
            record = record[:-1]
        out += record
    out += draw(st.sampled_from([b"", b"", b"\0", b"junk"]))
    return out


def _raw(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info.tobuf(tarfile.USTAR_FORMAT)


@settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from([tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                                           tarfile.GNUTYPE_LONGLINK, tarfile.XGLTYPE]),
                          _pax_data()), max_size=5),
       _member())
def test_extended_headers_read_alike_or_are_unusual(extended, member):
    data = b""
    for kind, payload in extended:
        data += _raw("././@Extended", kind, len(payload))
        data += payload + bytes(-len(payload) % 512)
    info, body = member
    try:
        data += info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    except ValueError:
        return
    data += body + bytes(-len(body) % 512) + bytes(1024)
    _agree(data)


def _chain(links: int) -> bytes:
    data = b""
    for _ in range(links):
        data += _raw("././@LongLink", tarfile.GNUTYPE_LONGNAME, 5) + b"name\0" + bytes(507)
    return data + _raw("x", tarfile.REGTYPE, 0) + bytes(1024)


def test_extended_headers_in_a_row_are_bounded_alike():
    most = tarinfo.MAX_EXTENDED_CHAIN - 1
    assert _agree(_chain(most))
    assert _by_tarfile(_chain(most))[0][0][:2] == ("name", tarfile.REGTYPE)
    for links in (most + 1, 3000):  # 3,000: tarfile's own recursion ended in RecursionError
        assert _by_headers(_chain(links)) is None
        assert _by_tarfile(_chain(links)) == ([], False)


def test_a_common_layer_is_vouched_for():
    members = []
    for i in range(30):
        info = tarfile.TarInfo(f"usr/share/doc/pkg{i}/" + "long-file-name-" * 8 + str(i))
        body = b"x" * i
        info.size = len(body)
        members.append((info, body))
        link = tarfile.TarInfo(f"usr/lib/l{i}")
        link.type, link.linkname = tarfile.SYMTYPE, "../share/" + "t" * 120
        members.append((link, b""))
    for fmt in FORMATS:
        assert _agree(_archive(fmt, members))
