"""`.dockerignore` as Docker reads and matches it (moby/patternmatcher).

Reading: one pattern a line, `#` lines are comments, blanks trimmed, `!` makes an exception,
each pattern cleaned (`a/../b` -> `b`, a leading `/` dropped). Matching: a path is excluded
when the last pattern that matches it or one of its parent directories is not an exception.
`*` and `?` stay within one path component, `**` spans any number of them (none included),
`[...]` is a character class, the escape character `\\` quotes the next one.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Pattern:
    text: str
    exception: bool
    regex: "re.Pattern[str]"


def _regex(pattern: str, where: str) -> "re.Pattern[str]":
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(.*/)?" if i < n else ".*")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "^!" else i + 1)
            if end < 0:
                raise OciBuildError(f"{where}: the pattern {shown(pattern)} has a [ without ]")
            body = pattern[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.S)


def parse(data: bytes, where: str) -> Tuple[Pattern, ...]:
    if len(data) > MAX_BYTES:
        raise OciBuildError(f"{where} is over {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise OciBuildError(f"{where} is not UTF-8 text") from None
    patterns: List[Pattern] = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        if line:
            line = posixpath.normpath(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append(Pattern(line, exception, _regex(line, where)))
    return tuple(patterns)


def excluded(patterns: Sequence[Pattern], path: str) -> bool:
    """Whether `path` (relative, "/"-separated) is left out of the context."""
    parents = path.split("/")[:-1]
    matched = False
    for pattern in patterns:
        if pattern.exception != matched:
            continue
        match = bool(pattern.regex.match(path))
        if not match:
            match = any(pattern.regex.match("/".join(parents[:i + 1]))
                        for i in range(len(parents)))
        if match:
            matched = not pattern.exception
    return matched
