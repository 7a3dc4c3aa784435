"""Debian version comparison (deb-version(7)): `[epoch:]upstream[-revision]`.

Within each part, non-digit runs compare character by character where letters sort before
non-letters and `~` before everything, even the end of the part; digit runs compare as numbers.
An epoch that is not a decimal number is an `OciBuildError`.
"""

from __future__ import annotations

import re
from functools import cmp_to_key
from typing import Tuple

from ocibuild.errors import OciBuildError


def _split(version: str) -> Tuple[int, str, str]:
    epoch, sep, rest = version.partition(":")
    if not sep:
        epoch, rest = "0", version
    # Versions come from indexes and relations: an epoch that is not a number is an error
    # in the input, not a crash.
    if not (epoch or "0").isdigit() or not epoch.isascii() or len(epoch) > 10:
        raise OciBuildError(f"{version[:80]!r} is not a Debian version: the epoch "
                            f"{epoch[:20]!r} is not a number")
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, "0"
    return int(epoch or 0), upstream, revision


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    while a or b:
        # Non-digit prefix.
        na = re.match(r"[^0-9]*", a).group(0)  # type: ignore[union-attr]
        nb = re.match(r"[^0-9]*", b).group(0)  # type: ignore[union-attr]
        for i in range(max(len(na), len(nb))):
            ca = _order(na[i]) if i < len(na) else 0
            cb = _order(nb[i]) if i < len(nb) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[len(na):], b[len(nb):]
        # Digit prefix.
        da = re.match(r"[0-9]*", a).group(0)  # type: ignore[union-attr]
        db = re.match(r"[0-9]*", b).group(0)  # type: ignore[union-attr]
        ia, ib = int(da or 0), int(db or 0)
        if ia != ib:
            return -1 if ia < ib else 1
        a, b = a[len(da):], b[len(db):]
    return 0


def compare(a: str, b: str) -> int:
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


version_key = cmp_to_key(compare)


def satisfies(version: str, op: str, wanted: str) -> bool:
    c = compare(version, wanted)
    return {"<<": c < 0, "<=": c <= 0, "=": c == 0, ">=": c >= 0, ">>": c > 0,
            "<": c <= 0, ">": c >= 0}[op]  # "<" and ">" are deprecated forms of <= and >=
