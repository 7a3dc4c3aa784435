"""Where credentials go is decided on the origin the HTTP library really connects to.

A property test builds URLs from the pieces that make parsers disagree (backslashes, `@`,
percent-encoded hosts, IPv6 literals, tabs, odd ports and schemes) and checks each is either
refused or has exactly the origin of the connection pool requests would use. Loopback tests
then point crafted Locations (redirects, upload Locations, the token realm and its redirect)
from a registry at a second server on another port: it never sees a credential.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild import mediatypes
from ocibuild.debian.download import fetch_deb
from ocibuild.debian.repository import Mirror, redact
from ocibuild.digest import bytes_digest
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.reference import parse_reference
from ocibuild.registry.errors import RegistryError
from ocibuild.registry.origin import NOWHERE, Origin, origin, refusal
from ocibuild.registry.pull import download_blob, fetch_manifest
from ocibuild.registry.transport import Credentials, Transport
from tests.core.hostile_registry_test import _push, _uploads_elsewhere
from tests.fixtures.hostile_registry import HostileRegistry, answer, redirect, tls_files

PASSWORD = "hunter2-s3cret"
CREDS = Credentials("ci", PASSWORD)
BASIC = "Basic " + base64.b64encode(f"ci:{PASSWORD}".encode()).decode()
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                       "config": {"mediaType": mediatypes.OCI_CONFIG,
                                  "digest": "sha256:" + "a" * 64, "size": 2},
                       "layers": []}).encode()
EXAMPLES = 3000

SCHEMES = st.sampled_from(["http", "https", "HTTP", "hTtPs", "ftp", "file", "", "http:",
                           "https:/", " http", "http\t"])
HOSTS = st.sampled_from(["127.0.0.1", "localhost", "evil", "EVIL.example", "[::1]", "[::1%25lo]",
                         "127.0.0.1.", "%31%32%37.0.0.1", "\u212a.com", "xn--bcher-kva.example",
                         "0x7f.1", "2130706433", "[::ffff:127.0.0.1]", ""])
SEPARATORS = st.sampled_from(["\\", "/", "@", "\\@", "#", "?", ";", ":", "\t", " ", "\r\n", "%40",
                              "%5C", "%2F", "..", "\x00", "\u3002", "\uff0f", "\uff20"])
PORTS = st.sampled_from(["", ":5000", ":", ":0443", ":+80", ":65536", ":443", ":80", ":-1",
                         ":5000:6000", ": 80"])


@st.composite
def urls(draw) -> str:
    """A URL-ish string: scheme, then a few hosts, ports and separators in any order."""
    pieces = draw(st.lists(st.one_of(HOSTS, SEPARATORS, PORTS, st.text(max_size=3)),
                           min_size=1, max_size=7))
    return draw(SCHEMES) + "://" + "".join(pieces)


@st.composite
def plausible_urls(draw) -> str:
    """Mostly well-formed: an http(s) host and port, then path pieces that hide a host."""
    tail = draw(st.lists(st.sampled_from(["/v2/", "@evil", "/@evil:1", "?x=@evil", "#@evil",
                                          "\\@evil", "%2F@evil", ";@evil", "/a:b@c", "/.."]),
                         max_size=3))
    return (draw(st.sampled_from(["http", "https", "HTTP", "Https"])) + "://"
            + draw(HOSTS) + draw(PORTS) + "".join(tail))


def _pool_origin(url: str) -> Origin:
    """The host:port of the connection pool requests itself picks for `url`: what it would
    connect to (no packet is sent)."""
    session = requests.Session()
    prepared = session.prepare_request(requests.Request("GET", url))
    adapter = session.get_adapter(prepared.url)
    pool = adapter.get_connection_with_tls_context(prepared, verify=True)
    return Origin(pool.scheme, pool.host.lower().strip("[]"), pool.port)


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(urls() | plausible_urls())
def test_an_accepted_url_has_the_origin_requests_connects_to(url: str) -> None:
    if refusal(url) is not None:
        return
    assert origin(url) != NOWHERE
    assert origin(url) == _pool_origin(url)


@pytest.mark.parametrize("url, problem", [
    ("http://evil\\@127.0.0.1:5000/v2/", "holds a backslash"),
    ("https://evil\\@registry.example/v2/", "holds a backslash"),
    ("http://user:pw@127.0.0.1:5000/v2/", "holds a user name or password"),
    ("http://@127.0.0.1:5000/v2/", "holds a user name or password"),
    ("http://%31%32%37.0.0.1:5000/", "has a percent-encoded host"),
    ("http://[::1%25lo]:5000/", "has a percent-encoded host"),
    ("http://127.0.0.1\t.evil:5000/", "holds whitespace, control or non-ASCII characters"),
    ("http://\u212a.example/", "holds whitespace, control or non-ASCII characters"),
    (" http://127.0.0.1:5000/", "holds whitespace, control or non-ASCII characters"),
    ("http://127.0.0.1:5000:6000/", "is not a URL the HTTP library can use"),
    ("http://127.0.0.1:+80/", "is not a URL the HTTP library can use"),
    ("ftp://127.0.0.1/", "is not an http(s) URL"),
    ("//127.0.0.1/", "is not an http(s) URL"),
])
def test_urls_parsers_may_read_differently_are_refused(url: str, problem: str) -> None:
    assert refusal(url) is not None and refusal(url).startswith(problem)


@pytest.mark.parametrize("url, expected", [
    ("HTTP://Registry.Example/v2/", Origin("http", "registry.example", 80)),
    ("https://registry.example:443/v2/@evil/x", Origin("https", "registry.example", 443)),
    ("https://registry.example/v2/?x=@evil", Origin("https", "registry.example", 443)),
    ("http://[::1]:5000/v2/", Origin("http", "::1", 5000)),
    ("http://127.0.0.1.:5000/", Origin("http", "127.0.0.1.", 5000)),  # not 127.0.0.1's origin
])
def test_accepted_urls_and_their_origins(url: str, expected: Origin) -> None:
    assert refusal(url) is None
    assert origin(url) == expected == _pool_origin(url)


@pytest.fixture
def thief() -> Iterator[HostileRegistry]:
    with HostileRegistry() as server:
        for method in ("GET", "POST", "PUT", "PATCH", "HEAD"):
            server.on(method, "/", answer(200, MANIFEST, {"Content-Type": mediatypes.OCI_MANIFEST}))
        yield server


def _transport(host: str, creds: Credentials = CREDS) -> Transport:
    return Transport(host, insecure=True, credentials=creds, sleep=lambda s: None, attempts=1)


def _backslash(thief: HostileRegistry, registry_host: str, path: str) -> str:
    return f"http://{thief.host}\\@{registry_host}{path}"


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_a_backslash_redirect_does_not_take_the_credentials_elsewhere(
        name: str, thief: HostileRegistry) -> None:
    with HostileRegistry() as registry:
        host = f"{name}:{registry.host.split(':')[1]}"
        location = _backslash(thief, host, "/v2/app/manifests/x")
        registry.require('Basic realm="hostile"')
        registry.on("GET", "/v2/app/manifests/1", redirect(location, 307))
        with pytest.raises(RegistryError, match=r"^GET http://" + host + r"/v2/app/manifests/1: "
                                                r"307: a redirect 'http://127\.0\.0\.1:\d+\\\\@"
                                                + host + r"/v2/app/manifests/x' holds a "
                                                r"backslash \(HTTP libraries disagree on where "
                                                r"its host ends\); refusing to follow it$"):
            fetch_manifest(_transport(host), parse_reference(f"{host}/app"), "1")
        assert BASIC in registry.authorizations()
    assert thief.seen == []


def test_a_backslash_upload_location_gets_nothing(tmp_path: Path, thief: HostileRegistry) -> None:
    with HostileRegistry() as registry:
        registry.require('Basic realm="hostile"')
        _uploads_elsewhere(registry, _backslash(thief, registry.host, "/v2/upload/1"))
        with pytest.raises(RegistryError, match=r"^POST .*: 202: the upload Location '.*' holds "
                                                r"a backslash"):
            _push(tmp_path, registry, _transport(registry.host))
    assert thief.seen == []


def test_a_backslash_token_realm_gets_nothing(thief: HostileRegistry) -> None:
    with HostileRegistry() as registry:
        realm = _backslash(thief, registry.host, "/token")
        registry.require(f'Bearer realm="{realm}",service="s"')
        with pytest.raises(RegistryError, match=r"^GET .*: 401: the Bearer challenge names the "
                                                r"token realm '.*', which holds a backslash"):
            fetch_manifest(_transport(registry.host), parse_reference(f"{registry.host}/app"), "1")
    assert thief.seen == []


@pytest.mark.parametrize("identity", [False, True], ids=["basic", "identity-token"])
def test_a_backslash_redirect_of_the_token_realm_gets_nothing(
        identity: bool, thief: HostileRegistry) -> None:
    with HostileRegistry() as registry:
        registry.require(f'Bearer realm="{registry.url}/token",service="s"')
        stolen = redirect(_backslash(thief, registry.host, "/token"), 307)
        registry.on("GET", "/token", stolen).on("POST", "/token", stolen)
        creds = Credentials("", "", identity_token="refresh-SECRET") if identity else CREDS
        with pytest.raises(RegistryError, match=r"^(GET|POST) .*/token.*: 307: a redirect '.*' "
                                                r"holds a backslash"):
            fetch_manifest(_transport(registry.host, creds),
                           parse_reference(f"{registry.host}/app"), "1")
    assert thief.seen == []


def test_a_redirect_to_localhost_of_a_127_registry_gets_no_credentials(
        thief: HostileRegistry) -> None:
    """Same machine, another name: another origin (as browsers decide)."""
    port = thief.host.split(":")[1]
    with HostileRegistry() as registry:
        registry.require('Basic realm="hostile"')
        registry.on("GET", "/v2/app/manifests/1",
                    redirect(f"http://localhost:{port}/v2/app/manifests/x", 307))
        fetch_manifest(_transport(registry.host), parse_reference(f"{registry.host}/app"), "1")
    assert thief.authorizations() == [None]


MIRROR_BASIC = "Basic " + base64.b64encode(b"apt:" + PASSWORD.encode()).decode()


def _private_mirror(mirror: HostileRegistry) -> Mirror:
    return Mirror(f"http://apt:{PASSWORD}@{mirror.host}/debian", "s", allow_unsigned=True)


def test_a_backslash_redirect_of_a_mirror_gets_nothing(thief: HostileRegistry) -> None:
    with HostileRegistry() as mirror:
        location = _backslash(thief, mirror.host, "/debian/dists/s/InRelease")
        mirror.on("GET", "/debian/dists/s/InRelease", redirect(location))
        with pytest.raises(OciBuildError) as err:
            _private_mirror(mirror).release()
        assert mirror.authorizations() == [MIRROR_BASIC]
    assert str(err.value) == (f"GET http://***@{mirror.host}/debian/dists/s/InRelease: 302: the "
                              f"redirect to {location!r} holds a backslash (HTTP libraries "
                              "disagree on where its host ends); refusing to follow it")
    assert thief.seen == []


def test_a_mirror_redirect_keeps_the_credentials_on_the_mirror(thief: HostileRegistry) -> None:
    with HostileRegistry() as mirror:
        mirror.on("GET", "/debian/dists/s/InRelease", redirect("/moved/InRelease"))
        mirror.on("GET", "/moved/InRelease", redirect(thief.url + "/InRelease", 307))
        with pytest.raises(OciBuildError):  # the thief's answer is no Release file
            _private_mirror(mirror).release()
        assert mirror.authorizations() == [MIRROR_BASIC, MIRROR_BASIC]
    assert thief.authorizations() == [None]


def _tls_pair(tmp_path: Path):
    """(the registry's CA files, another CA's files): two private CAs."""
    return tls_files(tmp_path / "registry-ca"), tls_files(tmp_path / "system-ca")


def _blob_behind(registry: HostileRegistry, storage_port: int) -> Descriptor:
    """A blob the registry redirects to `https://localhost:PORT` (another host name)."""
    data = b"blob bytes"
    registry.on("GET", "/v2/app/blobs/",
                redirect(f"https://localhost:{storage_port}/b", 307))
    return Descriptor(mediatypes.OCI_LAYER_GZIP, bytes_digest(data), len(data))


@pytest.mark.parametrize("storage_ca", ["system", "registry"])
def test_the_registry_ca_cert_applies_to_the_registry_host_only(
        storage_ca: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry_tls, system_tls = _tls_pair(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(system_tls[2]))  # this test's system store
    storage_tls = system_tls if storage_ca == "system" else registry_tls
    with HostileRegistry(registry_tls) as registry, HostileRegistry(storage_tls) as storage:
        descriptor = _blob_behind(registry, int(storage.host.split(":")[1]))
        storage.on("GET", "/b", answer(200, b"blob bytes"))
        transport = Transport(registry.host, ca_cert=registry.ca_cert, attempts=1)
        target = tmp_path / "blob"
        if storage_ca == "system":
            download_blob(transport, parse_reference(f"{registry.host}/app"), descriptor,
                          str(target))
            assert target.read_bytes() == b"blob bytes"
        else:  # the registry's private CA does not vouch for another host
            with pytest.raises(RegistryError, match=r"^GET https://localhost:\d+/b: 0: TLS "
                                                    r"verification failed \(SSLError\) for this "
                                                    r"host, which is not the registry's: the "
                                                    r"system's trusted CAs must vouch for it"):
                download_blob(transport, parse_reference(f"{registry.host}/app"), descriptor,
                              str(target))
            assert storage.seen == []


def test_a_token_realm_with_userinfo_gets_nothing(thief: HostileRegistry) -> None:
    with HostileRegistry() as registry:
        registry.require(f'Bearer realm="http://{registry.host}@{thief.host}/token"')
        with pytest.raises(RegistryError, match=r"^GET .*: 401: the Bearer challenge names the "
                                                r"token realm '.*', which holds a user name or "
                                                r"password \(userinfo\)"):
            fetch_manifest(_transport(registry.host), parse_reference(f"{registry.host}/app"), "1")
    assert thief.seen == []


def test_a_deb_url_parsers_read_differently_is_not_fetched(thief: HostileRegistry,
                                                           tmp_path: Path) -> None:
    """A lockfile's URL joins the mirror and a `Filename` the mirror chose."""
    url = f"http://{thief.host}\\@127.0.0.1:1/pool/x.deb"
    with pytest.raises(OciBuildError) as err:
        fetch_deb(requests.Session(), [url], "a" * 64, 10, str(tmp_path))
    assert str(err.value) == (f"GET {redact(url)}: the URL holds a backslash (HTTP libraries "
                              "disagree on where its host ends); refusing to fetch it")
    assert thief.seen == []


def test_an_https_mirror_redirecting_to_http_is_refused(
        thief: HostileRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tls = tls_files(tmp_path / "tls")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls[2]))  # mirrors use the system store
    with HostileRegistry(tls) as mirror:
        mirror.on("GET", "/debian/", redirect(thief.url + "/InRelease"))
        with pytest.raises(OciBuildError) as err:
            Mirror(mirror.url + "/debian", "s", allow_unsigned=True).release()
    assert str(err.value) == (f"GET {mirror.url}/debian/dists/s/InRelease: 302: the redirect "
                              f"to '{thief.url}/InRelease' is plain HTTP, redirected to from "
                              "HTTPS (a downgrade); refusing to follow it")
    assert thief.seen == []
