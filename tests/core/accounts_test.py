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
    ([User("a:b", 1000)], [], "accounts.users[0] 'a:b' must be 1 to 32 letters"),
    ([User("app", 1000), User("app", 1001)], [], "accounts.users[1] 'app' (uid 1001)"),
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
    ({"../etc/passwd": b"escape\n"}, b"old\n"),  # a name unpackers refuse is not /etc/passwd
    ({"other": b"x"}, b"old\n"),
])
def test_the_base_files_are_read_as_the_filesystem_holds_them(upper, expected) -> None:
    for compression in ("gzip", "zstd", "none"):
        found = read_base_files([_layer(upper, compression),
                                 _layer({"etc/passwd": b"old\n"}, compression)], ["etc/passwd"])
        assert found.get("etc/passwd") == expected


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
        assert "sha256:x" in str(err) or "is over" in str(err)
    else:
        assert set(found) <= {PASSWD_PATH}
