"""`accounts.users` / `accounts.groups`: appended to the base's /etc/passwd and /etc/group as the
image's filesystem holds them (top layer first, whiteouts honoured), never overwriting an entry."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Dict, Optional

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from ocibuild import mediatypes
from ocibuild.accounts import Group, User, merged, read_base_files, write_layer
from ocibuild.errors import OciBuildError
from tests.fixtures.image_checks import skopeo_inspect

from .conftest import run_ocibuild, write

BASE_PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/sbin/nologin\n"
PASSWD_PATH = "etc/passwd"
BASE_GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def test_entries_are_appended_and_a_user_without_gid_gets_its_own_group() -> None:
    passwd, group = merged(BASE_PASSWD, BASE_GROUP,
                           [User("app", 1000), User("svc", 1001, gid=2000, homedir="/srv")],
                           [Group("web", 2000, ("app",))])
    assert passwd == BASE_PASSWD + (b"app:x:1000:1000:app:/home/app:/sbin/nologin\n"
                                    b"svc:x:1001:2000:svc:/srv:/sbin/nologin\n")
    assert group == BASE_GROUP + b"web:x:2000:app\napp:x:1000:\n"


@pytest.mark.parametrize("users, groups, message", [
    ([User("nobody", 1000)], [], "accounts.users[0] 'nobody' (uid 1000): the user 'nobody' "
     "(uid 65534) is already in the base's /etc/passwd or the file"),
    ([User("app", 0)], [], "accounts.users[0] 'app' (uid 0): the user 'root' (uid 0)"),
    ([], [Group("x", 65534)], "accounts.groups[0] 'x' (gid 65534): the group 'nogroup'"),
    ([User("app", 1000, gid=7)], [], "accounts.users[0] 'app': no group has gid 7"),
    ([User("a:b", 1000)], [], "accounts.users[0].username 'a:b' must be 1 to 32 letters"),
    ([User("app", 1000), User("app", 1001, homedir="/srv")], [],
     "accounts.users[1] 'app' (uid 1001)"),
])
def test_taken_names_and_ids_are_errors(users, groups, message: str) -> None:
    with pytest.raises(OciBuildError) as err:
        merged(BASE_PASSWD, BASE_GROUP, users, groups)
    assert message in str(err.value)


def _layer(files: Dict[str, Optional[bytes]], compression: str = "gzip"):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data or b"")
            tar.addfile(info, io.BytesIO(data or b""))
    data = raw.getvalue()
    if compression == "gzip":
        return "sha256:gz", mediatypes.OCI_LAYER_GZIP, lambda: io.BytesIO(gzip.compress(data))
    if compression == "zstd":
        return "sha256:zst", mediatypes.OCI_LAYER_ZSTD, lambda: io.BytesIO(zstandard.compress(data))
    return "sha256:tar", mediatypes.OCI_LAYER, lambda: io.BytesIO(data)


@pytest.mark.parametrize("upper, expected", [
    ({"etc/passwd": b"new\n"}, b"new\n"),  # the top layer's file wins
    ({"etc/.wh.passwd": None}, None),  # deleted above
    ({"etc/.wh..wh..opq": None}, None),  # /etc made opaque above
    ({"./etc/passwd": b"dot\n"}, b"dot\n"),  # names as GNU tar writes them
    ({"other": b"x"}, b"old\n"),
])
def test_the_base_files_are_read_as_the_filesystem_holds_them(upper, expected) -> None:
    for compression in ("gzip", "zstd", "none"):
        found = read_base_files([_layer({"etc/passwd": b"old\n"}, compression),
                                 _layer(upper, compression)], ["etc/passwd"])
        assert found.files.get("etc/passwd") == expected


def test_users_on_an_oci_base_with_its_passwd(tmp_path: Path) -> None:
    write(tmp_path / "root/etc/passwd", BASE_PASSWD)
    write(tmp_path / "root/etc/group", BASE_GROUP)
    write(tmp_path / "proj/app/run.sh", b"#!/bin/sh\n")
    base = run_ocibuild("build", "--base", "scratch", "--layer", "root/:/", "--output",
                        "proj/base", "--quiet", cwd=tmp_path)
    assert base.returncode == 0, base.stderr
    write(tmp_path / "proj/image.yaml", b"""\
base: oci:base
paths:
  - source: app/
    path: /app
accounts:
  groups:
    - {groupname: web, gid: 2000}
  users:
    - {username: app, uid: 1000, gid: 2000}
  run-as: app
""")
    built = run_ocibuild("build", "-f", "proj/image.yaml", "--output", "out", "--json",
                         cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    manifest = skopeo_inspect(tmp_path / "out", "latest", raw=True)
    config = skopeo_inspect(tmp_path / "out", "latest", config=True)
    assert config["config"]["User"] == "app"
    assert [h["created_by"] for h in config["history"]][-2:] == [
        "ocibuild build: accounts (/etc/passwd, /etc/group, homes)", "ocibuild build: /app"]
    accounts = manifest["layers"][-2]["digest"][7:]
    with tarfile.open(tmp_path / "out/blobs/sha256" / accounts) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("etc/passwd").read() == \
            BASE_PASSWD + b"app:x:1000:2000:app:/home/app:/sbin/nologin\n"
        assert tar.extractfile("etc/group").read() == BASE_GROUP + b"web:x:2000:\n"
    assert sorted(members) == ["etc", "etc/group", "etc/passwd", "home", "home/app"]
    assert (members["home/app"].uid, members["home/app"].gid, members["home/app"].mode) == \
        (1000, 2000, 0o755)
    assert (members["home"].uid, members["etc/passwd"].mode) == (0, 0o644)

    write(tmp_path / "proj/image.yaml", b"base: oci:base\naccounts:\n  users:\n"
          b"    - {username: nobody, uid: 1000}\n")
    taken = run_ocibuild("build", "-f", "proj/image.yaml", "--output", "out2", cwd=tmp_path)
    assert taken.returncode == 2 and "Traceback" not in taken.stderr
    assert "the user 'nobody' (uid 65534) is already in the base's /etc/passwd" in taken.stderr
    assert not (tmp_path / "out2").exists()
    assert json.loads(taken.stdout)["kind"] == "error"


@pytest.mark.parametrize("homedir", ["/home/../etc", "home/app", "/"])
def test_a_home_directory_must_be_a_plain_absolute_path(homedir: str) -> None:
    with pytest.raises(OciBuildError) as err:
        write_layer(io.BytesIO(), b"", b"", [User("app", 1000, homedir=homedir)])
    assert "must be an absolute path below /" in str(err.value)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=4096),
       media_type=st.sampled_from([mediatypes.OCI_LAYER, mediatypes.OCI_LAYER_GZIP,
                                   mediatypes.OCI_LAYER_ZSTD]),
       wrap=st.booleans())
def test_any_bytes_as_a_base_layer_give_the_files_or_one_error(data: bytes, media_type: str,
                                                                 wrap: bool) -> None:
    """A base is untrusted: whatever its layer holds, reading /etc/passwd out of it gives a
    value or an OciBuildError naming the layer, never another exception."""
    if wrap and media_type == mediatypes.OCI_LAYER_GZIP:
        data = gzip.compress(data)
    elif wrap and media_type == mediatypes.OCI_LAYER_ZSTD:
        data = zstandard.compress(data)
    try:
        found = read_base_files([("sha256:x", media_type, lambda: io.BytesIO(data))],
                                [PASSWD_PATH])
    except OciBuildError as err:
        assert "sha256:x" in str(err) or "is over" in str(err) or "/etc/passwd" in str(err)
    else:
        assert set(found.files) <= {PASSWD_PATH}


# Every field written into /etc/passwd or /etc/group, with how to set it to `value`.
FIELDS = {
    "username": lambda v: ([User(v, 1000)], []),
    "homedir": lambda v: ([User("app", 1000, homedir=v)], []),
    "shell": lambda v: ([User("app", 1000, shell=v)], []),
    "groupname": lambda v: ([], [Group(v, 2000)]),
    "members": lambda v: ([User("app", 1000)], [Group("web", 2000, ("app", v))]),
}
VALID = {"username": "svc", "homedir": "/srv/app", "shell": "/bin/sh", "groupname": "web2",
         "members": "root"}
INJECTIONS = ["\n", "\r", "\r\n", "\0", ":", ",", "\x85", "\u2028", "\u2029", "\x0b", "\x0c",
              "\x1c", "\x1d", "\x1e", "\x1f", "\x7f", "\t", " ", "#", "\ufeff"]


def _parsed(text: bytes) -> list:
    lines = text.decode().split("\n")
    assert lines[-1] == "" and text.decode().splitlines() == lines[:-1]  # no other separator
    return [line.split(":") for line in lines[:-1]]


def _intended(users, groups) -> tuple:
    """The records the request asks for: what the files must read back as, exactly."""
    passwd = [*_parsed(BASE_PASSWD)] + [
        [u.username, "x", str(u.uid), str(u.gid if u.gid is not None else u.uid), u.username,
         u.homedir or f"/home/{u.username}", u.shell] for u in users]
    group = [*_parsed(BASE_GROUP)] + [[g.groupname, "x", str(g.gid), ",".join(g.members)]
                                      for g in groups] + \
        [[u.username, "x", str(u.uid), ""] for u in users if u.gid is None]
    return passwd, group


TRIED = {"refused": 0, "written": 0}


@settings(max_examples=1500, deadline=None)
@given(field=st.sampled_from(sorted(FIELDS)),
       value=st.one_of(
           st.builds(lambda v, c, i: v[:i] + c + v[i:], st.sampled_from(sorted(VALID.values())),
                     st.one_of(st.sampled_from(INJECTIONS), st.characters()),
                     st.integers(0, 8)),
           st.text(max_size=12)))
def test_no_field_value_adds_a_field_or_a_line(field: str, value: str) -> None:
    """Every field x every character: refused with an error naming the field, or the files
    read back as exactly the records asked for (one line per account, fields equal)."""
    if field == "homedir" and value and not value.startswith("/"):
        value = "/" + value
    users, groups = FIELDS[field](value)
    try:
        passwd, group = merged(BASE_PASSWD, BASE_GROUP, users, groups)
    except OciBuildError as err:
        TRIED["refused"] += 1
        assert f".{field}" in str(err) or (field == "members" and ".members[1]" in str(err)), err
        assert "\n" not in str(err).replace("\\n", "")
        return
    TRIED["written"] += 1
    assert (_parsed(passwd), _parsed(group)) == _intended(users, groups)
    assert set(value) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                             "._-/+@")


@pytest.mark.parametrize("field, value, message", [
    ("shell", "/bin/sh\nevil:x:0:0::/:/bin/sh",
     "accounts.users[0].shell '/bin/sh\\nevil:x:0:0::/:/bin/sh' must be an absolute path"),
    ("members", "app\nsudo:x:27:app", "accounts.groups[0].members[1] 'app\\nsudo:x:27:app' must"),
    ("members", "root,evil", "accounts.groups[0].members[1] 'root,evil' must be 1 to 32"),
    ("homedir", "/home/app:0:0", "accounts.users[0].homedir '/home/app:0:0' must be"),
    ("homedir", "/home/./app", "accounts.users[0].homedir '/home/./app' must be"),
    ("homedir", "/etc", "accounts.users[0].homedir '/etc': /etc holds /etc/passwd"),
    ("username", "1000", "accounts.users[0].username '1000' must be 1 to 32"),
    ("username", "+", "accounts.users[0].username '+' must be"),
    ("username", "..", "accounts.users[0].username '..' must be"),
    ("groupname", "-wheel", "accounts.groups[0].groupname '-wheel' must be"),
])
def test_the_issue_injections_are_refused_naming_the_field(field: str, value: str,
                                                           message: str) -> None:
    users, groups = FIELDS[field](value)
    with pytest.raises(OciBuildError) as err:
        merged(BASE_PASSWD, BASE_GROUP, users, groups)
    assert message in str(err.value)


@pytest.mark.parametrize("field, value", [
    ("shell", '"/bin/sh\\nevil:x:0:0::/root:/bin/sh"'), ("homedir", '"/x:0:0"'),
    ("members", '["app", "x\\nsudo:x:27:app"]'), ("username", '"a,b"')])
def test_an_image_file_with_a_separator_in_a_field_is_refused_at_its_line(
        tmp_path: Path, field: str, value: str) -> None:
    entry = (f"users:\n    - {{username: {value}, uid: 1000}}\n" if field == "username" else
             f"users:\n    - {{username: app, uid: 1000, {field}: {value}}}\n"
             if field != "members" else
             f"users:\n    - {{username: app, uid: 1000}}\n  groups:\n"
             f"    - {{groupname: web, gid: 2000, members: {value}}}\n")
    write(tmp_path / "image.yaml", f"base: scratch\naccounts:\n  {entry}".encode())
    proc = run_ocibuild("build", "-f", "image.yaml", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = 6 if field == "members" else 4
    where = "groups" if field == "members" else "users"
    shown_field = "members[1]" if field == "members" else field
    assert proc.stderr.startswith(f"ocibuild: error: image.yaml:{line}: accounts.{where}[0]."
                                  f"{shown_field} "), proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("base_line, uid", [
    ("evil:x:01000:0::/:/bin/sh", 1000),  # glibc and musl: uid 1000
    ("evil:x:4294968296:0::/:/bin/sh", 1000),  # glibc: wraps to 32 bits
    ("evil:x: 1000:0::/:/bin/sh", 1000),  # glibc skips blanks
    ("evil:x:+1000:0::/:/bin/sh", 1000),
    ("evil:x::0::/:/bin/sh", 0),  # musl: an empty uid is 0
])
def test_a_base_id_is_taken_as_any_libc_reads_it(base_line: str, uid: int) -> None:
    with pytest.raises(OciBuildError) as err:
        merged(b"nobody:x:65534:65534::/:/sbin/nologin\n" + base_line.encode() + b"\n",
               BASE_GROUP, [User("app", uid)], [])
    assert f"accounts.users[0] 'app' (uid {uid}): the user 'evil'" in str(err.value)


def test_nis_entries_and_crlf_and_nul_in_the_base() -> None:
    """`+name` brings in the NIS user `name`: taken. CRLF lines keep their names and ids.
    A NUL (libc stops a line there) is refused."""
    with pytest.raises(OciBuildError) as err:
        merged(b"+app::::::\n", b"", [User("app", 1000)], [])
    assert "the user '+app'" in str(err.value)
    passwd, _ = merged(b"root:x:0:0::/root:/bin/sh\r\n", b"root:x:0:\r\n",
                       [User("app", 1000)], [])
    assert passwd == b"root:x:0:0::/root:/bin/sh\r\napp:x:1000:1000:app:/home/app:/sbin/nologin\n"
    with pytest.raises(OciBuildError) as err:
        merged(b"root:x:0:0::/root:/bin/sh\r\n", b"root:x:0:\r\n", [User("root2", 0)], [])
    assert "the user 'root' (uid 0)" in str(err.value)
    with pytest.raises(OciBuildError) as err:
        merged(b"root:x:0:0::/:/bin/sh\n\0evil:x:1000:0::/:/bin/sh\n", b"", [User("a", 1000)],
               [])
    assert str(err.value).startswith("the base's /etc/passwd holds a NUL byte")


def test_a_base_line_split_only_at_newlines() -> None:
    """Python's splitlines also splits at \\x85, \\u2028, \\x1c...: libc does not, so a base
    line holding one is one line (its uid taken), never two."""
    base = "evil:x\u2028:1000:0::/:/bin/sh\n".encode()  # split: "evil:x", ":1000:0:..."
    with pytest.raises(OciBuildError) as err:
        merged(base, b"", [User("app", 1000)], [])
    assert "the user 'evil' (uid 1000)" in str(err.value)


def test_a_huge_group_line_and_unknown_members() -> None:
    members = ",".join(f"u{i}" for i in range(60000))
    big = f"big:x:5000:{members}\n".encode()
    assert len(big) > 400_000
    _, group = merged(BASE_PASSWD, big, [User("app", 1000)], [])
    assert group == big + b"app:x:1000:\n"
    with pytest.raises(OciBuildError) as err:
        merged(BASE_PASSWD, BASE_GROUP, [], [Group("web", 2000, ("ghost",))])
    assert str(err.value) == ("accounts.groups[0].members[0] 'ghost' is no user of the base's "
                              "/etc/passwd or `accounts.users`; add the user or drop the name")


@pytest.mark.parametrize("uid", [-1, 2**31, 2**32 + 1000, True])
def test_ids_out_of_range_are_refused(uid) -> None:
    with pytest.raises(OciBuildError) as err:
        merged(BASE_PASSWD, BASE_GROUP, [User("app", uid)], [])
    assert f"accounts.users[0].uid {uid!r} must be a whole number from 0 to 2147483647" == \
        str(err.value)


def teardown_module() -> None:
    if sum(TRIED.values()):
        print(f"\nline-file fields generated: {TRIED}")
