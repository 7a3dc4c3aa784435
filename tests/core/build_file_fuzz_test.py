"""The YAML image-file reader on generated and mutated files: a request, or one clear
`OciBuildError` naming the file and line; never another exception, never a path outside."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild.build_file import load_image_file
from ocibuild.errors import OciBuildError

from .conftest import SOURCE_ROOT

EXAMPLE = (Path(SOURCE_ROOT).parent.parent / "examples/cli/image.yaml").read_text()
KEYS = ("base", "contents", "source", "destination", "entrypoint", "command", "cmd",
        "environment", "work-dir", "accounts", "run-as", "annotations", "labels", "archs",
        "tags")
SCALARS = (st.none() | st.booleans() | st.integers(-5, 2**40)
           | st.sampled_from(["scratch", "oci:base", "site", "../x", "/etc", "amd64",
                              "aarch64", "latest", "&a x", "*a", "!!python/object:os.system"])
           | st.text(max_size=10))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner,
                                        max_size=4), max_leaves=12)
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def _load(text: str) -> None:
    with tempfile.TemporaryDirectory(prefix="ocibuild-yaml-") as root:
        (Path(root) / "site").mkdir()
        (Path(root) / "site/index.html").write_text("hi\n")
        path = Path(root) / "image.yaml"
        path.write_text(text)
        try:
            image = load_image_file(str(path))
        except OciBuildError as err:
            assert str(err).startswith(str(path)), err  # the file (and line) first
            assert "\n" not in str(err)
            return
        inside = str(Path(root).resolve()) + "/"
        assert all(str(Path(layer.source).resolve()).startswith(inside) for layer in image.layers)


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8))
def test_generated_files(doc) -> None:
    _load(yaml.safe_dump(doc, default_flow_style=False))


@FUZZ
@given(cut=st.integers(0, len(EXAMPLE)), insert=st.text(max_size=8))
def test_mutated_example(cut: int, insert: str) -> None:
    _load(EXAMPLE[:cut] + insert + EXAMPLE[cut:])


ACCOUNT_FIELDS = ("username", "homedir", "shell", "groupname", "members")
TALLY = {"refused": 0, "loaded": 0}


@settings(max_examples=600, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(ACCOUNT_FIELDS),
       value=st.builds(lambda a, c, b: a + c + b, st.sampled_from(["/bin/sh", "app", "/home/x"]),
                       st.sampled_from([":", ",", "\n", "\r", "\t", "\x85", "\u2028", "\x7f",
                                        " ", "#", "+", "-", "..", "/./"]) | st.characters(),
                       st.sampled_from(["", "root:x:0:0::/:/bin/sh", "sudo:x:27:app", "x"])))
def test_account_fields_in_an_image_file(field: str, value: str) -> None:
    """Each account field of an image file x each character: refused at its line naming the
    field, or loaded as written (and then written into the files as one record each)."""
    from ocibuild.accounts import merged

    user = {"username": "app", "uid": 1000}
    group = {"groupname": "web", "gid": 2000, "members": ["app"]}
    if field in ("username", "homedir", "shell"):
        user[field] = value
        group["members"] = []  # the checks of a bad username are the users' own
    elif field == "groupname":
        group[field] = value
    else:
        group["members"] = ["app", value]
    doc = {"base": "scratch", "accounts": {"users": [user], "groups": [group]}}
    with tempfile.TemporaryDirectory(prefix="ocibuild-yaml-") as root:
        path = Path(root) / "image.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        try:
            image = load_image_file(str(path))
        except OciBuildError as err:
            TALLY["refused"] += 1
            where = "groups" if field in ("groupname", "members") else "users"
            shown = "members[1]" if field == "members" else field
            assert f": accounts.{where}[0].{shown} " in str(err), err
            assert str(err).startswith(f"{path}:") and "\n" not in str(err)
            return
    TALLY["loaded"] += 1
    if field == "members":  # well formed, but no user of that name: refused, naming it
        try:
            merged(b"", b"", image.users, image.groups)
        except OciBuildError as err:
            assert str(err).startswith(f"accounts.groups[0].members[1] {value!r} is no user")
            return
        assert value == "app"
    passwd, groups = merged(b"", b"", image.users, image.groups)
    assert passwd.decode().split("\n")[:-1] == [":".join(
        ["app" if field != "username" else value, "x", "1000", "1000",
         "app" if field != "username" else value,
         value if field == "homedir" else f"/home/{value if field == 'username' else 'app'}",
         value if field == "shell" else "/sbin/nologin"])]
    assert len(groups.decode().split("\n")) == 3  # web, the user's own, and the last ""


def teardown_module() -> None:
    if sum(TALLY.values()):
        print(f"\nimage-file account fields generated: {TALLY}")
