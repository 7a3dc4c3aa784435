"""Pure validators for image settings, shared by the Pants fields and the core.

Each error names the setting and the bad value and shows a valid example.
"""

from __future__ import annotations

import re
import signal

from ocibuild.errors import OciBuildError

_PROTOCOLS = ("tcp", "udp", "sctp")
# Docker's reference grammar: path components of lowercase alphanumerics and separators.
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SIGNALS = {s.name for s in signal.Signals if s.name.startswith("SIG") and "_" not in s.name}


def parse_exposed_port(value: str) -> str:
    """`8080`, `8080/tcp`, `53/udp` -> the normalized `PORT/PROTO` the config stores."""
    port, _, proto = value.partition("/")
    proto = proto or "tcp"
    if proto not in _PROTOCOLS:
        raise OciBuildError(
            f'exposed port {value!r}: protocol must be tcp, udp or sctp, e.g. "8080/tcp"'
        )
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise OciBuildError(
            f'exposed port {value!r}: the port must be a number from 1 to 65535, e.g. "8080/tcp"'
        )
    return f"{int(port)}/{proto}"


def validate_env_name(name: str) -> str:
    if not name or "=" in name or any(c.isspace() or c == "\0" for c in name):
        raise OciBuildError(
            f"environment variable name {name!r} must be non-empty, without '=' or "
            'whitespace, e.g. {"APP_MODE": "prod"}'
        )
    return name


def validate_user(value: str) -> str:
    parts = value.split(":")
    if len(parts) > 2 or not all(parts) or any(c.isspace() for c in value):
        raise OciBuildError(
            f'user {value!r} must be USER or USER:GROUP (names or numbers, no spaces), '
            'e.g. "65532:65532" or "nobody"'
        )
    return value


def validate_stop_signal(value: str) -> str:
    """`SIGTERM`, `TERM` or a number 1..64; names come back as `SIGxxx`."""
    if value.isdigit():
        if 1 <= int(value) <= 64:
            return value
    else:
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name in _SIGNALS:
            return name
    raise OciBuildError(
        f'stop signal {value!r} must be a signal name or a number from 1 to 64, e.g. "SIGTERM"'
    )


def validate_absolute_path(setting: str, value: str) -> str:
    if not value.startswith("/"):
        raise OciBuildError(f'{setting} {value!r} must be an absolute path, e.g. "/{value}"')
    return value


def validate_label_key(key: str) -> str:
    if not key or key != key.strip():
        raise OciBuildError(f"label key {key!r} must be non-empty, without surrounding spaces")
    return key


def validate_annotation_key(key: str) -> str:
    if not key or key != key.strip():
        raise OciBuildError(
            f"annotation key {key!r} must be non-empty, without surrounding spaces"
        )
    return key


def validate_repository(value: str) -> str:
    if not _REPOSITORY.match(value):
        raise OciBuildError(
            f"repository {value!r} must be lowercase letters, digits and separators (._-/), "
            'e.g. "team/app"'
        )
    return value


def validate_tag(value: str) -> str:
    if not _TAG.match(value):
        raise OciBuildError(
            f"tag {value!r} must be 1-128 letters, digits, '_', '.' or '-' and not start "
            'with \'.\' or \'-\', e.g. "1.2.3"'
        )
    return value
