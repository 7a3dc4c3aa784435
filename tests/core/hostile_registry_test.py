"""The registry client against a hostile registry on loopback: no leak, no bypass, no hang.

Each test makes a real server misbehave one way and checks the exact error (it names the URL)
and, where credentials are in play, what the other host received.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from ocibuild import mediatypes
from ocibuild.digest import bytes_digest
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.layout import resolve_image
from ocibuild.reference import parse_reference
from ocibuild.registry.errors import MAX_ERROR_BODY, RegistryError
from ocibuild.registry.pull import download_blob, fetch_manifest
from ocibuild.registry.push import push_image
from ocibuild.registry.transport import Credentials, Transport
from tests.core.layouts import add_image, named, write_layout
from tests.fixtures.hostile_registry import (
    HostileRegistry,
    answer,
    elapsed,
    huge,
    redirect,
    silent,
    tls_files,
    trickle,
    trickle_headers,
)

PASSWORD = "hunter2-s3cret"
CREDS = Credentials("ci", PASSWORD)
BASIC = "Basic " + base64.b64encode(f"ci:{PASSWORD}".encode()).decode()
TOKEN = "tok-0f9e8d7c-SECRET"
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                       "config": {"mediaType": mediatypes.OCI_CONFIG,
                                  "digest": "sha256:" + "a" * 64, "size": 2},
                       "layers": []}).encode()
GiB = 1 << 30


@pytest.fixture
def tls(tmp_path: Path) -> Tuple[Path, Path, Path]:
    return tls_files(tmp_path / "tls")


@pytest.fixture
def other() -> Iterator[HostileRegistry]:
    """Another host: records what it is sent, accepts uploads."""
    with HostileRegistry() as server:
        server.on("PUT", "/", answer(201)).on("PATCH", "/", answer(202))
        yield server


def _transport(server: HostileRegistry, **kwargs) -> Transport:
    return Transport(server.host, insecure=server.scheme == "http", ca_cert=server.ca_cert,
                     sleep=lambda s: None, **kwargs)


def _push(tmp_path: Path, server: HostileRegistry, transport: Transport):
    image = add_image(tmp_path / "layout", "pushed")
    layout = write_layout(tmp_path / "layout", [named(image, "latest")])
    return push_image(layout, resolve_image(layout, ref_name="latest"),
                      parse_reference(f"{server.host}/team/app"), transport, ["1"], jobs=1)


def _uploads_elsewhere(server: HostileRegistry, location: str) -> HostileRegistry:
    return (server.on("HEAD", "/v2/", answer(404))
            .on("POST", "/v2/team/app/blobs/uploads/", answer(202, headers={"Location": location}))
            .on("PUT", "/v2/team/app/manifests/", answer(201)))


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_upload_location_on_another_host_gets_no_credentials(
        scheme: str, tmp_path: Path, other: HostileRegistry) -> None:
    with HostileRegistry() as registry:
        if scheme == "basic":
            registry.require('Basic realm="hostile"')
        else:
            registry.require(f'Bearer realm="{registry.url}/token",service="s"')
            registry.on("GET", "/token", answer(200, json.dumps({"token": TOKEN}).encode()))
        _uploads_elsewhere(registry, other.url + "/upload/1")
        result = _push(tmp_path, registry, _transport(registry, credentials=CREDS))
        sent = BASIC if scheme == "basic" else "Bearer " + TOKEN
        assert sent in registry.authorizations()
    assert len(result.uploaded) == 2
    assert [(m, auth) for m, _, auth in other.seen] == [("PUT", None), ("PUT", None)]


def test_a_challenge_from_another_host_is_not_answered(tmp_path: Path) -> None:
    with HostileRegistry() as registry, HostileRegistry() as thief:
        thief.require(f'Bearer realm="{thief.url}/token",service="s"')
        registry.require('Basic realm="hostile"')
        _uploads_elsewhere(registry, thief.url + "/v2/upload/1")
        with pytest.raises(RegistryError, match=rf"^PUT {thief.url}/v2/upload/1\?digest=sha256%3A"
                                                r"[0-9a-f]{64}: 401: NOT_FOUND: "):
            _push(tmp_path, registry, _transport(registry, credentials=CREDS, attempts=1))
    assert [(m, p.split("?")[0], auth) for m, p, auth in thief.seen] == \
        [("PUT", "/v2/upload/1", None)]  # not retried with credentials, no token fetched


def test_redirects_keep_credentials_on_the_registry_only(other: HostileRegistry) -> None:
    with HostileRegistry() as registry:
        registry.require('Basic realm="hostile"')
        registry.on("GET", "/v2/app/manifests/old", redirect("/v2/app/manifests/moved"))
        registry.on("GET", "/v2/app/manifests/moved",
                    redirect(other.url + "/v2/app/manifests/x", 307))
        other.on("GET", "/v2/app/manifests/x",
                 answer(200, MANIFEST, {"Content-Type": mediatypes.OCI_MANIFEST}))
        got = fetch_manifest(_transport(registry, credentials=CREDS),
                             parse_reference(f"{registry.host}/app"), "old")
        assert got.digest == bytes_digest(MANIFEST)
        assert [(p, auth) for _, p, auth in registry.seen] == [
            ("/v2/app/manifests/old", None), ("/v2/app/manifests/old", BASIC),
            ("/v2/app/manifests/moved", BASIC)]
    assert other.authorizations() == [None]


def test_redirect_loop_is_a_clear_error() -> None:
    with HostileRegistry() as registry:
        registry.on("GET", "/v2/app/manifests/a", redirect("/v2/app/manifests/b"))
        registry.on("GET", "/v2/app/manifests/b", redirect("/v2/app/manifests/a"))
        with pytest.raises(RegistryError, match=rf"^GET {registry.url}/v2/app/manifests/a: 302: "
                                                r"more than 10 redirects \(the last to "
                                                rf"{registry.url}/v2/app/manifests/b\); the "
                                                "registry or a proxy in front of it is "
                                                "redirecting in a loop$"):
            fetch_manifest(_transport(registry), parse_reference(f"{registry.host}/app"), "a")
        assert len(registry.seen) == 11


def test_redirect_to_a_file_url_is_refused() -> None:
    with HostileRegistry() as registry:
        registry.on("GET", "/v2/app/manifests/", redirect("file:///etc/passwd"))
        with pytest.raises(RegistryError, match=rf"^GET {registry.url}/v2/app/manifests/1: 302: "
                                                r"a redirect 'file:///etc/passwd' is not an "
                                                r"http\(s\) URL; refusing to follow it$"):
            fetch_manifest(_transport(registry), parse_reference(f"{registry.host}/app"), "1")


def test_upload_location_with_a_file_url_is_refused(tmp_path: Path) -> None:
    with HostileRegistry() as registry:
        _uploads_elsewhere(registry, "file:///etc/passwd")
        with pytest.raises(RegistryError, match=rf"^POST {registry.url}/v2/team/app/blobs/"
                                                r"uploads/: 202: the upload Location "
                                                r"'file:///etc/passwd' is not an http\(s\) URL"):
            _push(tmp_path, registry, _transport(registry))


def test_missing_upload_location_is_a_clear_error(tmp_path: Path) -> None:
    with HostileRegistry() as registry:
        registry.on("HEAD", "/v2/", answer(404)).on("POST", "/v2/", answer(202))
        with pytest.raises(RegistryError, match=r"/blobs/uploads/: 202: the answer has no "
                                                r"Location header"):
            _push(tmp_path, registry, _transport(registry))


def test_https_to_http_redirect_is_refused(tls, other: HostileRegistry) -> None:
    with HostileRegistry(tls) as registry:
        registry.require('Basic realm="hostile"')
        registry.on("GET", "/v2/app/manifests/1", redirect(other.url + "/v2/app/manifests/1"))
        with pytest.raises(RegistryError, match=rf"^GET {registry.url}/v2/app/manifests/1: 302: "
                                                rf"a redirect '{other.url}/v2/app/manifests/1' "
                                                "is plain HTTP, but the registry is HTTPS; "
                                                "refusing the downgrade"):
            fetch_manifest(_transport(registry, credentials=CREDS),
                           parse_reference(f"{registry.host}/app"), "1")
    assert other.seen == []


def test_http_realm_of_an_https_registry_is_refused(tls, other: HostileRegistry) -> None:
    with HostileRegistry(tls) as registry:
        registry.require(f'Bearer realm="{other.url}/token",service="s"')
        with pytest.raises(RegistryError, match=rf"^GET {registry.url}/v2/app/manifests/1: 401: "
                                                rf"the Bearer challenge names the token realm "
                                                rf"'{other.url}/token', plain HTTP: credentials "
                                                "would travel in clear"):
            fetch_manifest(_transport(registry, credentials=CREDS),
                           parse_reference(f"{registry.host}/app"), "1")
    assert other.seen == []  # not even anonymously


def test_https_realm_on_another_host_gets_the_credentials(tls) -> None:
    with HostileRegistry(tls) as registry, HostileRegistry(tls) as auth:
        auth.on("GET", "/token", answer(200, json.dumps({"access_token": TOKEN}).encode()))
        registry.require(f'Bearer realm="{auth.url}/token",service="s"')
        registry.on("GET", "/v2/app/manifests/1",
                    answer(200, MANIFEST, {"Content-Type": mediatypes.OCI_MANIFEST}))
        fetch_manifest(_transport(registry, credentials=CREDS),
                       parse_reference(f"{registry.host}/app"), "1")
        assert registry.authorizations() == [None, "Bearer " + TOKEN]
        assert auth.authorizations() == [BASIC]
        assert auth.seen[0][1] == "/token?service=s&scope=repository%3Aapp%3Apull"


def test_identity_token_is_not_posted_to_another_host(other: HostileRegistry) -> None:
    with HostileRegistry() as registry:
        registry.require(f'Bearer realm="{registry.url}/token",service="s"')
        registry.on("POST", "/token", redirect(other.url + "/steal", 307))
        creds = Credentials("", "", identity_token="refresh-SECRET")
        with pytest.raises(RegistryError, match=rf"^POST {registry.url}/token: 307: redirected "
                                                rf"to {other.url}/steal, another host, with the "
                                                "request's credentials in its body"):
            fetch_manifest(_transport(registry, credentials=creds),
                           parse_reference(f"{registry.host}/app"), "1")
    assert other.seen == []


@pytest.mark.parametrize("body, problem", [
    (b"<html><body>Sign in</body></html>", "is not valid JSON: Expecting value"),
    (b'["token"]', "must be a JSON object, not array"),
    (b'{"token": 42}', "`token` must be a JSON string, not integer (42)"),
    (b'{"expires_in": 60}', "has no `token` (nor `access_token`)"),
    (b"[" * 100_000, "nests deeper than 64 levels"),
    (b'{"token": "' + b"x" * (2 << 20) + b'"}', "is over 1048576 bytes"),
], ids=["html", "list", "number", "no-token", "nested", "2-MiB"])
def test_bad_token_replies_are_clear_errors(body: bytes, problem: str) -> None:
    with HostileRegistry() as registry:
        registry.require(f'Bearer realm="{registry.url}/token",service="s"')
        registry.on("GET", "/token", answer(200, body, {"Content-Type": "text/html"}))
        with pytest.raises(RegistryError) as err:
            fetch_manifest(_transport(registry), parse_reference(f"{registry.host}/app"), "1")
    assert str(err.value).startswith(f"GET {registry.url}/token: 200: the token server's answer")
    assert problem in str(err.value)


def test_a_1_gib_error_body_is_read_capped() -> None:
    with HostileRegistry() as registry:
        registry.on("GET", "/v2/app/manifests/1", huge(404, GiB))
        start = time.monotonic()
        with pytest.raises(RegistryError) as err:
            fetch_manifest(_transport(registry), parse_reference(f"{registry.host}/app"), "1")
        assert elapsed(start) < 10
    assert str(err.value) == f"GET {registry.url}/v2/app/manifests/1: 404: " + "x" * MAX_ERROR_BODY
    assert registry.sent < 64 << 20  # what the socket buffers took before we hung up


@pytest.mark.parametrize("declare_length", [True, False])
def test_a_blob_longer_than_declared_stops_at_its_size(tmp_path: Path,
                                                       declare_length: bool) -> None:
    descriptor = Descriptor(mediatypes.OCI_LAYER_GZIP, "sha256:" + "b" * 64, 1000)
    with HostileRegistry() as registry:
        registry.on("GET", "/v2/app/blobs/", huge(200, GiB, declare_length=declare_length))
        with pytest.raises(OciBuildError, match=rf"^GET {registry.url}/v2/app/blobs/sha256:b{{64}}: "
                                                r"the registry sent more than the blob's 1000 "
                                                r"bytes \(sha256:b{64}\); not using it$"):
            download_blob(_transport(registry), parse_reference(f"{registry.host}/app"),
                          descriptor, str(tmp_path / "blobs" / ("b" * 64)))
    assert registry.sent < 64 << 20
    assert not (tmp_path / "blobs").exists()  # no temp file, no directory made for it


def test_a_trickled_manifest_hits_the_deadline() -> None:
    with HostileRegistry() as registry:
        # A byte every 0.2 s: no single read ever times out, only the overall deadline can.
        registry.on("GET", "/v2/app/manifests/1", trickle(200, MANIFEST, 0.2))
        start = time.monotonic()
        with pytest.raises(RegistryError, match=rf"^GET {registry.url}/v2/app/manifests/1: 0: no "
                                                r"complete answer within 1 s, the deadline for "
                                                r"this request; the registry or the network is "
                                                r"stalling"):
            fetch_manifest(_transport(registry, deadline_s=1.0),
                           parse_reference(f"{registry.host}/app"), "1")
        assert elapsed(start) < 3


@pytest.mark.parametrize("responder", [trickle(200, MANIFEST, 2.0), silent,
                                       trickle_headers(0.05)],
                         ids=["a-byte-every-2-s", "no-answer-at-all", "headers-trickled"])
def test_a_slow_or_silent_server_hits_the_deadline_not_the_read_timeout(responder) -> None:
    with HostileRegistry() as registry:
        registry.on("GET", "/v2/app/manifests/1", responder)
        start = time.monotonic()
        with pytest.raises(RegistryError, match=rf"^GET {registry.url}/v2/app/manifests/1: 0: no "
                                                r"complete answer within 0.5 s"):
            fetch_manifest(_transport(registry, deadline_s=0.5),
                           parse_reference(f"{registry.host}/app"), "1")
        assert elapsed(start) < 2


def test_a_trickled_blob_hits_its_size_based_deadline(tmp_path: Path) -> None:
    data = b"y" * 100
    descriptor = Descriptor(mediatypes.OCI_LAYER_GZIP, bytes_digest(data), len(data))
    with HostileRegistry() as registry:
        registry.on("GET", "/v2/app/blobs/", trickle(200, data, 0.1))
        # 0.5 s + 100 bytes at 100 bytes/s: 1.5 s, while the trickle needs 10 s.
        transport = _transport(registry, deadline_s=0.5, min_rate=100)
        start = time.monotonic()
        with pytest.raises(RegistryError, match=r": 0: no complete answer within 1.5 s"):
            download_blob(transport, parse_reference(f"{registry.host}/app"), descriptor,
                          str(tmp_path / "blobs" / "blob"))
        assert 1.4 < elapsed(start) < 4
    assert not (tmp_path / "blobs").exists()


def test_wrong_digests_are_refused(tmp_path: Path) -> None:
    asked = bytes_digest(MANIFEST)
    data = b"z" * 10
    descriptor = Descriptor(mediatypes.OCI_LAYER_GZIP, bytes_digest(b"w" * 10), 10)
    with HostileRegistry() as registry:
        registry.on("GET", "/v2/app/manifests/", answer(200, MANIFEST.replace(b"2", b"3")))
        registry.on("GET", "/v2/app/blobs/", answer(200, data))
        with pytest.raises(OciBuildError, match=rf"^{registry.host}/app@{asked}: the registry sent "
                                                r"a manifest whose digest is sha256:"):
            fetch_manifest(_transport(registry), parse_reference(f"{registry.host}/app"), asked)
        with pytest.raises(OciBuildError, match=rf"^GET {registry.url}/v2/app/blobs/"
                                                rf"{descriptor.digest}: the blob has digest "
                                                rf"{bytes_digest(data)} and size 10"):
            download_blob(_transport(registry), parse_reference(f"{registry.host}/app"),
                          descriptor, str(tmp_path / "blob"))


def test_manifest_of_the_wrong_shape_is_a_clear_error(tmp_path: Path) -> None:
    from ocibuild.platform import parse_platform
    from ocibuild.registry.pull import image_manifest

    index = json.dumps({"mediaType": mediatypes.OCI_INDEX, "manifests": {"a": 1}}).encode()
    with HostileRegistry() as registry:
        registry.on("GET", "/v2/app/manifests/1", answer(200, index))
        registry.on("GET", "/v2/app/manifests/2", answer(200, b'{"mediaType": ["x"]}'))
        ref = parse_reference(f"{registry.host}/app")
        with pytest.raises(OciBuildError, match=rf"^{registry.host}/app@sha256:[0-9a-f]{{64}}: "
                                                r"`manifests` must be a JSON array, not object"):
            image_manifest(_transport(registry), ref, "1", parse_platform("linux/amd64"))
        with pytest.raises(OciBuildError, match=rf"^{registry.host}/app:2: the manifest: "
                                                r"`mediaType` must be a JSON string, not array"):
            fetch_manifest(_transport(registry), ref, "2")


def test_missing_ca_cert_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(OciBuildError, match=rf"^the CA certificate file {missing} does not exist; "
                                            "give the PEM file of the CA"):
        Transport("registry.example:5000", ca_cert=str(missing))


def test_no_secret_in_errors_or_reprs(tmp_path: Path) -> None:
    with HostileRegistry() as registry:
        # Takes any token, then refuses everything: the error must not quote what was sent.
        registry.require(f'Bearer realm="{registry.url}/token",service="s"')
        registry.on("GET", "/token", answer(200, json.dumps({"token": TOKEN}).encode()))
        registry.on("GET", "/v2/", answer(403, b'{"errors":[{"code":"DENIED","message":"no"}]}'))
        transport = _transport(registry, credentials=CREDS)
        with pytest.raises(RegistryError) as err:
            fetch_manifest(transport, parse_reference(f"{registry.host}/app"), "1")
        assert registry.authorizations() == [None, BASIC, "Bearer " + TOKEN]
    texts = [str(err.value), repr(err.value), repr(transport), repr(transport.credentials)]
    assert "credentials used: user 'ci' from given" in texts[0]
    for secret in (PASSWORD, TOKEN, BASIC.split()[1]):
        assert not any(secret in text for text in texts)


def test_control_characters_from_the_server_are_not_printed() -> None:
    with HostileRegistry() as registry:
        registry.on("GET", "/v2/", answer(500, b"\x1b[2J\x1b]0;owned\x07gone\r\nfake: line"))
        with pytest.raises(RegistryError) as err:
            fetch_manifest(_transport(registry, attempts=1),
                           parse_reference(f"{registry.host}/app"), "1")
    assert str(err.value) == (f"GET {registry.url}/v2/app/manifests/1: 500: "
                              " [2J ]0;owned gone  fake: line")


def test_skip_tls_verify_unchecks_the_registrys_own_host_only(tmp_path: Path) -> None:
    """kaniko's --skip-tls-verify (ocibuild build --dockerfile): the registry's own certificate
    is not checked; without it, a certificate no trusted CA signed is refused."""
    from tests.fixtures.registry import start_registry

    with start_registry(tmp_path / "r", tls=True) as reg:
        checked = Transport(reg.host)
        with pytest.raises(OciBuildError, match="certificate|SSL|TLS"):
            checked.request("GET", "/v2/", scope="")
        unchecked = Transport(reg.host, credentials=Credentials(reg.username, reg.password))
        unchecked.verify_tls = False
        assert unchecked.request("GET", "/v2/", scope="").status_code == 200
        # Any other host keeps the system store.
        assert unchecked._trust("https://storage.example/blob") is not False
