"""Dockerfile text -> instruction nodes, the way BuildKit's parser (frontend/dockerfile/parser)
reads it, so a file means here what it means to `docker build`.

* Parser directives (`# syntax=`, `# escape=`, `# check=`) count only at the very top, before
  any other comment, blank line or instruction; `escape` is `\\` or a backtick.
* A line ending in the escape character (trailing blanks allowed) continues on the next;
  comment lines and blank lines inside a continuation are dropped; continuation lines keep
  their leading blanks (so `RUN a \\` / `    b` is `a     b`, as BuildKit has it).
* RUN, COPY and ADD take heredocs (`<<EOF`, `<<-EOF` strips leading tabs, a quoted name means
  no expansion); several per line are read in order.
* Flags (`--from=x`) are split off the front of the arguments as BuildKit splits them.
* The arguments are split per instruction: JSON exec form for RUN/CMD/ENTRYPOINT/SHELL (a
  JSON array of something other than strings is an error, as BuildKit has it), key=value
  words (quotes kept, expanded later) for ENV/LABEL/ARG, whitespace for FROM/EXPOSE, JSON or
  whitespace for COPY/ADD/VOLUME, the whole rest for USER/WORKDIR/STOPSIGNAL/MAINTAINER.

Bounded: the text is at most MAX_BYTES and a line at most MAX_LINE (BuildKit's scanner
refuses lines over 64 KiB too). Errors name the file and line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

MAX_BYTES = 4 << 20
MAX_LINE = (64 << 10) - 1
KNOWN = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
         "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
         "WORKDIR")
HEREDOC_INSTRUCTIONS = ("ADD", "COPY", "RUN")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_DIRECTIVES = ("syntax", "escape", "check")
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    expand: bool  # False when the name was quoted (<<"EOF", <<'EOF')
    chomp: bool  # <<- : leading tabs stripped
    fd: int = 0
    raw: str = ""  # the content as written, tabs kept (RUN gives it to the shell whole)


@dataclass(frozen=True)
class Node:
    """One instruction. `args` as the instruction's own splitting gives them (see the module
    doc); for ENV and LABEL, (key, value) pairs in `pairs`, with `legacy` for `ENV k v`."""

    keyword: str  # upper case
    original: str  # the instruction as one logical line
    start_line: int  # 1-based, where the instruction starts
    end_line: int
    flags: Tuple[str, ...] = ()
    args: Tuple[str, ...] = ()
    json: bool = False  # exec (JSON array) form
    pairs: Tuple[Tuple[str, str], ...] = ()
    legacy: bool = False
    heredocs: Tuple[Heredoc, ...] = ()
    sub: Optional["Node"] = None  # ONBUILD's instruction


@dataclass(frozen=True)
class Dockerfile:
    path: str
    nodes: Tuple[Node, ...]
    escape: str = "\\"
    directives: Dict[str, str] = field(default_factory=dict)

    def where(self, node: Node) -> str:
        return f"{self.path}:{node.start_line}"


def _error(path: str, line: int, what: str) -> OciBuildError:
    return OciBuildError(f"{path}:{line}: {what}")


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


class _Directives:
    def __init__(self, path: str) -> None:
        self.path = path
        self.escape = "\\"
        self.seen: Dict[str, str] = {}
        self.done = False
        self._continuation = self._regex()

    def _regex(self) -> "re.Pattern[str]":
        e = re.escape(self.escape)
        return re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")

    def consider(self, line: str, number: int) -> bool:
        """Whether `line` (left-trimmed) was a parser directive."""
        if self.done:
            return False
        match = _DIRECTIVE.match(line)
        if not match:
            self.done = True
            return False
        name = match.group(1).lower()
        if name not in _DIRECTIVES:
            self.done = True  # an ordinary comment that looks like one ends the directives
            return False
        if name in self.seen:
            raise _error(self.path, number, f"the parser directive {name!r} is given twice; "
                         "give it once, at the top of the file")
        value = match.group(2)
        if name == "escape":
            if value not in ("\\", "`"):
                raise _error(self.path, number, f"invalid escape token {shown(value)}; "
                             "it must be \\ or ` (a backtick)")
            self.escape = value
            self._continuation = self._regex()
        self.seen[name] = value
        return True

    def continued(self, line: str) -> Tuple[str, bool]:
        """(the line without its continuation character, whether it continues)."""
        if self._continuation.search(line):
            return self._continuation.sub(r"\1", line, count=1), True
        return line, False


def _decode(data: bytes, path: str) -> str:
    if len(data) > MAX_BYTES:
        raise OciBuildError(f"{path}: the Dockerfile is over {MAX_BYTES} bytes; it cannot be "
                            "a hand-written Dockerfile")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise _error(path, line, "is not UTF-8 text; save the Dockerfile as UTF-8") from None


def parse(data: bytes, path: str = "Dockerfile") -> Dockerfile:
    text = _decode(data, path)
    lines = text.splitlines(keepends=True) if text else []
    directives = _Directives(path)
    nodes: List[Node] = []
    i = 0
    while i < len(lines):
        raw = lines[i].rstrip("\r\n")
        number = i + 1
        i += 1
        if len(raw) > MAX_LINE:
            raise _error(path, number, f"a line is over {MAX_LINE} characters")
        stripped = raw.lstrip()
        if directives.consider(stripped, number):
            continue
        directives.done = True
        if _is_comment(stripped):
            continue
        body, more = directives.continued(stripped)
        if not more and not body:
            continue
        parts = [body]
        while more and i < len(lines):
            nxt = lines[i].rstrip("\r\n")
            i += 1
            if len(nxt) > MAX_LINE:
                raise _error(path, i, f"a line is over {MAX_LINE} characters")
            if _is_comment(nxt) or not nxt.strip():
                continue
            nxt, more = directives.continued(nxt)
            parts.append(nxt)
        line = "".join(parts)
        if not line.strip():
            continue
        node = _node(line, directives.escape, path, number, i)
        if node.keyword in HEREDOC_INSTRUCTIONS and "<<" in line:
            docs = []
            for name, chomp, expand, fd in _heredoc_names(line):
                content, found = [], False
                while i < len(lines):
                    candidate = lines[i]
                    i += 1
                    end = candidate.rstrip("\r\n")
                    if chomp:
                        end = end.lstrip("\t")
                    if end == name:
                        found = True
                        break
                    content.append(candidate)
                if not found:
                    raise _error(path, number, f"the heredoc <<{name} of {node.keyword} is "
                                 f"not terminated: end it with a line holding only {name}")
                body_text = "".join(content)
                if chomp:
                    body_text = re.sub(r"(?m)^\t+", "", body_text)
                docs.append(Heredoc(name, body_text, expand, chomp, fd, "".join(content)))
            node = _with(node, heredocs=tuple(docs), end_line=i)
        nodes.append(node)
    if not nodes:
        raise OciBuildError(f"{path}: the file holds no instructions; a Dockerfile starts "
                            "with FROM (after any ARG)")
    return Dockerfile(path, tuple(nodes), directives.escape, dict(directives.seen))


def _with(node: Node, **changes) -> Node:
    from dataclasses import replace

    return replace(node, **changes)


def _heredoc_names(line: str) -> List[Tuple[str, bool, bool, int]]:
    """The heredocs a line opens, in order: (name, chomp, expand, fd). Words are split as
    BuildKit's lexer splits them with raw quotes; a word `<<NAME` (or `<<-"NAME"`) opens one."""
    from ocibuild.dockerfile.shell import split_raw

    found = []
    for word in split_raw(line):
        match = _HEREDOC.match(word)
        if not match or not match.group(3):
            continue
        rest = match.group(3)
        unquoted = split_raw(rest, keep_quotes=False)
        if len(unquoted) != 1:
            continue
        name = unquoted[0]
        raw = split_raw(rest)[0]
        expand = name.count("'") + name.count('"') == raw.count("'") + raw.count('"')
        found.append((name, match.group(2) == "-", expand, int(match.group(1) or 0)))
    return found


def split_flags(line: str, escape: str) -> Tuple[str, List[str]]:
    """BuildKit's extractBuilderFlags: leading `--name=value` words (quotes removed, the
    escape character escapes), and the rest of the line. A lone `--` ends the flags."""
    words: List[str] = []
    pos, n = 0, len(line)
    while True:
        while pos < n and line[pos].isspace():
            pos += 1
        if pos >= n:
            return "", words
        if not line.startswith("--", pos):
            return line[pos:], words
        word, blank_ok, quote = [], False, ""
        while pos < n:
            ch = line[pos]
            if quote:
                if ch == quote:
                    quote = ""
                    pos += 1
                    continue
                if ch == escape:
                    if pos + 1 == n:
                        quote = ""
                        pos += 1
                        continue
                    pos += 1
                    ch = line[pos]
                word.append(ch)
                pos += 1
                continue
            if ch.isspace():
                break
            if ch in "'\"":
                quote, blank_ok = ch, True
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
        text = "".join(word)
        if text == "--":
            return line[pos:], words
        if blank_ok or text:
            words.append(text)


def parse_words(rest: str, escape: str) -> List[str]:
    """BuildKit's parseWords: whitespace-split words, quotes and escapes kept verbatim (the
    shell lexer removes them when the value is expanded)."""
    words: List[str] = []
    buf: List[str] = []
    in_word, quote, blank_ok = False, "", False
    pos, n = 0, len(rest)
    while pos < n:
        ch = rest[pos]
        if not in_word:
            if ch.isspace():
                pos += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if pos + 1 == n:
                    pos += 1
                    continue
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        if ch.isspace():
            if blank_ok or buf:
                words.append("".join(buf))
            buf, in_word, blank_ok = [], False, False
            pos += 1
            continue
        if ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape:
            if pos + 1 == n:
                pos += 1
                continue
            buf.append(ch)
            pos += 1
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    if in_word and (blank_ok or buf):
        words.append("".join(buf))
    return words


class _NotStrings(Exception):
    pass


def _json_array(rest: str) -> Optional[Tuple[str, ...]]:
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _NotStrings()
    return tuple(value)


def _node(line: str, escape: str, path: str, start: int, end: int) -> Node:
    head = _WHITESPACE.split(line.strip(), maxsplit=1)
    keyword = head[0].upper()
    rest, flags = split_flags(head[1], escape) if len(head) == 2 else ("", [])
    rest = rest.strip()
    node = Node(keyword, line, start, end, tuple(flags))
    try:
        return _arguments(node, rest, escape, path)
    except _NotStrings:
        raise _error(path, start, f"{keyword}: a JSON array form must hold strings only, e.g. "
                     '["/app", "--port", "8080"]') from None


def _arguments(node: Node, rest: str, escape: str, path: str) -> Node:
    k = node.keyword
    if k in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
        if not rest:
            return node
        exec_form = _json_array(rest)
        if exec_form is not None:
            return _with(node, args=exec_form, json=True)
        return _with(node, args=(rest,))
    if k in ("COPY", "ADD", "VOLUME"):
        exec_form = _json_array(rest)
        if exec_form is not None:
            return _with(node, args=exec_form, json=True)
        return _with(node, args=tuple(_WHITESPACE.split(rest)) if rest else ())
    if k in ("FROM", "EXPOSE"):
        return _with(node, args=tuple(_WHITESPACE.split(rest)) if rest else ())
    if k in ("ENV", "LABEL"):
        return _name_values(node, rest, escape, path)
    if k == "ARG":
        return _with(node, args=tuple(parse_words(rest, escape)))
    if k == "HEALTHCHECK":
        parts = re.split(r"\s+", rest, maxsplit=1) if rest else []
        if not parts:
            return node
        kind = parts[0]
        cmd = parts[1] if len(parts) == 2 else ""
        exec_form = _json_array(cmd) if cmd else None
        if exec_form is not None:
            return _with(node, args=(kind, *exec_form), json=True)
        return _with(node, args=(kind, cmd) if cmd else (kind,))
    if k == "ONBUILD":
        if not rest:
            return node
        return _with(node, sub=_node(rest, escape, path, node.start_line, node.end_line),
                     args=(rest,))
    # USER, WORKDIR, STOPSIGNAL, MAINTAINER, and unknown words (refused when typed).
    return _with(node, args=(rest,) if rest else ())


def _name_values(node: Node, rest: str, escape: str, path: str) -> Node:
    words = parse_words(rest, escape)
    if not words:
        return node
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _error(path, node.start_line, f"{node.keyword} must have two arguments: "
                         f"{node.keyword} NAME=VALUE (or {node.keyword} NAME VALUE)")
        return _with(node, pairs=((parts[0], parts[1]),), legacy=True)
    pairs = []
    for word in words:
        if "=" not in word:
            raise _error(path, node.start_line, f"{node.keyword}: cannot find '=' in "
                         f"{shown(word)}; it must be of the form NAME=VALUE")
        key, _, value = word.partition("=")
        pairs.append((key, value))
    return _with(node, pairs=tuple(pairs))


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def _quote(text: str) -> str:
    """Go's strconv.Quote, as BuildKit's dump uses it."""
    return '"' + "".join(_GO_ESCAPES.get(c) or (c if c.isprintable() else f"\\x{ord(c):02x}")
                         for c in text) + '"'


def dump(node: Node) -> str:
    """The node as BuildKit's `Node.Dump` prints it (`(copy ["--from=a"] "x" "/y")`), which its
    parser's golden files use; heredocs follow as ` <<NAME|expand|content`."""
    parts = [node.keyword.lower()]
    if node.flags:
        parts.append("[" + " ".join(_quote(f) for f in node.flags) + "]")
    if node.sub is not None:
        parts.append(dump(node.sub))
    elif node.keyword in ("ENV", "LABEL"):
        for key, value in node.pairs:
            parts += [_quote(key), _quote(value), _quote("" if node.legacy else "=")]
    else:
        parts += [_quote(a) for a in node.args]
    text = "(" + " ".join(parts) + ")"
    for doc in node.heredocs:
        content = doc.content.replace("\\", "\\\\").replace("\n", "\\n")
        text += f" <<{doc.name}|{'expand' if doc.expand else 'noexpand'}|{content}"
    return text
