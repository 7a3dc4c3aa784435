"""Docker's image-config semantics for the metadata instructions, and the history strings
BuildKit writes for them (`created_by`), as pure functions.

Go's formatting is reproduced where BuildKit prints Go values into history: `%q` of a string
slice (`["/bin/sh" "-c" "x"]`), `%v` (`[/data /logs]`), a map of exposed ports
(`map[80/tcp:{} 443/tcp:{}]`, keys sorted) and a health config (`%+v`).
"""

from __future__ import annotations

import json
import re
from typing import Dict, List, Optional, Sequence, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown
from ocibuild.validate import parse_exposed_port, validate_stop_signal

DEFAULT_SHELL = ("/bin/sh", "-c")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def go_quoted(words: Sequence[str]) -> str:
    """Go's fmt %q of a []string."""
    return "[" + " ".join(json.dumps(w, ensure_ascii=False) for w in words) + "]"


def go_list(words: Sequence[str]) -> str:
    """Go's fmt %v of a []string."""
    return "[" + " ".join(words) + "]"


def set_env(env: List[str], key: str, value: str) -> List[str]:
    """docker's addEnv: a name already there keeps its place and takes the new value."""
    out = list(env)
    for i, item in enumerate(out):
        if item.partition("=")[0] == key:
            out[i] = f"{key}={value}"
            return out
    out.append(f"{key}={value}")
    return out


def env_map(env: Sequence[str]) -> Dict[str, str]:
    return {k: v for k, _, v in (item.partition("=") for item in env)}


def with_shell(shell: Optional[Sequence[str]], command: str) -> List[str]:
    return [*(shell or DEFAULT_SHELL), command]


def ports(words: Sequence[str], where: str) -> List[str]:
    """EXPOSE's words as PORT/PROTO keys; a range (8000-8002/tcp) is each of its ports."""
    out = []
    for word in words:
        number, sep, proto = word.partition("/")
        start, dash, end = number.partition("-")
        try:
            if dash:
                low, high = int(start), int(end)
                if not 0 < low <= high <= 65535 or high - low > 65535:
                    raise ValueError
                out += [parse_exposed_port(f"{p}{sep}{proto}") for p in range(low, high + 1)]
            else:
                out.append(parse_exposed_port(word))
        except (ValueError, OciBuildError):
            raise OciBuildError(f"{where}: {shown(word)} is not a port, a range or PORT/PROTO "
                                "(tcp, udp, sctp), e.g. 8080 or 53/udp") from None
    return out


def go_map_ports(keys: Sequence[str]) -> str:
    return "map[" + " ".join(f"{k}:{{}}" for k in sorted(keys)) + "]"


def stop_signal(value: str, where: str) -> str:
    try:
        validate_stop_signal(value)
    except OciBuildError:
        raise OciBuildError(f"{where}: {shown(value)} is not a signal (a name such as SIGTERM, "
                            "or a number from 1 to 64)") from None
    return value  # kept as written, as docker does


def duration(text: str, flag: str, where: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds."""
    pos, total = 0, 0.0
    if text == "0":
        return 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise OciBuildError(f"{where}: --{flag}={shown(text)} is not a duration, e.g. 30s "
                            "or 1m30s")
    return int(total)


def go_duration(ns: int) -> str:
    """Go's time.Duration String() for whole units (what HEALTHCHECK history shows)."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    out, rest = "", ns
    hours, rest = divmod(rest, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = rest / 1_000_000_000
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{seconds:g}s"


def healthcheck(kind: str, command: Tuple[str, ...], json_form: bool,
                flags: Dict[str, Optional[str]], where: str) -> Tuple[dict, str]:
    """(the config's Healthcheck, its history string)."""
    if kind == "NONE":
        test: List[str] = ["NONE"]
    elif json_form:
        test = ["CMD", *command]
    else:
        test = ["CMD-SHELL", command[0]]
    health: dict = {"Test": test}
    values = {}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        value = flags.get(flag)
        ns = duration(value, flag, where) if value else 0
        if ns and ns < 1_000_000 and flag != "start-period":
            raise OciBuildError(f"{where}: --{flag} must be at least 1ms, not {shown(value)}")
        values[key] = ns
        if ns:
            health[key] = ns
    retries = 0
    if flags.get("retries") is not None:
        try:
            retries = int(flags["retries"] or "")
        except ValueError:
            retries = -1
        if retries < 0:
            raise OciBuildError(f"{where}: --retries must be a whole number >= 0, not "
                                f"{shown(flags['retries'] or '')}")
    if retries:
        health["Retries"] = retries
    shown_test = go_list(test)
    history = (f"HEALTHCHECK &{{Test:{shown_test} Interval:{go_duration(values['Interval'])} "
               f"Timeout:{go_duration(values['Timeout'])} "
               f"StartPeriod:{go_duration(values['StartPeriod'])} "
               f"StartInterval:{go_duration(values['StartInterval'])} Retries:{retries}}}")
    return health, history
