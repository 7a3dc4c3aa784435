from __future__ import annotations

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.reference import Reference, parse_reference

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "value, expected",
    [
        ("python", Reference("docker.io", "library/python")),
        ("python:3.12-slim", Reference("docker.io", "library/python", "3.12-slim")),
        ("org/app", Reference("docker.io", "org/app")),
        ("docker.io/python", Reference("docker.io", "library/python")),
        ("ghcr.io/org/app:1.0", Reference("ghcr.io", "org/app", "1.0")),
        ("127.0.0.1:5000/app", Reference("127.0.0.1:5000", "app")),
        ("localhost/app@" + DIGEST, Reference("localhost", "app", None, DIGEST)),
        ("r.example.com:443/a/b:t@" + DIGEST, Reference("r.example.com:443", "a/b", "t", DIGEST)),
    ],
)
def test_parse(value: str, expected: Reference) -> None:
    assert parse_reference(value) == expected


def test_docker_hub_api_host() -> None:
    assert parse_reference("python").api_host == "registry-1.docker.io"
    assert str(parse_reference("python:3")) == "docker.io/library/python:3"


@pytest.mark.parametrize("value", ["Upper/app", "ghcr.io/", "app:bad tag", "app@sha256:xyz"])
def test_rejects(value: str) -> None:
    with pytest.raises(OciBuildError):
        parse_reference(value)


@pytest.mark.parametrize("value", [
    "evil.example#.registry.example:5000/app",  # would send requests to evil.example
    "registry.example?x=1/app",
    "registry.example:port/app",
    "-bad.example/app",
    "registry.example:5000 /app",
])
def test_rejects_registries_that_are_not_host_and_port(value: str) -> None:
    with pytest.raises(OciBuildError, match=r"bad registry .*: it must be a host name or IP "
                                            r"with an optional port"):
        parse_reference(value)


def test_accepts_ipv6_and_uppercase_hosts() -> None:
    assert parse_reference("[::1]:5000/app").registry == "[::1]:5000"
    assert parse_reference("Registry.Example/app").registry == "Registry.Example"
