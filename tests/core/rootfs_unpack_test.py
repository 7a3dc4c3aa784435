"""unpack: OCI whiteout semantics, the ledger it keeps, and no write ever leaving the root."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.ledger import Ledger
from ocibuild.rootfs.unpack import unpack

TAR = "application/vnd.oci.image.layer.v1.tar"


def make_layer(path, members):
    """members: (name, type, extra) with extra the content, or link target."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o644
            data = extra if kind == tarfile.REGTYPE else b""
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = extra
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(out.getvalue())
    return (str(path), TAR)


def test_whiteouts_and_opaque_directories(tmp_path):
    d, f = tarfile.DIRTYPE, tarfile.REGTYPE
    low = make_layer(tmp_path / "1.tar", [("a", d, b""), ("a/x", f, b"x"), ("a/y", f, b"y"),
                                          ("b", f, b"b"), ("c", d, b""), ("c/z", f, b"z")])
    up = make_layer(tmp_path / "2.tar", [("a/.wh..wh..opq", f, b""), ("a/new", f, b"n"),
                                         (".wh.b", f, b""), ("c/.wh.z", f, b"")])
    unpack([low, up], str(tmp_path / "r"), Ledger(real=False))
    found = sorted(os.path.relpath(os.path.join(p, n), tmp_path / "r")
                   for p, ds, fs in os.walk(tmp_path / "r") for n in ds + fs)
    assert found == ["a", "a/new", "c"]


@pytest.mark.skipif(os.geteuid() != 0, reason="file capabilities are set by root")
def test_a_file_capability_is_on_disk_as_root_and_in_a_steps_layer(tmp_path):
    """As root the capability stayed in the tar: the step saw none (`getcap`), and a step
    that only chmods the file layered it without its cap_net_raw (the snapshot reads xattrs
    from disk), where docker keeps it."""
    import struct

    from ocibuild.rootfs.diff import layer_entries
    from ocibuild.rootfs.snapshot import snapshot

    cap = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # v2, effective: cap_net_raw
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ping = tarfile.TarInfo("ping")
        ping.mode, ping.uid, ping.gid, ping.size = 0o755, 0, 0, 2
        ping.pax_headers = {"SCHILY.xattr.security.capability": cap.decode("latin-1"),
                            "SCHILY.xattr.user.note": "n"}
        tar.addfile(ping, io.BytesIO(b"pi"))
    (tmp_path / "l.tar").write_bytes(out.getvalue())
    root = tmp_path / "r"
    ledger = unpack([(str(tmp_path / "l.tar"), TAR)], str(root), Ledger(real=True))
    assert os.getxattr(root / "ping", "security.capability") == cap
    before = snapshot(str(root), ledger)
    os.chmod(root / "ping", 0o4755)  # what `RUN chmod u+s /ping` does
    entries = layer_entries(before, snapshot(str(root), ledger, before=False), str(root), 0)
    assert [(e.path, oct(e.mode), e.xattrs) for e in entries] == [
        ("ping", "0o4755", (("security.capability", cap),))]


def test_owners_setid_and_devices_go_to_the_ledger_not_the_disk(tmp_path):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        su = tarfile.TarInfo("su")
        su.mode, su.uid, su.gid, su.size = 0o4755, 0, 0, 2
        su.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00"}
        tar.addfile(su, io.BytesIO(b"su"))
        null = tarfile.TarInfo("null")
        null.type, null.mode, null.devmajor, null.devminor = tarfile.CHRTYPE, 0o666, 1, 3
        tar.addfile(null)
        home = tarfile.TarInfo("home")
        home.type, home.mode, home.uid, home.gid = tarfile.DIRTYPE, 0o500, 1000, 1000
        tar.addfile(home)
    (tmp_path / "l.tar").write_bytes(out.getvalue())
    root = tmp_path / "r"
    ledger = unpack([(str(tmp_path / "l.tar"), TAR)], str(root), Ledger(real=False))
    assert oct(os.lstat(root / "su").st_mode) == "0o100755"  # no set-id bit on the host
    assert oct(os.lstat(root / "null").st_mode) == "0o100666"  # a stand-in file
    assert oct(os.lstat(root / "home").st_mode) == "0o40700"  # the build user can write in it
    su_meta = ledger.records["su"].meta
    assert (su_meta.mode, su_meta.xattrs) == (0o4755, (("security.capability", b"\x01\x00"),))
    null_meta = ledger.records["null"].meta
    assert (null_meta.kind, null_meta.mode, null_meta.device) == ("chardev", 0o666, (1, 3))
    home_meta = ledger.records["home"].meta
    assert (home_meta.mode, home_meta.uid, home_meta.gid) == (0o500, 1000, 1000)
    assert Ledger.from_json(ledger.to_json()).to_json() == ledger.to_json()


# Every way we know for a layer to aim a write outside the root: through a symlink made in
# the same or an earlier layer (absolute, relative, chained, to the root's parent), by '..'
# in a name, and by a hard link naming a host path.
ESCAPES = [
    [[("etc", tarfile.SYMTYPE, "/OUTSIDE")], [("etc/x", tarfile.REGTYPE, b"pwned")]],
    [[("etc", tarfile.SYMTYPE, "../OUTSIDE"), ("etc/x", tarfile.REGTYPE, b"pwned")]],
    [[("a", tarfile.SYMTYPE, ".."), ("b", tarfile.SYMTYPE, "a/OUTSIDE"),
      ("b/x", tarfile.REGTYPE, b"pwned")]],
    [[("d", tarfile.DIRTYPE, b""), ("d/../../OUTSIDE/x", tarfile.REGTYPE, b"pwned")]],
    [[("x", tarfile.LNKTYPE, "../OUTSIDE/victim")]],
    [[("etc", tarfile.SYMTYPE, "../OUTSIDE")], [("etc/.wh.victim", tarfile.REGTYPE, b"")]],
    [[("etc", tarfile.SYMTYPE, "../OUTSIDE")], [("etc/.wh..wh..opq", tarfile.REGTYPE, b"")]],
    [[("etc", tarfile.SYMTYPE, "../OUTSIDE")], [("etc", tarfile.DIRTYPE, b"")],
     [("etc/victim", tarfile.REGTYPE, b"pwned")]],
    [[("l", tarfile.SYMTYPE, "../OUTSIDE/victim")], [("x", tarfile.LNKTYPE, "l")],
     [("x", tarfile.REGTYPE, b"pwned")]],
]


@pytest.mark.parametrize("layers", ESCAPES, ids=[str(i) for i in range(len(ESCAPES))])
def test_no_layer_writes_outside_the_root(tmp_path, layers):
    outside = tmp_path / "OUTSIDE"
    outside.mkdir()
    (outside / "victim").write_bytes(b"safe")
    work = tmp_path / "layers"
    work.mkdir()
    blobs = [make_layer(work / f"{i}.tar", members) for i, members in enumerate(layers)]
    root = tmp_path / "r"  # so "../OUTSIDE" from the root is the real OUTSIDE
    try:
        unpack(blobs, str(root), Ledger(real=False))
    except OciBuildError as err:
        assert "which is not a directory" in str(err) or "climbs out" in str(err), str(err)
    # Symlinks to /OUTSIDE resolve on the host to /OUTSIDE, which does not exist; the ones
    # that could reach tmp_path/OUTSIDE are relative. Either way nothing there changed.
    assert sorted(os.listdir(outside)) == ["victim"]
    assert (outside / "victim").read_bytes() == b"safe"
    assert not os.path.exists("/OUTSIDE")


@pytest.mark.parametrize("real", [True, False])
@pytest.mark.parametrize("field, value, message", [
    ("uid", 1 << 40, "its uid 1099511627776 is outside 0 to 4294967295, the ids a Linux file "
     "can have; the image is damaged"),
    ("gid", -5, "its gid -5 is outside 0 to 4294967295, the ids a Linux file can have; the "
     "image is damaged"),
    ("mtime", "nan", "has the modification time nan, which no file can have"),
    ("mtime", "inf", "has the modification time inf, which no file can have"),
    ("mtime", "1e300", "has the modification time 1e+300, which no file can have"),
])
def test_numbers_no_file_can_have_are_one_error_naming_the_entry(tmp_path, real, field, value,
                                                                  message):
    """As root they reached chown and utime (OverflowError, ValueError: a traceback); without
    root a uid of -5 went to the ledger, and from it into the step's layer."""
    if real and os.geteuid() != 0:
        pytest.skip("chown needs root")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.size = 1
        if field == "mtime":
            info.pax_headers = {"mtime": value}
        else:
            setattr(info, field, value)
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "l.tar").write_bytes(out.getvalue())
    with pytest.raises(OciBuildError) as err:
        unpack([(str(tmp_path / "l.tar"), TAR)], str(tmp_path / "r"), Ledger(real=real))
    assert str(err.value).startswith(f"layer {str(tmp_path / 'l.tar')!r} ({TAR}): entry 'f'")
    assert message in str(err.value)


@pytest.mark.parametrize("real", [True, False])
@pytest.mark.parametrize("pax, kind, message", [
    ({"linkpath": "a\0b"}, tarfile.SYMTYPE,
     "its link target 'a\\x00b' holds a NUL byte, which no link target can hold"),
    ({"linkpath": "a" * 5000}, tarfile.SYMTYPE,
     "its link target is 5000 bytes long, past the 4095 a Linux symlink can hold"),
    ({"SCHILY.xattr.user.a\0b": "v"}, tarfile.REGTYPE,
     "its xattr name 'user.a\\x00b' is empty or holds a NUL byte or an '='"),
    ({"SCHILY.xattr.": "v"}, tarfile.REGTYPE, "its xattr name '' is empty"),
], ids=["link-nul", "link-long", "xattr-nul", "xattr-empty"])
def test_texts_no_file_can_have_are_one_error_naming_the_entry(tmp_path, real, pax, kind,
                                                               message):
    """A link target with a NUL was a ValueError out of symlink() (a traceback), one past
    PATH_MAX an ENAMETOOLONG naming no entry; an xattr name with a NUL went to the ledger,
    and from it into a step's layer, which Go's archive/tar then refused."""
    if real and os.geteuid() != 0:
        pytest.skip("chown needs root")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.type, info.pax_headers = kind, pax
        tar.addfile(info)
    (tmp_path / "l.tar").write_bytes(out.getvalue())
    with pytest.raises(OciBuildError) as err:
        unpack([(str(tmp_path / "l.tar"), TAR)], str(tmp_path / "r"), Ledger(real=real))
    assert str(err.value).startswith(f"layer {str(tmp_path / 'l.tar')!r} ({TAR}): entry 'f': "
                                     f"{message}")
    assert str(err.value).endswith("; the image is damaged")


@pytest.mark.parametrize("real", [True, False])
@pytest.mark.parametrize("major, minor", [(1 << 40, 1), (4096, 1), (1, 1 << 20)])
def test_device_numbers_no_device_can_have_are_one_error(tmp_path, real, major, minor):
    """As root 2^40 was an OverflowError out of makedev, 4096 an EINVAL naming no entry;
    without root the ledger kept them, and a header's 7 octal digits cannot hold 2^40."""
    if real and os.geteuid() != 0:
        pytest.skip("mknod needs root")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("dev/x")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, major, minor
        tar.addfile(info)
    (tmp_path / "l.tar").write_bytes(out.getvalue())
    with pytest.raises(OciBuildError) as err:
        unpack([(str(tmp_path / "l.tar"), TAR)], str(tmp_path / "r"), Ledger(real=real))
    assert str(err.value) == (f"layer {str(tmp_path / 'l.tar')!r} ({TAR}): entry 'dev/x': its "
                              f"device numbers {major},{minor} are outside 0-4095,0-1048575, "
                              "what a Linux device can have; the image is damaged")
