"""Wildcard patterns matched in time linear in the text, whatever the pattern.

`.dockerignore` lines and COPY sources are the Dockerfile author's, and in a PaaS that is
whoever pushed the repository. Translated to Python regular expressions (which backtrack),
`**/**/**/**/**/**/**/**/**/**/**/**/x` against a 25-level path took longer than minutes,
and `*a*a*a*a*a*a*a*a*a*a*a*ab` against a 40-character name as long: a build hung by one line.
Go, whose matchers docker uses, runs such patterns in linear time (RE2, filepath.Match's
bounded backtracking), so this simulates every position of the pattern at once (a Thompson
NFA): cost O(len(pattern) x len(text)).

Tokens: a literal character; ANY1 (`?`, one character but "/"); a class (`[...]`, one
character, compiled as a one-character regex, which cannot backtrack); STAR (`*`, any run
without "/"); DSTAR (`.*`, any run); DSTAR_DIR (`(.*/)?`: nothing, or any run ending in "/").
"""

from __future__ import annotations

import re
from typing import List, Set, Tuple

LIT, ANY1, CLASS, STAR, DSTAR, DSTAR_DIR = range(6)
Token = Tuple[int, object]


class Matcher:
    def __init__(self, tokens: List[Token]) -> None:
        self.tokens = tokens

    # A state is (position, inside): `inside` only for DSTAR_DIR, once it has read a
    # character of its run, which must then end in "/" (so the run can no longer be empty).

    def _close(self, states: Set[Tuple[int, bool]]) -> Set[Tuple[int, bool]]:
        """Add the states reachable without reading a character (a run may be empty)."""
        todo = list(states)
        while todo:
            i, inside = todo.pop()
            if inside or i >= len(self.tokens):
                continue
            if self.tokens[i][0] in (STAR, DSTAR, DSTAR_DIR) and (i + 1, False) not in states:
                states.add((i + 1, False))
                todo.append((i + 1, False))
        return states

    def match(self, text: str) -> bool:
        """Whether the whole of `text` matches (truthy, as re.match's result is)."""
        end = len(self.tokens)
        states = self._close({(0, False)})
        for ch in text:
            nxt: Set[Tuple[int, bool]] = set()
            for i, inside in states:
                if i == end:
                    continue
                kind, arg = self.tokens[i]
                if kind == LIT:
                    if ch == arg:
                        nxt.add((i + 1, False))
                elif kind == ANY1:
                    if ch != "/":
                        nxt.add((i + 1, False))
                elif kind == CLASS:
                    if arg.match(ch):  # type: ignore[attr-defined]
                        nxt.add((i + 1, False))
                elif kind == STAR:
                    if ch != "/":
                        nxt.add((i, False))
                elif kind == DSTAR:
                    nxt.add((i, False))
                else:  # DSTAR_DIR
                    nxt.add((i, True))
                    if ch == "/":
                        nxt.add((i + 1, False))
            if not nxt:
                return False
            states = self._close(nxt)
        return (end, False) in states


def char_class(body: str, flags: int = re.S) -> "re.Pattern[str]":
    """One character of a class whose regex body is `body`."""
    return re.compile("[" + body + "]", flags)


def literal(text: str) -> List[Token]:
    return [(LIT, c) for c in text]
