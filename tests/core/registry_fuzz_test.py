"""Property tests: whatever a registry, token server, config file or user hands the registry
client's parsers, the answer is a value or an `OciBuildError`: never another exception.

Inputs are random bytes and text, random JSON of the right general shape, and valid
documents with random bytes overwritten. The example counts (FEW: 300, MANY: 800) keep
the file well under 30 s.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from typing import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild import mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.platform import parse_platform
from ocibuild.reference import parse_reference
from ocibuild.registry.credentials import lookup
from ocibuild.registry.errors import MAX_ERROR_BODY, error_message
from ocibuild.registry.pull import (
    Manifest,
    index_platforms,
    manifest_blobs,
    manifest_media_type,
    select_platform,
)
from ocibuild.registry.transport import (
    MAX_WAIT_S,
    parse_challenge,
    parse_token_reply,
    retry_after_s,
)

FEW = settings(max_examples=300, deadline=None, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MANY = settings(FEW, max_examples=800)

KEYS = st.sampled_from(["auths", "credHelpers", "credsStore", "ghcr.io", "https://ghcr.io",
                        "auth", "username", "password", "identitytoken", "token",
                        "access_token", "errors", "code", "message", "manifests", "mediaType",
                        "digest", "size", "platform", "os", "architecture", "variant"])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.text(max_size=20) | st.sampled_from([mediatypes.OCI_INDEX, "linux", "amd64",
                                                     "sha256:" + "a" * 64, "dXNlcjpwdw=="]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(KEYS | st.text(max_size=6), inner, max_size=5),
                    max_leaves=25)


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """`seed` with a few bytes overwritten, inserted or cut (a damaged document)."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["set", "insert", "cut"]))
        byte = draw(st.integers(0, 255))
        if action == "set" and at < len(data):
            data[at] = byte
        elif action == "insert":
            data.insert(at, byte)
        else:
            del data[at:at + draw(st.integers(1, 8))]
    return bytes(data)


def documents(seed: object) -> st.SearchStrategy[bytes]:
    """Random bytes, random JSON, and `seed` as JSON with damage."""
    valid = json.dumps(seed).encode()
    return (st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode())
            | mutated(valid) | st.just(b"[" * 10_000) | st.just(b'{"a":' * 5_000))


def value_or_error(parse: Callable[[], object]) -> object:
    try:
        return parse()
    except OciBuildError as err:
        assert str(err)
        return err


@MANY
@given(st.text(max_size=200) | st.sampled_from([
    'Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"',
    'Basic realm="x"', "", "   ", 'Bearer realm="', "bearer realm=x,,,"]))
def test_parse_challenge_never_raises(header: str) -> None:
    scheme, params = parse_challenge(header)
    assert scheme == scheme.lower()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())


@MANY
@given(documents({"errors": [{"code": "DENIED", "message": "no"}]}), st.text(max_size=30))
def test_error_message_is_bounded_printable_text(body: bytes, reason: str) -> None:
    text = error_message(body, reason)
    assert isinstance(text, str) and len(text) <= MAX_ERROR_BODY
    assert text.isprintable()


@MANY
@given(documents({"token": "abc", "access_token": "def", "expires_in": 300}))
def test_token_reply_is_a_string_or_a_clear_error(body: bytes) -> None:
    token = value_or_error(lambda: parse_token_reply(body))
    assert isinstance(token, (str, OciBuildError))
    if isinstance(token, str):
        assert token


@MANY
@given(st.text(max_size=40) | st.sampled_from(["120", "²", "Wed, 21 Oct 2015 07:28:00 GMT",
                                               "Wed, 21 Oct 99999 07:28:00 GMT", "-1", "1e9"]))
def test_retry_after_is_a_bounded_wait(value: str) -> None:
    wait = retry_after_s(value, 1.5)
    assert 0.0 <= wait <= MAX_WAIT_S


@pytest.fixture(scope="module")
def config_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        os.makedirs(os.path.join(directory, "bin"))
        yield directory


_AUTH = base64.b64encode(b"user:pw").decode()
_CONFIG = {"auths": {"ghcr.io": {"auth": _AUTH}, "quay.io": {"username": "u", "password": "p"},
                     "acr.io": {"identitytoken": "t"}},
           "credHelpers": {"ecr.example": "ecr-login"}}


@FEW
@given(documents(_CONFIG) | JSON.map(lambda v: json.dumps({"auths": {"ghcr.io": v}}).encode())
       | JSON.map(lambda v: json.dumps({"auths": v, "credHelpers": v}).encode()),
       st.sampled_from(["ghcr.io", "quay.io", "acr.io", "ecr.example", "other.example"]))
def test_credentials_config_gives_credentials_none_or_a_clear_error(
        config_dir: str, data: bytes, host: str) -> None:
    with open(os.path.join(config_dir, "config.json"), "wb") as f:
        f.write(data)
    # An empty PATH: a helper named in the config is "not on PATH", never run.
    env = {"DOCKER_CONFIG": config_dir, "PATH": os.path.join(config_dir, "bin")}
    found = value_or_error(lambda: lookup(host, env))
    if isinstance(found, OciBuildError):
        assert "dXNlcjpwdw==" not in str(found)  # the `auth` value is never quoted back


@FEW  # from_regex is the slowest generator here
@given(st.text(max_size=80) | st.from_regex(
    r"\A([a-z0-9.:\[\]#?-]{1,20}/)?[a-z0-9._/-]{1,20}(:[A-Za-z0-9_.-]{1,10})?(@sha256:[0-9a-f]{64})?\Z"))
def test_reference_parses_or_is_a_clear_error(value: str) -> None:
    ref = value_or_error(lambda: parse_reference(value))
    if not isinstance(ref, OciBuildError):
        assert parse_reference(str(ref)) == ref  # what we print reads back the same


_INDEX = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [
    {"mediaType": mediatypes.OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 500,
     "platform": {"os": "linux", "architecture": "amd64"}},
    {"mediaType": mediatypes.OCI_MANIFEST, "digest": "sha256:" + "b" * 64, "size": 500,
     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]}


@FEW
@given(documents(_INDEX) | JSON.map(lambda v: json.dumps({**_INDEX, "manifests": v}).encode())
       | st.lists(JSON, max_size=3).map(lambda entries: json.dumps(
           {**_INDEX, "manifests": [{**_INDEX["manifests"][0], "platform": e} for e in entries]}
       ).encode()),
       st.sampled_from(["", mediatypes.OCI_INDEX, mediatypes.DOCKER_MANIFEST, "text/html"]))
def test_manifests_parse_or_are_a_clear_error(content: bytes, content_type: str) -> None:
    media_type = value_or_error(lambda: manifest_media_type(content, content_type, "reg/app:1"))
    manifest = Manifest("sha256:" + "c" * 64, mediatypes.OCI_INDEX, content)
    chosen = value_or_error(lambda: select_platform(manifest, parse_platform("linux/amd64"),
                                                    "reg/app@sha256:c"))
    assert isinstance(media_type, (str, OciBuildError))
    if not isinstance(chosen, OciBuildError):
        assert chosen.digest.startswith("sha256:")


_IMAGE = {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
          "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": "sha256:" + "a" * 64,
                     "size": 2},
          "layers": [{"mediaType": mediatypes.OCI_LAYER_GZIP, "digest": "sha256:" + "b" * 64,
                      "size": 9}]}


@FEW
@given(documents(_IMAGE) | JSON.map(lambda v: json.dumps({**_IMAGE, "layers": v}).encode())
       | JSON.map(lambda v: json.dumps({**_IMAGE, "config": v}).encode()))
def test_image_manifest_blobs_and_index_platforms_or_a_clear_error(content: bytes) -> None:
    manifest = Manifest("sha256:" + "c" * 64, mediatypes.OCI_MANIFEST, content)
    blobs = value_or_error(lambda: manifest_blobs(manifest, "reg/app@sha256:c"))
    if not isinstance(blobs, OciBuildError):
        assert [b.media_type for b in blobs][0] == json.loads(content)["config"]["mediaType"]
    platforms = value_or_error(lambda: index_platforms(manifest, "reg/app@sha256:c"))
    assert isinstance(platforms, (list, OciBuildError))
