"""Field and target checks that run as a BUILD file is read: plain constructors, no engine.

A target is made the way the engine makes it from a BUILD file (`TargetType(values,
address)`), so the checks and their messages are exactly what `pants` reports; one test in
oci_image_test.py keeps the path through a real BUILD file and the engine honest.
"""

from __future__ import annotations

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException, InvalidTargetException, Target

from pants_oci import register

TARGET_TYPES = {target_type.alias: target_type for target_type in register.target_types()}


def make_target(alias: str, address: Address, **fields) -> Target:
    return TARGET_TYPES[alias](fields, address)


def field_error(alias: str, address: Address, **fields) -> str:
    """The message of the field check that refuses the target (Pants wraps it in an
    InvalidTargetException naming the BUILD file, which is the address's directory here)."""
    with pytest.raises(InvalidTargetException) as err:
        make_target(alias, address, **fields)
    assert isinstance(err.value.__cause__, InvalidFieldException), repr(err.value.__cause__)
    assert str(err.value) == f"{address.spec_path}: {err.value.__cause__}"
    return str(err.value.__cause__)


@pytest.mark.parametrize(
    "field, message",
    [
        (
            {"exposed_ports": ["80/xyz"]},
            "The 'exposed_ports' field in target bad:image: exposed port '80/xyz': "
            'protocol must be tcp, udp or sctp, e.g. "8080/tcp"',
        ),
        ({"workdir": "app"}, "The 'workdir' field in target bad:image: "),
        ({"user": "a b"}, "The 'user' field in target bad:image: "),
        ({"platform": "linux/z80"}, "The 'platform' field in target bad:image: "),
        ({"env": {"A B": "1"}}, "The 'env' field in target bad:image: "),
        ({"stop_signal": "SIGFOO"}, "The 'stop_signal' field in target bad:image: "),
        ({"image_tags": ["Bad Tag"]}, "The 'image_tags' field in target bad:image: "),
        ({"entrypoint": "/bin/sh"}, "The 'entrypoint' field in target bad:image must be an iterable"),
    ],
)
def test_invalid_image_fields(field: dict, message: str) -> None:
    assert message in field_error("oci_image", Address("bad", target_name="image"),
                                  base="scratch", **field)


def test_valid_image_fields_are_kept() -> None:
    """The other side of the checks above: good values pass and are normalized."""
    target = make_target("oci_image", Address("ok", target_name="image"), base="scratch",
                         exposed_ports=["8080"], workdir="/srv", user="65532:65532",
                         platform="linux/arm64", env={"MODE": "prod"}, stop_signal="SIGTERM",
                         image_tags=["1.0"], entrypoint=["/bin/server"])
    values = {field.alias: field.value for field in target.field_values.values()}
    values["env"] = dict(values["env"])
    assert {k: values[k] for k in ("workdir", "user", "platform", "env", "stop_signal",
                                   "image_tags", "entrypoint")} == {
        "workdir": "/srv", "user": "65532:65532", "platform": "linux/arm64",
        "env": {"MODE": "prod"}, "stop_signal": "SIGTERM", "image_tags": ("1.0",),
        "entrypoint": ("/bin/server",)}


@pytest.mark.parametrize("field, message", [
    ({"owner": "nonroot"}, "The 'owner' field in target x:l: 'nonroot' must be numeric UID:GID"),
    ({"file_mode": "rw-r"}, "The 'file_mode' field in target x:l: 'rw-r' must be an octal mode"),
])
def test_bad_layer_owner_and_mode(field: dict, message: str) -> None:
    assert message in field_error("oci_layer", Address("x", target_name="l"), **field)


DEBIAN = {"packages": ["x"], "suite": "testing", "mirror": "http://127.0.0.1:9/debian"}


@pytest.mark.parametrize("value", [1, 101, "8"])
def test_max_layers_is_validated(value: object) -> None:
    message = field_error("debian_packages", Address("img", target_name="base"), **DEBIAN,
                          max_layers=value)
    if value == "8":
        assert "The 'max_layers' field in target img:base must be an integer" in message
    else:
        assert (f"The 'max_layers' field in target img:base must be an integer from 2 to 100 "
                "(one layer for the largest package and one shared by the rest, at least), "
                f"not {value}.") in message


def test_max_layers_bounds_are_allowed() -> None:
    for value in (2, 100):
        target = make_target("debian_packages", Address("img", target_name="base"), **DEBIAN,
                             max_layers=value)
        assert [f.value for f in target.field_values.values() if f.alias == "max_layers"] == [value]


def test_a_target_with_sources_and_suite_is_an_error() -> None:
    with pytest.raises(InvalidTargetException) as err:
        make_target("debian_packages", Address("img", target_name="base"), packages=["x"],
                    suite="testing", mirror="http://m",
                    sources=[{"suite": "x", "mirror": "http://m"}])
    assert ("The debian_packages img:base sets `sources` and `suite`, `mirror`: list every "
            "suite (with its mirror and keyring) in `sources` instead") in str(err.value)
