"""Fallback mirror templates: bare placeholders only, a bounded length, checked where read.

`{timestamp:>40000000}` made a 40 MB URL and `{suite!r}` a quoted one; both reached
`str.format` at download time. A generated family of template strings is compared with a
model (a regular expression of what a template may be), and every accepted one fills
without an error into a URL of bounded length.
"""

from __future__ import annotations

import re
from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocibuild.debian.fallback import MAX_TEMPLATE, PLACEHOLDERS, check_template, fallback_urls
from ocibuild.errors import OciBuildError

SOURCE = {"suite": "trixie-security", "mirror": "http://deb.debian.org/debian-security",
          "timestamp": "20251108T103211Z"}


@pytest.mark.parametrize("template,message", [
    ("http://s/{timestamp:>40000000}",
     "w: the fallback mirror 'http://s/{timestamp:>40000000}' uses {timestamp:>40000000}; the "
     "placeholders are {archive}, {suite}, {timestamp}, each bare (no format spec, conversion, "
     "attribute or index)"),
    ("http://s/{suite!r}", "w: the fallback mirror 'http://s/{suite!r}' uses {suite!r}; the "),
    ("http://s/{suite:}", "uses {suite:}; the placeholders are"),
    ("http://s/{suite.__class__}", "uses {suite.__class__}; the placeholders are"),
    ("http://s/{suite[0]}", "uses {suite[0]}; the placeholders are"),
    ("http://s/{}", "uses {}; the placeholders are"),
    ("http://s/{0}", "uses {0}; the placeholders are"),
    ("http://s/{timestamp:{suite}}",
     "w: the fallback mirror 'http://s/{timestamp:{suite}}' has a lone `{` at character 10"),
    ("http://s/x}", "w: the fallback mirror 'http://s/x}' has a lone `}` at character 11; "
                    "write a literal brace as {{ or }}"),
    ("http://s/" + "a" * MAX_TEMPLATE,
     f"w: the fallback mirror {('http://s/' + 'a' * 111)!r}... ({MAX_TEMPLATE + 9} characters) "
     f"is longer than {MAX_TEMPLATE} characters; a mirror URL is a host and a short path"),
    ("http://s/a b", "w: the fallback mirror 'http://s/a b' holds a space or a control "
                     "character; percent-encode it (%20)"),
    ("http://s/\n{suite}", "w: the fallback mirror 'http://s/\\n{suite}' holds a space or a "
                           "control character"),
    ("file:///etc/{suite}", "w: the fallback mirror 'file:///etc/{suite}' must be an http:// "
                            "or https:// URL (template)"),
], ids=["width-spec", "conversion", "empty-spec", "attribute", "index", "positional-empty",
        "positional", "nested", "lone-close", "too-long", "space", "newline", "scheme"])
def test_a_template_holds_bare_placeholders_only(template: str, message: str) -> None:
    with pytest.raises(OciBuildError) as err:
        check_template(template, "w")
    assert str(err.value).startswith("w: the fallback mirror ")
    assert message in str(err.value)


def test_literal_braces_are_not_placeholders() -> None:
    check_template("http://s/{{timestamp}}/{suite}", "w")
    # A literal `{timestamp}` needs no timestamp.
    assert fallback_urls(["http://s/{{timestamp}}/{suite}"], {**SOURCE, "timestamp": ""},
                         "p.deb") == ["http://s/{timestamp}/trixie-security/p.deb"]


_MODEL = re.compile(r"https?://(?:[^{}\s]|\{\{|\}\}|\{(?:archive|suite|timestamp)\})*")
_PIECES = ["{", "}", "{{", "}}", ":", "!", "r", ">", "9", "0", ".", "[", "]", "x", "/", " ",
           "\n", "%", "-"] + [f"{{{p}}}" for p in PLACEHOLDERS] + \
          [f"{{{p}" for p in PLACEHOLDERS] + ["{timestamp:>9}", "{suite!s}", "{archive:}"]
GENERATED = [0]


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(["http://h/", "https://h/", "ftp://h/", "http:/h", ""]),
       st.lists(st.sampled_from(_PIECES), max_size=12))
def test_templates_against_a_model(prefix: str, pieces: list) -> None:
    GENERATED[0] += 1
    template = prefix + "".join(pieces)
    accepted = bool(_MODEL.fullmatch(template)) and all(c.isprintable() for c in template)
    try:
        check_template(template, "w")
    except OciBuildError as err:
        assert not accepted, f"{template!r} refused: {err}"
        assert str(err).startswith("w: the fallback mirror ")
        return
    assert accepted, f"{template!r} accepted"
    (url,) = fallback_urls([template], SOURCE, "pool/p.deb")
    values = {"archive": "debian-security", "suite": SOURCE["suite"],
              "timestamp": SOURCE["timestamp"]}
    filled = re.sub(r"\{\{|\}\}|\{(\w+)\}",
                    lambda m: values[m.group(1)] if m.group(1) else m.group(0)[0], template)
    assert url == filled.rstrip("/") + "/pool/p.deb"
    assert len(url) < 2 * MAX_TEMPLATE


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print(f"\ngenerated fallback templates: {GENERATED[0]}")
