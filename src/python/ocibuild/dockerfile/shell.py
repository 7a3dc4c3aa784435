"""Variable substitution as BuildKit's shell lexer (frontend/dockerfile/shell) does it.

`expand(word, env)` is what a Dockerfile instruction's argument becomes: quotes removed
('...' literal, "..." with `$` expanded and `\\"`, `\\$`, `\\\\` unescaped), the escape
character escaping the next character, and `$X`, `${X}`, `${X:-d}`, `${X-d}`, `${X:+a}`,
`${X+a}`, `${X:?msg}`, `${X?msg}`, `${X#pat}`, `${X##pat}`, `${X%pat}`, `${X%%pat}`,
`${X/pat/rep}`, `${X//pat/rep}` (`*` and `?` patterns). An unset name expands to "".
`expand_words` also splits the result into words where unquoted blanks are (for COPY/ADD
sources, EXPOSE, VOLUME). A syntax error is an OciBuildError naming the word; the caller adds
file and line.
"""

from __future__ import annotations

import re
from typing import Callable, List, Mapping, Optional, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

_SPECIAL = set("@*#?-$!0")


class _Word:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, raw_quotes: bool,
                 raw_escapes: bool, skip_unset: bool, skip_quotes: bool = False) -> None:
        self.text, self.pos = text, 0
        self.skip_quotes = skip_quotes
        self.env, self.escape = env, escape
        self.raw_quotes, self.raw_escapes, self.skip_unset = raw_quotes, raw_escapes, skip_unset

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def run(self, stop: str = "", raw_escapes: Optional[bool] = None) -> Tuple[str, List[str]]:
        saved = self.raw_escapes
        if raw_escapes is not None:
            self.raw_escapes = raw_escapes
        try:
            return self._run(stop)
        finally:
            self.raw_escapes = saved

    def _run(self, stop: str) -> Tuple[str, List[str]]:
        result: List[str] = []
        words = _Words()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.done()
            if ch == "$":
                value = self.dollar()
                result.append(value)
                words.add_string(value)
            elif ch == "'" and not self.skip_quotes:
                value = self.single_quote()
                result.append(value)
                words.add_raw(value)
            elif ch == '"' and not self.skip_quotes:
                value = self.double_quote()
                result.append(value)
                words.add_raw(value)
            elif ch == "<" and self.text.startswith("<<", self.pos):
                self.pos += 2
                start = self.pos
                while self.peek() in (" ", "\t") and self.peek():
                    self.next()
                value = "<<" + self.text[start:self.pos]
                result.append(value)
                words.add_raw(value)
            else:
                ch = self.next()
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self.next()
                    if not ch:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise OciBuildError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.done()

    def single_quote(self) -> str:
        ch = self.next()
        out = [ch] if self.raw_quotes else []
        while True:
            ch = self.next()
            if not ch:
                raise OciBuildError("unexpected end of statement while looking for matching "
                                    "single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        ch = self.next()
        out = [ch] if self.raw_quotes else []
        while True:
            peek = self.peek()
            if not peek:
                raise OciBuildError("unexpected end of statement while looking for matching "
                                    "double-quote")
            if peek == '"':
                ch = self.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if peek == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                if not self.peek():
                    continue
                if self.peek() in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        out = []
        while self.peek():
            ch = self.peek()
            if not out and ch.isdigit():
                while self.peek().isdigit() and self.peek():
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL:
                return self.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def lookup(self, name: str) -> Tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.lookup(name)
            return "$" + name if not found and self.skip_unset else value
        self.next()
        if not self.peek():
            raise OciBuildError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise OciBuildError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if not ch:
            raise OciBuildError("syntax error: missing '}'")
        if ch == "}":
            value, found = self.lookup(name)
            return "${" + name + "}" if not found and self.skip_unset else value
        if ch == "/":
            return self._replace(name)
        null_is_unset = ch == ":"
        modifier = ch
        if null_is_unset:
            ch = self.next()
            modifier += ch
        if ch not in ("+", "-", "?", "#", "%"):
            raise OciBuildError(f"unsupported modifier ({modifier}) in substitution")
        pattern_like = ch in "#%"
        if null_is_unset and pattern_like:
            raise OciBuildError(f"unsupported modifier ({modifier}) in substitution")
        try:
            word, _ = self.run("}", raw_escapes=pattern_like)
        except OciBuildError:
            if not self.peek():
                raise OciBuildError("syntax error: missing '}'") from None
            raise
        value, found = self.lookup(name)
        if self.skip_unset and not found:
            return "${" + name + modifier + word + "}"
        empty = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not found:
                raise OciBuildError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise OciBuildError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(ch)
        if greedy:
            word = word[1:]
        return _trim(value, word, greedy, suffix=ch == "%")

    def _replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.run("/", raw_escapes=True)
        except OciBuildError:
            raise OciBuildError("syntax error: missing '/' in ${}") from None
        try:
            replacement, _ = self.run("}", raw_escapes=True)
        except OciBuildError:
            raise OciBuildError("syntax error: missing '}'") from None
        value, found = self.lookup(name)
        if self.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern(pattern, greedy=True, anchored=False)
        if replace_all:
            return regex.sub(lambda m: replacement, value)
        return regex.sub(lambda m: replacement, value, count=1)


class _Words:
    def __init__(self) -> None:
        self.buf: List[str] = []
        self.words: List[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf, self.in_word = [], False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def done(self) -> List[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf, self.in_word = [], False
        return self.words


def _pattern(pattern: str, greedy: bool, anchored: bool) -> "re.Pattern[str]":
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue
            i += 1
            if nxt not in ("*", "?", "\\"):
                raise OciBuildError(f"invalid escape '\\{nxt}' in the pattern {shown(pattern)}")
            out.append(re.escape(nxt))
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.S)


def _trim(value: str, word: str, greedy: bool, suffix: bool) -> str:
    """${X#pat} / ${X##pat} / ${X%pat} / ${X%%pat}: the shortest (longest) match removed."""
    regex = _pattern(word, greedy=False, anchored=False)
    lengths = range(len(value) + 1)
    candidates = list(lengths) if not greedy else list(reversed(lengths))
    if not suffix:
        # prefix: the shortest (or longest) value[:n] matching the whole pattern
        for n in (candidates if not greedy else candidates):
            if regex.fullmatch(value[:n]):
                return value[n:]
        return value
    for n in candidates:
        if regex.fullmatch(value[len(value) - n:]):
            return value[:len(value) - n]
    return value


def _lexer(escape: str, raw_quotes: bool = False, raw_escapes: bool = False,
           skip_unset: bool = False) -> Callable[[str, Mapping[str, str]], Tuple[str, List[str]]]:
    def process(word: str, env: Mapping[str, str]) -> Tuple[str, List[str]]:
        return _Word(word, env, escape, raw_quotes, raw_escapes, skip_unset).run()
    return process


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    return _lexer(escape)(word, env)[0]


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> List[str]:
    return _lexer(escape)(word, env)[1]


def expand_heredoc(text: str, env: Mapping[str, str]) -> str:
    """A COPY/ADD heredoc's content as BuildKit expands it: `$` and `\\` only (always the
    backslash, whatever `# escape=` says); quotes are plain characters."""
    return _Word(text, env, "\\", False, False, False, skip_quotes=True).run()[0]


def split_raw(line: str, keep_quotes: bool = True) -> List[str]:
    """Words of `line` with quotes (and escapes) kept and `$X` left alone: how BuildKit finds
    heredoc openers in an instruction line."""
    try:
        return _lexer("\\", raw_quotes=keep_quotes, raw_escapes=keep_quotes,
                      skip_unset=True)(line, {})[1]
    except OciBuildError:
        return []
