"""The validators shared by the Pants fields and the core: accepted values and exact errors."""

from __future__ import annotations

import pytest

from ocibuild import validate
from ocibuild.errors import OciBuildError


def error_of(check, *args) -> str:
    with pytest.raises(OciBuildError) as err:
        check(*args)
    return str(err.value)


@pytest.mark.parametrize("raw, normalized", [
    ("8080/tcp", "8080/tcp"), ("53/udp", "53/udp"), ("8080", "8080/tcp"), (443, "443/tcp"),
    ("9/SCTP", "9/sctp"), ("0080", "80/tcp"), ("1", "1/tcp"), ("65535/udp", "65535/udp"),
])
def test_exposed_port_accepted(raw, normalized) -> None:
    assert validate.parse_exposed_port(raw) == normalized


@pytest.mark.parametrize("raw, message", [
    ("80/xyz", "exposed port '80/xyz': protocol must be tcp, udp or sctp, e.g. \"8080/tcp\""),
    ("http", "exposed port 'http': port must be a number from 1 to 65535, e.g. \"8080/tcp\""),
    ("0", "exposed port '0': port must be a number from 1 to 65535, e.g. \"8080/tcp\""),
    ("65536/tcp",
     "exposed port '65536/tcp': port must be a number from 1 to 65535, e.g. \"8080/tcp\""),
    ("8000-8010", "exposed port '8000-8010': port must be a number from 1 to 65535, "
                  "e.g. \"8080/tcp\""),
    ("/tcp", "exposed port '/tcp': port must be a number from 1 to 65535, e.g. \"8080/tcp\""),
])
def test_exposed_port_rejected(raw, message) -> None:
    assert error_of(validate.parse_exposed_port, raw) == message


@pytest.mark.parametrize("name", ["APP_MODE", "lower", "with.dot", "ünïcode", "a-b"])
def test_env_name_accepted(name) -> None:
    assert validate.validate_env_name(name) == name


@pytest.mark.parametrize("name", ["", "A=B", "A B", "TAB\t", "NUL\0"])
def test_env_name_rejected(name) -> None:
    assert error_of(validate.validate_env_name, name) == (
        f"environment variable name {name!r}: must be non-empty, without '=', whitespace or "
        'NUL, e.g. "APP_MODE"'
    )


@pytest.mark.parametrize("user", ["65532:65532", "nobody", "1000", "app:app", "0:root"])
def test_user_accepted(user) -> None:
    assert validate.validate_user(user) == user


@pytest.mark.parametrize("user", ["", "a:b:c", ":1", "1:", "my user", "a :b"])
def test_user_rejected(user) -> None:
    assert error_of(validate.validate_user, user) == (
        f"user {user!r}: must be USER or USER:GROUP, names or numbers without spaces, "
        'e.g. "65532:65532" or "nobody"'
    )


@pytest.mark.parametrize("raw, normalized", [
    ("SIGTERM", "SIGTERM"), ("TERM", "SIGTERM"), ("sigint", "SIGINT"), ("15", "15"),
    ("64", "64"), ("1", "1"), ("SIGPWR", "SIGPWR"), ("SIGRTMIN+3", "SIGRTMIN+3"),
    ("rtmax-2", "SIGRTMAX-2"),
])
def test_stop_signal_accepted(raw, normalized) -> None:
    assert validate.validate_stop_signal(raw) == normalized


@pytest.mark.parametrize("raw", ["SIGFOO", "0", "65", "-9", "", "SIG", "SIGRTMIN+40", "９"])
def test_stop_signal_rejected(raw) -> None:
    assert error_of(validate.validate_stop_signal, raw) == (
        f'stop signal {raw!r}: must be a signal name or a number from 1 to 64, '
        'e.g. "SIGTERM" or "15"'
    )


def test_absolute_path() -> None:
    assert validate.validate_absolute_path("workdir", "/srv/app") == "/srv/app"
    assert error_of(validate.validate_absolute_path, "workdir", "app") == (
        "workdir 'app': must be an absolute path, e.g. \"/app\""
    )
    assert error_of(validate.validate_absolute_path, "volume", "./data") == (
        "volume './data': must be an absolute path, e.g. \"/data\""
    )
    assert error_of(validate.validate_absolute_path, "workdir", "") == (
        "workdir '': must be an absolute path, e.g. \"/app\""
    )


def test_label_and_annotation_keys() -> None:
    assert validate.validate_label_key("org.example.team") == "org.example.team"
    assert validate.validate_annotation_key("com.example/x") == "com.example/x"
    assert error_of(validate.validate_label_key, "") == (
        "label key '': must be non-empty, without surrounding whitespace, "
        'e.g. "org.opencontainers.image.source"'
    )
    assert error_of(validate.validate_annotation_key, " a") == (
        "annotation key ' a': must be non-empty, without surrounding whitespace, "
        'e.g. "org.opencontainers.image.version"'
    )


def test_repository_and_tag() -> None:
    assert validate.validate_repository("team/my-app") == "team/my-app"
    assert validate.validate_tag("1.2.3_rc-1") == "1.2.3_rc-1"
    assert error_of(validate.validate_repository, "Team/App") == (
        "repository 'Team/App': must be lowercase letters, digits and separators (. _ - /), "
        'e.g. "team/app"'
    )
    assert error_of(validate.validate_tag, ".hidden") == (
        "tag '.hidden': must be 1 to 128 letters, digits, '_', '.' or '-', not starting with "
        '"." or "-", e.g. "1.2.3"'
    )
