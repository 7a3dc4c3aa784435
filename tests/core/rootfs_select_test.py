"""Choosing the RUN mechanism, USER resolution, and the errors a caller can meet."""

from __future__ import annotations

import os

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.ledger import Ledger
from ocibuild.rootfs.select import choose
from ocibuild.rootfs.step import run
from ocibuild.rootfs.users import resolve_user


def test_an_unknown_mechanism_names_the_known_ones():
    with pytest.raises(OciBuildError) as err:
        choose("docker")
    assert str(err.value) == ("RUN mechanism 'docker': must be one of proot, root, userns, or "
                              "unset to choose the fastest that works here")


def test_root_is_chosen_as_root():
    if os.geteuid() != 0:
        pytest.skip("as root only")
    assert choose() == "root"


@pytest.fixture()
def etc(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/home/app:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nstaff:x:50:\n")
    return str(tmp_path)


@pytest.mark.parametrize("spec, ids", [
    ("", (0, 0)), ("root", (0, 0)), ("app", (1001, 1002)), ("1001", (1001, 1002)),
    ("4242", (4242, 0)), ("app:staff", (1001, 50)), ("app:7", (1001, 7)), ("5:6", (5, 6)),
])
def test_user_specs_resolve_as_docker_does(etc, spec, ids):
    assert resolve_user(etc, spec) == ids


def test_an_unknown_user_or_group_is_an_error(etc):
    with pytest.raises(OciBuildError) as err:
        resolve_user(etc, "nobody")
    assert str(err.value) == ("USER 'nobody': no user 'nobody' in the image's /etc/passwd; "
                              "create it in an earlier RUN step (useradd) or give a numeric uid")
    with pytest.raises(OciBuildError) as err:
        resolve_user(etc, "app:wheel")
    assert str(err.value) == ("USER 'app:wheel': no group 'wheel' in the image's /etc/group; "
                              "create it first or give a numeric gid")


def test_passwd_through_a_symlink_is_not_read(tmp_path):
    (tmp_path / "host").mkdir()
    (tmp_path / "host/passwd").write_text("app:x:7:7::/:/bin/sh\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink(str(tmp_path / "host/passwd"), root / "etc/passwd")
    with pytest.raises(OciBuildError):
        resolve_user(str(root), "app")
    (root / "etc/passwd").unlink()
    os.rmdir(root / "etc")
    os.symlink(str(tmp_path / "host"), root / "etc")
    with pytest.raises(OciBuildError):
        resolve_user(str(root), "app")


def test_run_refuses_an_empty_command_and_a_relative_directory(tmp_path):
    ledger = Ledger(real=os.geteuid() == 0)
    with pytest.raises(OciBuildError) as err:
        run(str(tmp_path), [], {}, ledger=ledger)
    assert str(err.value) == ('RUN step: the command is empty; give a command, e.g. '
                              'RUN ["/bin/sh", "-c", "true"]')
    with pytest.raises(OciBuildError) as err:
        run(str(tmp_path), ["true"], {}, ledger=ledger, cwd="app")
    assert str(err.value) == "RUN step: working directory 'app' must be absolute, e.g. /app"


def test_a_tree_unpacked_without_root_is_not_run_as_root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("as root only")
    with pytest.raises(OciBuildError) as err:
        run(str(tmp_path), ["/bin/true"], {}, ledger=Ledger(real=False), mechanism="root")
    assert str(err.value) == ("RUN mechanism 'root' cannot use a tree unpacked without root "
                              "(its owners are in the ledger, not on disk); unpack it as root")
