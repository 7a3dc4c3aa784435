"""Pure validators for image settings, shared by the Pants target fields and the core.

Every error reads `<setting> '<bad value>': <what is wrong>, e.g. <a valid value>`, so the
Pants field can prefix the target and field name and the message still says what to do.
"""

from __future__ import annotations

import re
from typing import Optional

from ocibuild.errors import OciBuildError

_PROTOCOLS = ("tcp", "udp", "sctp")
# Linux signal numbers (images run on Linux; the host's `signal` module may be macOS's).
_SIGNALS = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6,
    "SIGIOT": 6, "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11,
    "SIGUSR2": 12, "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16,
    "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22,
    "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26, "SIGPROF": 27,
    "SIGWINCH": 28, "SIGIO": 29, "SIGPOLL": 29, "SIGPWR": 30, "SIGSYS": 31,
    "SIGRTMIN": 34, "SIGRTMAX": 64,
}
# Real-time signals as Docker spells them: SIGRTMIN+3, SIGRTMAX-2.
_RT_SIGNAL = re.compile(r"^SIGRT(MIN\+|MAX-)([0-9]{1,2})$")
# Docker's reference grammar: path components of lowercase alphanumerics and separators.
_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _has_space_or_nul(value: str) -> bool:
    return any(c.isspace() or c == "\0" for c in value)


def parse_exposed_port(value: object) -> str:
    """`8080`, `8080/tcp`, `53/udp` -> the `PORT/PROTO` form image configs store."""
    text = str(value)
    port, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in _PROTOCOLS:
        raise OciBuildError(
            f'exposed port {text!r}: protocol must be tcp, udp or sctp, e.g. "8080/tcp"'
        )
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise OciBuildError(
            f'exposed port {text!r}: port must be a number from 1 to 65535, e.g. "8080/tcp"'
        )
    return f"{int(port)}/{proto}"


def validate_env_name(name: str) -> str:
    if not name or "=" in name or _has_space_or_nul(name):
        raise OciBuildError(
            f"environment variable name {name!r}: must be non-empty, without '=', whitespace "
            'or NUL, e.g. "APP_MODE"'
        )
    return name


def validate_user(value: str) -> str:
    parts = value.split(":")
    if len(parts) > 2 or not all(parts) or _has_space_or_nul(value):
        raise OciBuildError(
            f"user {value!r}: must be USER or USER:GROUP, names or numbers without spaces, "
            'e.g. "65532:65532" or "nobody"'
        )
    return value


def _signal_name(value: str) -> str | None:
    name = value.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name in _SIGNALS:
        return name
    rt = _RT_SIGNAL.match(name)
    if rt and 1 <= int(rt.group(2)) <= 29:
        return f"SIGRT{rt.group(1)}{int(rt.group(2))}"
    return None


def validate_stop_signal(value: str) -> str:
    """`SIGTERM`, `term` or a number 1..64; names come back as `SIGTERM`, numbers as given."""
    if value.isascii() and value.isdigit():
        if 1 <= int(value) <= 64:
            return str(int(value))
    else:
        name = _signal_name(value)
        if name:
            return name
    raise OciBuildError(
        f"stop signal {value!r}: must be a signal name or a number from 1 to 64, "
        'e.g. "SIGTERM" or "15"'
    )


def validate_absolute_path(field: str, value: str) -> str:
    """`workdir`, `volumes`: paths inside the image, which only make sense absolute."""
    if not value.startswith("/") or "\0" in value:
        example = "/" + value.lstrip("./").replace("\0", "") if value.strip("./") else "/app"
        raise OciBuildError(f'{field} {value!r}: must be an absolute path, e.g. "{example}"')
    return value


def _validate_key(kind: str, key: str, example: str) -> str:
    if not key or key != key.strip() or "\0" in key:
        raise OciBuildError(
            f"{kind} key {key!r}: must be non-empty, without surrounding whitespace, "
            f'e.g. "{example}"'
        )
    return key


def validate_label_key(key: str) -> str:
    return _validate_key("label", key, "org.opencontainers.image.source")


def validate_annotation_key(key: str) -> str:
    return _validate_key("annotation", key, "org.opencontainers.image.version")


def validate_repository(value: str) -> str:
    if not _REPOSITORY.match(value):
        raise OciBuildError(
            f"repository {value!r}: must be lowercase letters, digits and separators "
            '(. _ - /), e.g. "team/app"'
        )
    return value


def validate_tag(value: str) -> str:
    if not _TAG.match(value):
        raise OciBuildError(
            f"tag {value!r}: must be 1 to 128 letters, digits, '_', '.' or '-', not starting "
            'with "." or "-", e.g. "1.2.3"'
        )
    return value


def source_date_epoch(raw: Optional[str]) -> int:
    """Layer mtimes and the config's `created`: SOURCE_DATE_EPOCH (reproducible-builds.org)
    when set, else 0. The one parser of it, for the plugin and for `ocibuild build`."""
    if not raw:
        return 0
    if not raw.isdigit():
        raise OciBuildError(f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds since "
                            "1970-01-01 UTC; set it to e.g. $(git log -1 --format=%ct) or unset it")
    return int(raw)
