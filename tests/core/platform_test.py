"""Platforms: parsing with exact errors, JSON, and matching descriptors with variant defaults."""

from __future__ import annotations

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.platform import Platform, from_config, parse_platform


def test_parse_and_to_json() -> None:
    assert parse_platform("linux/amd64") == Platform("linux", "amd64")
    assert parse_platform("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert parse_platform("linux/arm/v6").to_json() == {"os": "linux", "architecture": "arm",
                                                         "variant": "v6"}
    assert parse_platform("windows/amd64").to_json() == {"os": "windows",
                                                          "architecture": "amd64"}
    assert str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"


@pytest.mark.parametrize("raw, message", [
    ("linux", "platform 'linux': must be os/arch[/variant], "
              'e.g. "linux/amd64" or "linux/arm64"'),
    ("linux//v8", "platform 'linux//v8': must be os/arch[/variant], "
                  'e.g. "linux/amd64" or "linux/arm64"'),
    ("linux/amd64/v1/x", "platform 'linux/amd64/v1/x': must be os/arch[/variant], "
                         'e.g. "linux/amd64" or "linux/arm64"'),
])
def test_parse_shape_errors(raw, message) -> None:
    with pytest.raises(OciBuildError) as err:
        parse_platform(raw)
    assert str(err.value) == message


def test_parse_unknown_values() -> None:
    with pytest.raises(OciBuildError) as err:
        parse_platform("linux/x86_64")
    assert str(err.value).startswith(
        "platform 'linux/x86_64': unknown architecture 'x86_64'; use one of amd64, arm64, arm, "
        "386, ppc64le,"
    )
    with pytest.raises(OciBuildError) as err:
        parse_platform("Linux/amd64")
    assert str(err.value).startswith(
        "platform 'Linux/amd64': unknown os 'Linux'; use one of linux, windows, darwin, freebsd,"
    )


@pytest.mark.parametrize("platform, descriptor, expected", [
    ("linux/arm64", {"os": "linux", "architecture": "arm64", "variant": "v8"}, True),
    ("linux/arm64/v8", {"os": "linux", "architecture": "arm64"}, True),
    ("linux/arm", {"os": "linux", "architecture": "arm", "variant": "v7"}, True),
    ("linux/arm", {"os": "linux", "architecture": "arm", "variant": "v6"}, False),
    ("linux/arm/v6", {"os": "linux", "architecture": "arm", "variant": "v6"}, True),
    ("linux/amd64", {"os": "linux", "architecture": "amd64"}, True),
    ("linux/amd64", {"os": "linux", "architecture": "arm64"}, False),
    ("linux/amd64", {"os": "windows", "architecture": "amd64"}, False),
    ("linux/amd64", None, False),
    ("linux/amd64", {"os": "unknown", "architecture": "unknown"}, False),
])
def test_matches(platform, descriptor, expected) -> None:
    assert parse_platform(platform).matches(descriptor) is expected


def test_from_config() -> None:
    config = {"os": "linux", "architecture": "arm64", "variant": "v8"}
    assert from_config(config, where="x") == Platform("linux", "arm64", "v8")
    with pytest.raises(OciBuildError) as err:
        from_config({"os": "linux"}, where="the base 'b'")
    assert str(err.value) == (
        "the config of the base 'b' lacks architecture, which the OCI image spec requires; "
        "re-create the image with a tool that writes them (skopeo, docker)"
    )
