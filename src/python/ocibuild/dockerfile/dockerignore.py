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
from typing import List, Optional, Sequence, Tuple

from ocibuild.dockerfile import globmatch
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Pattern:
    text: str
    exception: bool
    regex: globmatch.Matcher


def _regex(pattern: str, where: str) -> globmatch.Matcher:
    """The pattern as moby's regular expression reads it, matched in linear time
    (globmatch.py: a backtracking regex let one line hang the build)."""
    tokens: List[globmatch.Token] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    tokens.append((globmatch.DSTAR_DIR if i < n else globmatch.DSTAR, None))
                else:
                    tokens.append((globmatch.DSTAR, None))
                continue
            tokens.append((globmatch.STAR, None))
        elif ch == "?":
            tokens.append((globmatch.ANY1, None))
        elif ch == "[":
            end = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "^!" else i + 1)
            if end < 0:
                raise OciBuildError(f"{where}: the pattern {shown(pattern)} has a [ without ]")
            body = pattern[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            try:
                tokens.append((globmatch.CLASS, globmatch.char_class(body.replace("\\", "\\\\"))))
            except re.error:
                raise OciBuildError(f"{where}: the pattern {shown(pattern)} has a character "
                                    "class that is not valid") from None
            i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            tokens.append((globmatch.LIT, pattern[i]))
        else:
            tokens.append((globmatch.LIT, ch))
        i += 1
    return globmatch.Matcher(tokens)


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


def hits(patterns: Sequence[Pattern], path: str,
         parent: Optional[Sequence[bool]] = None) -> List[bool]:
    """For each pattern: does it match `path` or one of its parent directories? `parent`: the
    same for the parent directory (computed once per directory as the context is walked:
    re-matching every parent of every path cost O(depth^2) a path, hours for a deep tree)."""
    if parent is None:
        parents = path.split("/")[:-1]
        parent = [False] * len(patterns)
        for i in range(len(parents)):
            parent = hits(patterns, "/".join(parents[:i + 1]), parent)
    return [above or bool(p.regex.match(path)) for p, above in zip(patterns, parent)]


def verdict(patterns: Sequence[Pattern], found: Sequence[bool]) -> bool:
    """Excluded, from `hits`: the last pattern that matches decides."""
    matched = False
    for pattern, hit in zip(patterns, found):
        if pattern.exception != matched:
            continue
        if hit:
            matched = not pattern.exception
    return matched


def excluded(patterns: Sequence[Pattern], path: str) -> bool:
    """Whether `path` (relative, "/"-separated) is left out of the context."""
    return verdict(patterns, hits(patterns, path))
