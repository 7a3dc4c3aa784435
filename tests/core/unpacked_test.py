"""A base's /etc/passwd read as an unpacker leaves it (ocibuild.unpacked), checked against a
real one: umoci unpacks the same generated layers, and the file a process in that root
opens as /etc/passwd must be what we read, or we refuse."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild import mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.unpacked import Budget, read_files

from .conftest import need

# A member: (name, kind, link target or content). Kinds as tar has them.
Member = Tuple[str, str, str]
PASSWD = "etc/passwd"


def _tar(members: List[Member]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            data = b""
            if kind == "file":
                data = value.encode()
                info.size = len(data)
            else:
                info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                             "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE,
                             "chardev": tarfile.CHRTYPE}[kind]
                info.linkname = value if kind in ("symlink", "hardlink") else ""
                if kind == "chardev":
                    info.devmajor, info.devminor = 1, 3
            tar.addfile(info, io.BytesIO(data) if data else None)
    return raw.getvalue()


def _layers(stack: List[List[Member]]):
    blobs = [gzip.compress(_tar(members), 1) for members in stack]
    return blobs, [(f"sha256:{hashlib.sha256(b).hexdigest()}", mediatypes.OCI_LAYER_GZIP,
                    lambda b=b: io.BytesIO(b)) for b in blobs]


def ours(stack: List[List[Member]], path: str = PASSWD):
    """("file", bytes) / ("absent",) / ("refused", message)."""
    try:
        found = read_files(_layers(stack)[1], [path], 1 << 20).files
    except OciBuildError as err:
        return ("refused", str(err))
    return ("file", found[path]) if path in found else ("absent",)


def _layout(stack: List[List[Member]], where: Path) -> None:
    blobs_dir = where / "blobs/sha256"
    blobs_dir.mkdir(parents=True)

    def blob(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs_dir / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    blobs, _ = _layers(stack)
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [
                  f"sha256:{hashlib.sha256(gzip.decompress(b)).hexdigest()}" for b in blobs]},
              "history": [{"created": "2020-01-01T00:00:00Z"} for _ in blobs]}
    manifest = {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                "config": blob(json.dumps(config).encode(), mediatypes.OCI_CONFIG),
                "layers": [blob(b, mediatypes.OCI_LAYER_GZIP) for b in blobs]}
    top = blob(json.dumps(manifest).encode(), mediatypes.OCI_MANIFEST)
    top["annotations"] = {"org.opencontainers.image.ref.name": "t"}
    (where / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    (where / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def _open_in_root(rootfs: str, path: str):
    """What a process chrooted into `rootfs` finds opening /`path` (a forked child: the
    kernel resolves every symlink inside the root)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            os.chroot(rootfs)
            os.chdir("/")
            try:
                st_ = os.stat("/" + path)
                if stat.S_ISREG(st_.st_mode):
                    with open("/" + path, "rb") as f:
                        result: tuple = ("file", f.read())
                else:
                    result = ("not a file",)
            except (FileNotFoundError, NotADirectoryError):
                result = ("absent",)
            except OSError as err:
                result = ("error", err.strerror)
            os.write(write, pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def umoci(stack: List[List[Member]], where: Path, path: str = PASSWD):
    """The reference: ("file", bytes) / ("absent",) / ("not a file",) / ("error", ...) /
    ("unpack failed", stderr)."""
    _layout(stack, where / "layout")
    # `raw unpack`: the rootfs only. `unpack` also reads the root's /etc/passwd for the
    # runtime config, and hangs on one that is a FIFO (a base can make it so).
    proc = subprocess.run([need("umoci"), "raw", "unpack", "--image", f"{where / 'layout'}:t",
                           str(where / "rootfs")], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return ("unpack failed", proc.stderr)
    return _open_in_root(str(where / "rootfs"), path)


def agree(stack: List[List[Member]], where: Path, path: str = PASSWD) -> Tuple[str, str]:
    """Our reading equals umoci's unpacked file, or we refuse: (ours, umoci's) kinds."""
    mine, theirs = ours(stack, path), umoci(stack, where, path)
    if mine[0] != "refused":
        assert mine == theirs, (stack, mine, theirs)
    return mine[0], theirs[0]


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")


# The cases, each one that read differently before (a new user then silently got an
# existing uid, or deleted users came back).
CASES = {
    "twice in one layer: the last wins": [[("etc/passwd", "file", "first\n"),
                                           ("etc/passwd", "file", "last\n")]],
    "a hardlink to the file's content": [[("usr/share/passwd.master", "file", "linked\n"),
                                          ("etc/passwd", "hardlink", "usr/share/passwd.master")]],
    "a hardlink into a lower layer": [[("usr/share/passwd.master", "file", "lower\n")],
                                      [("etc/passwd", "hardlink", "usr/share/passwd.master")]],
    "a hardlink keeps what it linked": [[("a", "file", "old\n"), ("etc/passwd", "hardlink", "a"),
                                         ("a", "file", "new\n")]],
    "a whiteout of the parent": [[("etc/passwd", "file", "gone\n")], [(".wh.etc", "file", "")]],
    "an opaque parent above": [[("etc/passwd", "file", "gone\n")],
                               [("etc/.wh..wh..opq", "file", "")]],
    "an opaque parent keeps its own layer's file": [[("etc/passwd", "file", "old\n")], [
        ("etc/.wh..wh..opq", "file", ""), ("etc/passwd", "file", "same layer\n")]],
    "an opaque after the file in the same layer": [[("etc/passwd", "file", "old\n")], [
        ("etc/passwd", "file", "same layer\n"), ("etc/.wh..wh..opq", "file", "")]],
    "/etc as an absolute symlink into a lower layer": [
        [("usr/etc/passwd", "file", "usr etc\n")], [("etc", "symlink", "/usr/etc")]],
    "/etc as a relative symlink": [[("usr/etc/passwd", "file", "usr etc\n"),
                                    ("etc", "symlink", "usr/etc")]],
    "/etc/passwd as a symlink climbing out of the root": [
        [("real", "file", "real\n"), ("etc/passwd", "symlink", "../../../../real")]],
    "a member written through a symlinked /etc": [
        [("usr/etc", "dir", ""), ("etc", "symlink", "usr/etc")],
        [("etc/passwd", "file", "through\n")]],
    "a whiteout of the symlink's target dir": [
        [("usr/etc/passwd", "file", "x\n"), ("etc", "symlink", "/usr/etc")],
        [("usr/.wh.etc", "file", "")]],
    "a dangling symlink": [[("etc/passwd", "symlink", "/nowhere")]],
    "a symlink through a missing dir and ..": [
        [("real", "file", "real\n"), ("etc/passwd", "symlink", "/missing/../real")]],
}
REFUSED = {
    "a symlink loop": ([[("etc/passwd", "symlink", "/etc/passwd")]],
                       "the base's /etc/passwd: more than 40 symlinks on the way (a loop); it "
                       "must be a file (or a symlink to one inside the image)"),
    "a directory in an upper layer": ([[("etc/passwd", "file", "x\n")],
                                       [("etc/passwd", "dir", "")]],
                                      "the base's /etc/passwd is a directory, not a file"),
    "a FIFO": ([[("etc/passwd", "fifo", "")]], "the base's /etc/passwd is a FIFO, not a file"),
    "a device": ([[("etc/passwd", "chardev", "")]],
                 "the base's /etc/passwd is a character device, not a file"),
    "a device through a symlink": ([[("dev/null", "chardev", ""),
                                     ("etc/passwd", "symlink", "/dev/null")]],
                                   "the base's /etc/passwd is a character device "
                                   "(/dev/null), not a file"),
    "a hardlink to nothing": ([[("etc/passwd", "hardlink", "missing")]],
                              "the hardlink 'etc/passwd' names 'missing', which is not there "
                              "at that point"),
    "a '..' member": ([[("../etc/passwd", "file", "x\n")]],
                      "the member '../etc/passwd' has a '..' component"),
    "a member under a file": ([[("etc", "file", "x"), ("etc/passwd", "file", "x\n")]],
                              "'/etc' is a file, and a member is written under it"),
}
EXPECTED = {
    "twice in one layer: the last wins": b"last\n",
    "a hardlink to the file's content": b"linked\n",
    "a hardlink into a lower layer": b"lower\n",
    "a hardlink keeps what it linked": b"old\n",
    "a whiteout of the parent": None,
    "an opaque parent above": None,
    "an opaque parent keeps its own layer's file": b"same layer\n",
    "an opaque after the file in the same layer": b"same layer\n",
    "/etc as an absolute symlink into a lower layer": b"usr etc\n",
    "/etc as a relative symlink": b"usr etc\n",
    "/etc/passwd as a symlink climbing out of the root": b"real\n",
    "a member written through a symlinked /etc": b"through\n",
    "a whiteout of the symlink's target dir": None,
    "a dangling symlink": None,
    "a symlink through a missing dir and ..": None,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_base_passwd_is_read_as_the_unpacker_leaves_it(case: str) -> None:
    expected = EXPECTED[case]
    assert ours(CASES[case]) == (("file", expected) if expected is not None else ("absent",))


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_is_no_file_or_unpackers_disagree_on_is_refused(case: str) -> None:
    stack, message = REFUSED[case]
    verdict = ours(stack)
    assert verdict[0] == "refused" and message in verdict[1], verdict


@needs_root
@pytest.mark.parametrize("case", sorted(CASES))
def test_umoci_unpacks_the_cases_as_we_read_them(case: str, tmp_path: Path) -> None:
    assert agree(CASES[case], tmp_path) == ("absent" if EXPECTED[case] is None else "file",) * 2


NAMES = ["etc", "etc/passwd", "etc/group", "usr", "usr/etc", "usr/etc/passwd", "a", "a/passwd",
         "etc/.wh.passwd", "etc/.wh..wh..opq", ".wh.etc", "usr/.wh.etc", "usr/etc/.wh..wh..opq",
         ".wh.usr", "a/.wh..wh..opq", ".wh.a"]
TARGETS = ["/usr/etc", "usr/etc", "../usr/etc", "/etc", "/a", "a", "passwd", "/a/passwd",
           "../a/passwd", "/etc/passwd", "../../usr/etc/passwd", "/usr/etc/passwd", "loop",
           "/missing/../a/passwd", "..", "/"]
_plain = [n for n in NAMES if ".wh." not in n]
_file = st.tuples(st.sampled_from(NAMES), st.just("file"), st.sampled_from(["p1\n", "p2\n", ""]))
_symlink = st.tuples(st.sampled_from(_plain + ["loop"]), st.just("symlink"),
                     st.sampled_from(TARGETS))
_member = st.one_of(
    _file, _file, _file, _symlink, _symlink,
    st.tuples(st.sampled_from(_plain), st.just("dir"), st.just("")),
    st.tuples(st.sampled_from(_plain), st.just("hardlink"),
              st.sampled_from(["etc/passwd", "usr/etc/passwd", "a/passwd", "a", "etc/group"])),
    st.tuples(st.sampled_from(["etc/passwd", "usr/etc/passwd", "a"]),
              st.sampled_from(["fifo", "chardev"]), st.just("")))
# Below the generated layers, a base that has each file the members play with.
BOTTOM = [("etc/passwd", "file", "base etc\n"), ("etc/group", "file", "base group\n"),
          ("usr/etc/passwd", "file", "base usr\n"), ("a/passwd", "file", "base a\n")]
_stacks = st.lists(st.lists(_member, max_size=6), min_size=1, max_size=4).map(
    lambda layers: [BOTTOM, *layers])
TALLY: dict = {}


@needs_root
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(stack=_stacks, path=st.sampled_from([PASSWD, "usr/etc/passwd"]))
def test_generated_layer_stacks_read_as_umoci_unpacks_them(stack, path, tmp_path_factory
                                                           ) -> None:
    """Duplicates, hardlinks, symlinks (absolute, relative, climbing, looping), whiteouts of
    the file and of its parents, opaque directories, FIFOs and devices, over up to 4 layers:
    whatever we read as /etc/passwd is what umoci leaves there (or we refuse)."""
    verdict = agree(stack, tmp_path_factory.mktemp("stack"), path)
    TALLY[verdict] = TALLY.get(verdict, 0) + 1


def test_a_decompression_bomb_stops_at_the_ratio_with_one_error() -> None:
    """A small layer that expands hugely is refused as it streams, long before it ends."""
    info = tarfile.TarInfo("zeros")
    info.size = 200 << 20
    bomb = gzip.compress(info.tobuf() + b"\0" * (info.size + 1024), 9)
    assert len(bomb) < 250 << 10
    layer = ("sha256:bomb", mediatypes.OCI_LAYER_GZIP, lambda: io.BytesIO(bomb))
    with pytest.raises(OciBuildError) as err:
        read_files([layer], [PASSWD], 1 << 20, Budget(ratio=100, floor=1 << 20))
    message = str(err.value)
    assert message.startswith("the base's layer sha256:bomb: it expands to over ")
    assert "more than 100 times its size (a decompression bomb); the base cannot be read as " \
        "an unpacker would read it" in message


def test_the_total_bound_holds_over_all_layers() -> None:
    _, layers = _layers([[("a", "file", "x" * 6000)], [("b", "file", "y" * 6000)]])
    with pytest.raises(OciBuildError) as err:
        read_files(layers, [PASSWD], 1 << 20, Budget(total=16 << 10))
    assert str(err.value) == (
        f"the base's layer {layers[1][0]}: it expands past 16384 bytes (with the layers read "
        "before it), more than any base is unpacked; the base cannot be read as an unpacker "
        "would read it")
    assert read_files(layers, [PASSWD], 1 << 20, Budget(total=64 << 10)).files == {}


def teardown_module() -> None:
    if TALLY:  # how the generated stacks came out: (ours, umoci's) -> count
        print(f"\ngenerated layer stacks: {sum(TALLY.values())}: {sorted(TALLY.items())}")


TAKEN = "root:x:0:0::/root:/bin/sh\ntaken:x:1000:1000::/:/bin/sh\n"
DECOY = "root:x:0:0::/root:/bin/sh\n"


@pytest.mark.parametrize("stack", [
    [[("etc/passwd", "file", DECOY), ("etc/passwd", "file", TAKEN)]],
    [[("usr/share/base-passwd/passwd", "file", TAKEN),
      ("etc/passwd", "hardlink", "usr/share/base-passwd/passwd")]],
    [[("usr/etc/passwd", "file", TAKEN), ("etc", "symlink", "usr/etc")]],
    [[("etc/passwd", "file", DECOY)], [("etc/.wh..wh..opq", "file", ""),
                                       ("etc/passwd", "file", TAKEN)]],
], ids=["twice", "hardlink", "symlinked-etc", "opaque-then-own-file"])
def test_a_new_user_never_gets_a_uid_the_unpacked_base_has(tmp_path: Path, stack) -> None:
    from .conftest import run_ocibuild, write

    _layout(stack, tmp_path / "base")
    write(tmp_path / "image.yaml", b"base: oci:base:t\naccounts:\n  users:\n"
          b"    - {username: app, uid: 1000}\n")
    proc = run_ocibuild("build", "-f", "image.yaml", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "accounts.users[0] 'app' (uid 1000): the user 'taken' (uid 1000) is already in " \
        "the base's /etc/passwd" in proc.stderr


def test_users_deleted_by_a_whiteout_of_the_parent_do_not_come_back(tmp_path: Path) -> None:
    from .conftest import run_ocibuild, write

    _layout([[("etc/passwd", "file", TAKEN), ("etc/group", "file", "root:x:0:\n")],
             [(".wh.etc", "file", "")]], tmp_path / "base")
    write(tmp_path / "image.yaml", b"base: oci:base:t\naccounts:\n  users:\n"
          b"    - {username: app, uid: 1000}\n")
    proc = run_ocibuild("build", "-f", "image.yaml", "--output", "out", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out/blobs/sha256" / json.loads(
        (tmp_path / "out/index.json").read_text())["manifests"][0]["digest"][7:]).read_text())
    layer = tmp_path / "out/blobs/sha256" / manifest["layers"][-1]["digest"][7:]
    with tarfile.open(layer) as tar:
        assert tar.extractfile("etc/passwd").read() == \
            b"app:x:1000:1000:app:/home/app:/sbin/nologin\n"
        assert tar.extractfile("etc/group").read() == b"app:x:1000:\n"


def _many(members: List[Member]):
    return _layers([members])[1][0]


def test_a_repeated_opaque_whiteout_costs_once() -> None:
    """A layer repeating `d/.wh..wh..opq` over its own many files in d would walk them all
    each time (quadratic); the same whiteout again in a layer is a no-op, as its effect is."""
    import time

    lower = _many([(f"d/f{i}", "file", "") for i in range(100)])
    upper = _many([*((f"d/g{i}", "file", "") for i in range(20000)),
                   *(("d/.wh..wh..opq", "file", "") for _ in range(20000)),
                   ("etc/passwd", "file", "p\n")])
    start = time.monotonic()
    assert read_files([lower, upper], [PASSWD], 1 << 20).files == {PASSWD: b"p\n"}
    assert time.monotonic() - start < 20  # quadratic: 4 * 10^8 steps, many minutes


def test_symlink_chains_and_member_counts_are_bounded() -> None:
    chain = [(f"l{i}", "symlink", f"l{i + 1}") for i in range(200)] + [("l200", "dir", "")]
    layer = _many([*chain, *((f"l0/f{i}", "file", "") for i in range(100))])
    with pytest.raises(OciBuildError) as err:
        read_files([layer], [PASSWD], 1 << 20, Budget(steps=10000))
    assert str(err.value) == (
        f"the base's layer {layer[0]}: its paths take over 10000 steps to resolve (deep "
        "symlink chains), more than any base needs; the base cannot be read as an unpacker "
        "would read it")
    assert read_files([layer], [PASSWD], 1 << 20).files == {}
    with pytest.raises(OciBuildError) as err:
        read_files([layer, layer], [PASSWD], 1 << 20, Budget(members=400))
    assert str(err.value).startswith(f"the base's layer {layer[0]}: the base has over 400 "
                                     "members in its layers")


def test_a_member_name_longer_than_path_max_is_refused() -> None:
    layer = _many([("a/" * 2100 + "x", "file", "")])
    with pytest.raises(OciBuildError) as err:
        read_files([layer], [PASSWD], 1 << 20)
    assert "has a name or link target over 4096 characters" in str(err.value)


def test_the_accounts_layer_writes_through_the_bases_symlinked_directories(
        tmp_path: Path) -> None:
    """/etc -> usr/etc and /home -> var/home in the base: the new layer writes usr/etc/passwd
    and var/home/app, never an `etc` or `home` directory entry, which an unpacker would put
    in place of the base's symlink (hiding the rest of /usr/etc)."""
    from .conftest import run_ocibuild, write

    _layout([[("usr/etc/passwd", "file", DECOY), ("usr/etc/group", "file", "root:x:0:\n"),
              ("usr/etc/ssl/cert.pem", "file", "cert\n"), ("etc", "symlink", "usr/etc"),
              ("var/home", "dir", ""), ("home", "symlink", "/var/home")]], tmp_path / "base")
    write(tmp_path / "image.yaml", b"base: oci:base:t\naccounts:\n  users:\n"
          b"    - {username: app, uid: 1000}\n")
    proc = run_ocibuild("build", "-f", "image.yaml", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    subprocess.run([need("umoci"), "raw", "unpack", "--image", f"{tmp_path / 'out'}:latest",
                    str(tmp_path / "rootfs")], check=True, capture_output=True)
    rootfs = tmp_path / "rootfs"
    assert os.readlink(rootfs / "etc") == "usr/etc"
    assert os.readlink(rootfs / "home") == "/var/home"
    assert (rootfs / "usr/etc/passwd").read_text() == \
        DECOY + "app:x:1000:1000:app:/home/app:/sbin/nologin\n"
    assert (rootfs / "usr/etc/ssl/cert.pem").read_text() == "cert\n"
    assert (rootfs / "var/home/app").stat().st_uid == 1000


def test_a_layer_that_changes_between_the_two_readings_is_an_error() -> None:
    """The model keeps no content: the file's bytes are read in a second pass. A blob that
    is not the same the second time (a layout changed underneath) is one error."""
    readings = iter([_tar([("etc/passwd", "file", "first\n")]),
                     _tar([("etc/passwd", "file", "second, longer\n")])])
    layer = ("sha256:moving", mediatypes.OCI_LAYER, lambda: io.BytesIO(next(readings)))
    with pytest.raises(OciBuildError) as err:
        read_files([layer], [PASSWD], 1 << 20)
    assert str(err.value) == ("the base's layer sha256:moving: the member 'etc/passwd' changed "
                              "between two readings; the base cannot be read as an unpacker "
                              "would read it")


def test_many_small_bombs_add_up() -> None:
    """Each layer under the floor, together far over the ratio: stopped."""
    info = tarfile.TarInfo("zeros")
    info.size = 3 << 20
    bomb = gzip.compress(info.tobuf() + b"\0" * (info.size + 1024), 9)
    layers = [(f"sha256:{i}", mediatypes.OCI_LAYER_GZIP, lambda: io.BytesIO(bomb))
              for i in range(10)]
    with pytest.raises(OciBuildError) as err:
        read_files(layers, [PASSWD], 1 << 20, Budget(ratio=100, floor=8 << 20))
    assert "with the layers read before it, the base expands to over " in str(err.value)
    assert "more than 100 times its size (decompression bombs)" in str(err.value)


def test_two_homes_that_are_one_place_in_the_base_are_refused(tmp_path: Path) -> None:
    from .conftest import run_ocibuild, write

    _layout([[("home/a", "dir", ""), ("h", "symlink", "home")]], tmp_path / "base")
    write(tmp_path / "image.yaml", b"base: oci:base:t\naccounts:\n  users:\n"
          b"    - {username: a, uid: 1000}\n    - {username: b, uid: 1001, homedir: /h/a}\n")
    proc = run_ocibuild("build", "-f", "image.yaml", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == ("ocibuild: error: accounts.users[1].homedir '/h/a' is, in the base, "
                           "/home/a: also the home of accounts.users[0]; each user's home is "
                           "made theirs, so give each its own\n")
