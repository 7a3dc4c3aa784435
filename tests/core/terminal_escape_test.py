"""No server-chosen string puts a control character into our messages (issue 20, item 7).

`OciBuildError` escapes at construction, so every error is covered wherever it is made. A
property test feeds any text (controls, C1 CSI, bidi overrides, lone surrogates) to the
error-making code; a generated family then puts escape sequences in each place a hostile
registry controls (error bodies, the reason phrase, the auth scheme, the realm, redirect and
upload Locations, the Content-Type, an index's `platform.os`) on a real loopback server.
"""

from __future__ import annotations

import io
import itertools
import json
import unicodedata
from pathlib import Path
from typing import Callable, Dict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild import mediatypes
from ocibuild.errors import OciBuildError, escaped
from ocibuild.platform import parse_platform
from ocibuild.progress import Progress
from ocibuild.reference import parse_reference
from ocibuild.registry.errors import RegistryError, error_message
from ocibuild.registry.pull import Manifest, fetch_manifest, image_manifest, select_platform
from ocibuild.registry.transport import Transport
from ocibuild.untrusted import shown
from tests.core.hostile_registry_test import _push, _uploads_elsewhere
from tests.fixtures.hostile_registry import HostileRegistry, answer, redirect

EXAMPLES = 1500
NASTY = st.sampled_from(["\x1b[2J", "\x1b]0;owned\x07", "\x9b31m", "\u202e", "\u2066", "\r",
                         "\n", "\x00", "\x7f", "\x85", "\u200b", "\ud800", "\t", "\x08"])
TEXT = st.lists(NASTY | st.text(max_size=4), max_size=8).map("".join)


def is_clean(text: str) -> bool:
    """No C0/C1 control but newline, no format character (bidi, zero-width), no surrogate."""
    return all(c == "\n" or unicodedata.category(c) not in ("Cc", "Cf", "Cs") for c in text)


def _index(os_name: str) -> Manifest:
    doc = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": "sha256:" + "c" * 64, "size": 2,
         "platform": {"os": os_name, "architecture": "amd64"}}]}
    return Manifest("sha256:" + "d" * 64, mediatypes.OCI_INDEX, json.dumps(doc).encode())


def _messages(text: str):
    yield str(OciBuildError(f"the manifest says {text}"))
    yield str(RegistryError("GET", "https://r.example/" + text, 500, text))
    yield str(RegistryError("GET", "https://r.example/", 500, error_message(text.encode(
        "utf-8", "surrogatepass"))))
    yield shown(text)
    try:
        select_platform(_index(text), parse_platform("linux/arm64"), "r.example/app@x")
    except OciBuildError as err:
        yield str(err)
    out = io.StringIO()
    Progress(out).step(f"fetching {text}")
    yield out.getvalue()


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_no_server_string_makes_a_message_with_control_characters(text: str) -> None:
    for message in _messages(text):
        assert is_clean(message), message
    assert "\n" not in shown(text)


def test_escaped_keeps_the_text_readable() -> None:
    assert escaped("a\x1b[2Jb\nc\u202ed\ud800") == "a\\x1b[2Jb\nc\\u202ed\\ud800"
    assert str(OciBuildError("line one\nline two")) == "line one\nline two"
    assert escaped("été, 東京, \\ and 'quotes'") == "été, 東京, \\ and 'quotes'"


PAYLOADS = ["\x1b[2J\x1b]0;owned\x07", "\x9b31m", "\u202eevil", "\rfake: ok"]


def _transport(server: HostileRegistry) -> Transport:
    return Transport(server.host, insecure=True, sleep=lambda s: None, attempts=1)


def _manifest(server: HostileRegistry) -> None:
    fetch_manifest(_transport(server), parse_reference(f"{server.host}/app"), "1")


def _index_platform(server: HostileRegistry, payload: str) -> None:
    index = _index(payload).content
    server.on("GET", "/v2/app/manifests/1", answer(200, index,
                                                   {"Content-Type": mediatypes.OCI_INDEX}))
    image_manifest(_transport(server), parse_reference(f"{server.host}/app"), "1",
                   parse_platform("linux/arm64"))


def _json_escape(payload: str) -> str:
    return json.dumps(payload)[1:-1]


# Header values must be latin-1: the C1 and bidi payloads go as UTF-8 bytes read as latin-1,
# which is what a client decoding them sees.
def _header(payload: str) -> str:
    return payload.encode("utf-8").decode("latin-1")


PLACES: Dict[str, Callable[[HostileRegistry, str], None]] = {
    "error-body": lambda s, p: (s.on("GET", "/v2/", answer(500, p.encode())), _manifest(s)),
    "error-json": lambda s, p: (s.on("GET", "/v2/", answer(
        400, ('{"errors":[{"code":"X","message":"%s"}]}' % _json_escape(p)).encode())),
        _manifest(s)),
    "auth-scheme": lambda s, p: (s.require(_header(p) + ' realm="x"'), _manifest(s)),
    "realm": lambda s, p: (s.require(f'Bearer realm="{_header(p)}"'), _manifest(s)),
    "redirect": lambda s, p: (s.on("GET", "/v2/app/manifests/1",
                                   redirect("ftp://" + _header(p))), _manifest(s)),
    "content-type": lambda s, p: (s.on("GET", "/v2/app/manifests/1", answer(
        200, b'{"schemaVersion": 2}', {"Content-Type": _header(p)})), _manifest(s)),
    "platform-os": _index_platform,
    # In the path of an http URL: the realm's own error names it.
    "realm-path": lambda s, p: (s.require(f'Bearer realm="{s.url}/token{_header(p)}"'),
                                s.on("GET", "/token", answer(500, b"down")), _manifest(s)),
    "redirect-path": lambda s, p: (s.on("GET", "/v2/app/manifests/1",
                                        redirect(f"{s.url}/x{_header(p)}")), _manifest(s)),
}


@pytest.mark.parametrize("place, payload", list(itertools.product(PLACES, PAYLOADS)))
def test_escape_sequences_from_a_hostile_registry_are_escaped(place: str, payload: str) -> None:
    with HostileRegistry() as registry, pytest.raises(OciBuildError) as err:
        PLACES[place](registry, payload)
    assert is_clean(str(err.value)), str(err.value)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escape_sequences_in_an_upload_location_are_escaped(payload: str,
                                                            tmp_path: Path) -> None:
    with HostileRegistry() as registry, pytest.raises(OciBuildError) as err:
        _uploads_elsewhere(registry, f"{registry.url}/upload/{_header(payload)}")
        _push(tmp_path, registry, _transport(registry))
    assert is_clean(str(err.value)), str(err.value)


def test_a_crash_report_is_escaped_too(capsys: pytest.CaptureFixture) -> None:
    """A bug's text and traceback may quote a server (KeyError('\\x1b[2J')): printed escaped."""
    from ocibuild import cli
    assert cli._fail(cli.CRASH, "KeyError: '\x1b[2J'", 1, "Traceback\n  x = d['\u202e']\n") == 1
    out, err = capsys.readouterr()
    assert err == "ocibuild: error: KeyError: '\\x1b[2J'\nTraceback\n  x = d['\\u202e']\n\n"
    assert is_clean(out) and json.loads(out)["message"] == "KeyError: '\\x1b[2J'"
