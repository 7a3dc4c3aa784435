"""The Dockerfile parser against golden dumps in BuildKit's format (tests/core/dockerfile_corpus:
heredocs, escape directive, comments in continuations, JSON forms, flags, CRLF + BOM), the
shell lexer against Docker's substitution rules, and random input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from ocibuild.dockerfile import parser, shell
from ocibuild.errors import OciBuildError

CORPUS = Path(__file__).parent / "dockerfile_corpus"
CASES = sorted(p.stem for p in CORPUS.glob("*.Dockerfile"))


@pytest.mark.parametrize("name", CASES)
def test_corpus_parses_as_buildkit_does(name: str) -> None:
    source = (CORPUS / f"{name}.Dockerfile").read_bytes()
    expected = [line for line in (CORPUS / f"{name}.result").read_text().splitlines() if line]
    if expected and expected[-1].startswith("error"):
        line = expected[-1].split()[1]
        with pytest.raises(OciBuildError, match=rf"^{name}.Dockerfile:{line}: "):
            parser.parse(source, f"{name}.Dockerfile")
        return
    got = [parser.dump(n) for n in parser.parse(source, f"{name}.Dockerfile").nodes]
    assert got == expected


def test_line_numbers_and_errors_name_the_file_and_line() -> None:
    parsed = parser.parse(b"FROM a\n\nRUN x \\\n  y\nCMD [1]\n" [:-8] + b"USER u\n", "Df")
    assert [(n.keyword, n.start_line, n.end_line) for n in parsed.nodes] == [
        ("FROM", 1, 1), ("RUN", 3, 4), ("USER", 5, 5)]
    with pytest.raises(OciBuildError) as err:
        parser.parse(b"FROM a\nCMD [1, 2]\n", "ctx/Dockerfile")
    assert str(err.value) == ("ctx/Dockerfile:2: CMD: a JSON array form must hold strings "
                              'only, e.g. ["/app", "--port", "8080"]')
    with pytest.raises(OciBuildError) as err:
        parser.parse(b"# escape=x\nFROM a\n", "Df")
    assert str(err.value) == "Df:1: invalid escape token x; it must be \\ or ` (a backtick)"
    with pytest.raises(OciBuildError) as err:
        parser.parse(b"# only a comment\n\n", "Df")
    assert str(err.value) == ("Df: the file holds no instructions; a Dockerfile starts with "
                              "FROM (after any ARG)")
    with pytest.raises(OciBuildError) as err:
        parser.parse(b"FROM a\nENV ONLYNAME\n", "Df")
    assert str(err.value) == ("Df:2: ENV must have two arguments: ENV NAME=VALUE "
                              "(or ENV NAME VALUE)")


ENV = {"PWD": "/home", "EMPTY": "", "P": "/usr/local/bin", "SP": "a  b"}


@pytest.mark.parametrize("word,expected", [
    ("$PWD", "/home"), ("${PWD}x", "/homex"), ("$UNSET", ""), ("${UNSET:-d}", "d"),
    ("${EMPTY:-d}", "d"), ("${EMPTY-d}", ""), ("${UNSET-d}", "d"), ("${PWD:+a}", "a"),
    ("${EMPTY:+a}", ""), ("${EMPTY+a}", "a"), ("${UNSET:+a}", ""), ("'$PWD'", "$PWD"),
    ('"$PWD x"', "/home x"), ("\\$PWD", "$PWD"), ('"\\$PWD"', "$PWD"), ("a\\ b", "a b"),
    ("${UNSET:-${PWD:-y}}", "/home"), ("${P#*/}", "usr/local/bin"), ("${P##*/}", "bin"),
    ("${P%/*}", "/usr/local"), ("${P%%/*}", ""), ("${P/local/opt}", "/usr/opt/bin"),
    ("${P//l/L}", "/usr/LocaL/bin"), ("$", "$"), ("$.", "$."), ("he$1x", "hex"),
])
def test_substitution_follows_docker(word: str, expected: str) -> None:
    assert shell.expand(word, ENV) == expected


@pytest.mark.parametrize("word,message", [
    ("${PWD", "syntax error: missing '}'"), ("${}", "syntax error: bad substitution"),
    ("${UNSET?}", "UNSET: is not allowed to be unset"), ("${EMPTY:?no}", "EMPTY: no"),
    ("'open", "unexpected end of statement while looking for matching single-quote"),
    ("${X:#a}", "unsupported modifier (:#) in substitution"),
])
def test_substitution_errors(word: str, message: str) -> None:
    with pytest.raises(OciBuildError) as err:
        shell.expand(word, ENV)
    assert str(err.value) == message


def test_words_split_where_unquoted_blanks_are() -> None:
    assert shell.expand_words("x${SP}y", ENV) == ["xa", "by"]
    assert shell.expand_words('x"${SP}"y z', ENV) == ["xa  by", "z"]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet="FROMRUNCOPY <>-\\`#=\"'${}[]\n\t:eEOF",
                                          max_size=300).map(str.encode))
def test_any_bytes_parse_or_give_one_error(data: bytes) -> None:
    try:
        parsed = parser.parse(data, "Df")
    except OciBuildError as err:
        assert str(err).startswith("Df")
        return
    assert parsed.nodes


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab $:{}-+?#%/\\'\"*", max_size=40))
def test_any_word_expands_or_gives_one_error(word: str) -> None:
    try:
        shell.expand(word, ENV)
    except OciBuildError:
        pass
