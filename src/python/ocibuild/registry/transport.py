"""HTTP to one registry: TLS options, retries, redirects, bounds, and auth by challenge.

On a 401 the `WWW-Authenticate` challenge decides: `Basic` sends the credentials; `Bearer`
fetches a token for exactly the requested scope from the realm (cached per scope; an identity
token is exchanged as an OAuth2 refresh token), then the request is retried once.

Where credentials go: the Authorization header only to the registry's own origin (scheme,
host and port of `base`), and the realm's Basic credentials only to the realm's origin. The
realm must be https unless the registry itself is plain HTTP (`insecure`). Redirects are
followed here, not by requests, so every hop is checked: at most `MAX_REDIRECTS`, http(s)
only, and the Authorization header is dropped when the origin changes (blob storage on
S3/GCS gets no registry credentials). Any URL, redirect or upload `Location`, that is plain
HTTP is refused unless the registry itself is. Challenges from another origin are not
answered, and an identity token (in a POST body) never follows a redirect to another origin.

Bounds, so a hostile or broken server costs little: error bodies are read up to
`MAX_ERROR_BODY`, small answers (token replies) up to `MAX_REPLY`; callers read documents
with their own cap. Each attempt of a request has an overall deadline (`deadline_s`, plus
size / `min_rate` for a blob, at most `MAX_BLOB_DEADLINE_S`) from before it connects to its
last body byte (see `deadline.py`); passing it is
a non-retryable error (a server that slow will not do better on a retry, and retrying would
multiply the wait). The connect/read timeouts still bound each socket operation.

408, 429 and 5xx answers and dropped connections are retried with exponential backoff,
honouring `Retry-After`; a request body is rewound before each try.
"""

from __future__ import annotations

import base64
import email.utils
import os
import re
import time
from typing import Callable, Dict, Iterator, Mapping, Optional, Tuple, Union
from urllib.parse import urljoin

import requests
import urllib3

from ocibuild.errors import OciBuildError
from ocibuild.registry.credentials import Credentials
from ocibuild.registry.deadline import Deadline, Watchdog, watched_session
from ocibuild.registry.errors import (
    MAX_ERROR_BODY,
    RETRYABLE,
    RegistryError,
    error_message,
    printable,
)
from ocibuild.registry.origin import NOWHERE, origin, refusal
from ocibuild.untrusted import field, load_json

_PARAM = re.compile(r'(\w+)="([^"]*)"')
TIMEOUT_S = (10, 300)  # connect, and each read
ATTEMPTS = 5
BACKOFF_S = 0.5
MAX_WAIT_S = 30.0
MAX_REDIRECTS = 10
# Token replies are a JWT or two in JSON: a few KiB.
MAX_REPLY = 1 << 20
# Each attempt of a request: a manifest, a token, an upload's answer. Blobs get more, below.
DEADLINE_S = 120.0
# A blob's deadline grows by its size at this rate (512 kbit/s: 1 GiB may take 4.6 hours),
# up to MAX_BLOB_DEADLINE_S: the size is the server's word (a manifest may declare 1e30
# bytes), so it cannot buy unbounded time. A blob over ~1.3 GiB must come faster than
# MIN_RATE to make it in 6 hours.
MIN_RATE = 64 << 10
MAX_BLOB_DEADLINE_S = 6 * 3600.0
# The tries of one request (retries of 5xx and dropped connections) share twice its deadline.
RETRY_BUDGET = 2
_READ_SIZE = 64 << 10
_REDIRECTS = (301, 302, 303, 307, 308)

__all__ = ["Credentials", "Deadline", "Transport", "parse_challenge", "parse_token_reply"]


def parse_challenge(header: str) -> Tuple[str, Dict[str, str]]:
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(params))


def parse_token_reply(data: bytes) -> str:
    """The token in a token server's JSON answer (`token`, or OAuth2's `access_token`)."""
    where = "the token server's answer"
    reply = load_json(data, where, max_bytes=MAX_REPLY)
    token = field(reply, "token", str, where) or field(reply, "access_token", str, where)
    if not token:
        raise OciBuildError(f"{where} has no `token` (nor `access_token`)")
    return token


def retry_after_s(value: Optional[str], default: float) -> float:
    """`Retry-After` as seconds or an HTTP date, capped; absent or unreadable: `default`."""
    if not value:
        return default
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²": str.isdigit takes it, float does not
        return min(float(value), MAX_WAIT_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return default
    return max(0.0, min(when - time.time(), MAX_WAIT_S))


class Transport:
    def __init__(self, host: str, *, insecure: bool = False, ca_cert: Optional[str] = None,
                 credentials: Union[None, Credentials, Callable[[], Optional[Credentials]]] = None,
                 attempts: int = ATTEMPTS, sleep: Callable[[float], None] = time.sleep,
                 deadline_s: float = DEADLINE_S, min_rate: float = MIN_RATE) -> None:
        """`credentials` may be a function: it is called once, when a challenge needs them,
        so a run that needs none never reads config files or runs credential helpers."""
        if ca_cert and not os.path.isfile(ca_cert):
            raise OciBuildError(f"the CA certificate file {ca_cert} does not exist; give the PEM "
                                "file of the CA that signed the registry's certificate")
        self.host = host
        self.insecure = insecure
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self._credentials = credentials
        self.attempts = attempts
        self.sleep = sleep
        self.deadline_s = deadline_s
        self.min_rate = min_rate
        self.retries = 0  # how many requests were repeated, for reports and tests
        self.session = watched_session()
        # The machine's proxy settings must not apply to a registry we were told to use.
        self.session.trust_env = False
        self.ca_cert = ca_cert
        # False only when asked for by name (kaniko's --skip-tls-verify): the registry's own
        # host is then not checked; every other host (blob storage, a token realm) still is.
        self.verify_tls = True
        self._auth: Dict[str, str] = {}  # scope -> Authorization header value

    def __repr__(self) -> str:  # never the tokens or credentials it holds
        return f"Transport({self.base!r})"

    @property
    def credentials(self) -> Optional[Credentials]:
        if callable(self._credentials):
            self._credentials = self._credentials()
        return self._credentials  # type: ignore[return-value]

    def url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else self.base + path_or_url

    def blob_deadline_s(self, size: int) -> float:
        # Compared before dividing: a size of 10**400 is no float.
        if self.min_rate <= 0 or size >= MAX_BLOB_DEADLINE_S * self.min_rate:
            return MAX_BLOB_DEADLINE_S
        return min(self.deadline_s + size / self.min_rate, MAX_BLOB_DEADLINE_S)

    def request(self, method: str, path_or_url: str, *, scope: str,
                expected: Tuple[int, ...] = (200,), stream: bool = False,
                deadline_s: Optional[float] = None, **kwargs) -> requests.Response:
        """The answer, if its status is `expected`. With `stream`, its body is left to read
        with `read` or `chunks` (its deadline is `response.deadline`); else it is drained."""
        url = self.url(path_or_url)
        budget = deadline_s or self.deadline_s
        response = self._send_retrying(method, url, scope, budget, **kwargs)
        challenge = response.headers.get("WWW-Authenticate")
        # Only the registry itself may ask for its credentials, not a host it redirected to.
        if response.status_code == 401 and challenge and origin(response.url) == origin(self.base):
            self._discard(response)
            self._authenticate(challenge, scope, method, url)
            response = self._send_retrying(method, url, scope, budget, **kwargs)
        if response.status_code not in expected:
            raise self._error(method, url, response)
        if not stream:
            self._discard(response)
        return response

    def read(self, response: requests.Response, limit: int, method: str, url: str) -> bytes:
        """The body, up to `limit` + 1 bytes (more than `limit`: the caller refuses it)."""
        data = bytearray()
        try:
            for chunk in self.chunks(response, method, url):
                data += chunk
                if len(data) > limit:
                    break
            else:  # read to the end: the connection can serve the next request
                response.raw.release_conn()
        finally:
            response.close()
        return bytes(data[:limit + 1])

    def chunks(self, response: requests.Response, method: str, url: str) -> Iterator[bytes]:
        """The body as it arrives, within `response.deadline`; read1 returns what one read
        got, so a trickle cannot keep us past the deadline."""
        deadline: Deadline = response.deadline  # type: ignore[attr-defined]
        try:
            while True:
                deadline.check(method, url)
                try:
                    chunk = response.raw.read1(_READ_SIZE, decode_content=True)
                except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException,
                        OSError) as err:
                    deadline.check(method, url)
                    raise RegistryError(method, url, 0, "the connection broke while reading "
                                        f"the answer: {err.__class__.__name__}",
                                        retryable=True) from None
                # Past the deadline, even an end is no end: the watchdog shut the socket, and
                # a cut chunk-size line reads as the last chunk.
                deadline.check(method, url)
                if not chunk:
                    return
                yield chunk
        finally:  # read to the end, or given up: the connection may serve another request
            response.watchdog.cancel()  # type: ignore[attr-defined]

    def location(self, response: requests.Response, method: str, url: str) -> str:
        """The `Location` an upload continues at (absolute, and checked like a redirect)."""
        value = response.headers.get("Location")
        if not value:
            raise RegistryError(method, url, response.status_code,
                                "the answer has no Location header to continue the upload at")
        target = urljoin(response.url, value)
        self._check_target(method, url, target, response.status_code, "the upload Location")
        return target

    def authorization(self, scope: str) -> Dict[str, str]:
        """The headers another HTTP client needs to read with `scope` (empty: anonymous).

        Asks `/v2/` for the challenge, as docker does, then authenticates for `scope`.
        """
        if scope not in self._auth:
            url = self.base + "/v2/"
            response = self._send_retrying("GET", url, scope, self.deadline_s)
            challenge = response.headers.get("WWW-Authenticate")
            if response.status_code == 401 and challenge:
                self._discard(response)
                self._authenticate(challenge, scope, "GET", url)
            elif response.status_code != 200:
                raise self._error("GET", url, response)
            else:
                self._discard(response)
        return {"Authorization": self._auth[scope]} if scope in self._auth else {}

    def _error(self, method: str, url: str, response: requests.Response) -> RegistryError:
        try:
            body = self.read(response, MAX_ERROR_BODY, method, url)
        except RegistryError:  # the status says enough; a stalled body must not hide it
            body = b""
        message = error_message(body, response.reason or "")
        if response.status_code in (401, 403):
            message += (" (the registry refused these credentials or their scope; "
                        f"credentials used: {self._describe_credentials()}; see "
                        "docs/registries.md for where they are looked up)")
        return RegistryError(method, url, response.status_code, message)

    def _discard(self, response: requests.Response) -> None:
        """Read a body nobody needs (a little, so the connection can be reused), then close."""
        try:
            self.read(response, MAX_ERROR_BODY, "", "")
        except RegistryError:
            pass

    def _describe_credentials(self) -> str:
        if self.credentials is None:
            return "none (anonymous)"
        return f"user {self.credentials.username!r} from {self.credentials.source}"

    def _send_retrying(self, method: str, url: str, scope: str, budget: float,
                       **kwargs) -> requests.Response:
        # All tries together get RETRY_BUDGET deadlines: a server that stalls each try until
        # just before its deadline, then drops it, must not multiply the wait by `attempts`.
        overall = Deadline(RETRY_BUDGET * budget)
        for attempt in range(1, self.attempts + 1):
            backoff = BACKOFF_S * 2 ** (attempt - 1)
            try:
                response = self._send(method, url, scope,
                                      Deadline(min(budget, overall.remaining())), **kwargs)
            except RegistryError as err:
                if not err.retryable or attempt == self.attempts or overall.remaining() <= 0:
                    raise
                self.retries += 1
                self.sleep(backoff)
                continue
            if response.status_code not in RETRYABLE or attempt == self.attempts \
                    or overall.remaining() <= 0:
                return response
            self._discard(response)
            self.retries += 1
            self.sleep(retry_after_s(response.headers.get("Retry-After"), backoff))
        raise AssertionError("unreachable")

    def _send(self, method: str, url: str, scope: str, deadline: Deadline,
              **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        auth = self._auth.get(scope)
        return self._follow(method, url, headers, deadline, auth=auth,
                            auth_origin=origin(self.base), **kwargs)

    def _follow(self, method: str, url: str, headers: Mapping[str, str], deadline: Deadline, *,
                auth: Optional[str] = None, auth_origin: Optional[tuple] = None,
                secret_body: bool = False, data=None, params=None) -> requests.Response:
        """`method url`, following up to MAX_REDIRECTS redirects; `auth` goes only to
        `auth_origin`. `secret_body`: the body holds a secret, so it never changes origin."""
        first_method, first_url = method, url
        self._check_target(method, url, url, 0, "the URL")
        for _ in range(MAX_REDIRECTS + 1):
            deadline.check(first_method, first_url)
            hop_headers = dict(headers)
            if auth and auth_origin not in (None, NOWHERE) and origin(url) == auth_origin:
                hop_headers["Authorization"] = auth
            if hasattr(data, "seek"):
                data.seek(0)
            response = self._once(method, url, hop_headers, deadline, data=data, params=params)
            status = response.status_code
            if status not in _REDIRECTS or not response.headers.get("Location"):
                return response
            target = urljoin(url, response.headers["Location"])
            self._discard(response)
            self._check_target(first_method, first_url, target, status, "a redirect")
            if secret_body and data is not None and origin(target) != origin(url) \
                    and status in (307, 308):
                raise RegistryError(first_method, first_url, status, "redirected to "
                                    f"{printable(target)}, another host, with the request's "
                                    "credentials in its body; refusing to follow")
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, data = "GET", None  # what browsers and requests do
            url, params = target, None  # the Location carries its own query
        raise RegistryError(first_method, first_url, status, f"more than {MAX_REDIRECTS} "
                            f"redirects (the last to {printable(url)}); the registry or a proxy "
                            "in front of it is redirecting in a loop")

    def _check_target(self, method: str, url: str, target: str, status: int, what: str) -> None:
        """A URL we send to: one that every URL parser reads alike (`origin.refusal`), http(s),
        and https only unless the registry was declared plain HTTP."""
        problem = refusal(target)
        if problem:
            raise RegistryError(method, url, status, f"{what} {printable(target)!r} {problem}; "
                                "refusing to follow it")
        if origin(target).scheme == "http" and not self.insecure:
            raise RegistryError(method, url, status, f"{what} {printable(target)!r} is plain "
                                "HTTP, but the registry is HTTPS; refusing the downgrade (only "
                                "a registry marked insecure may use plain HTTP)")

    def _once(self, method: str, url: str, headers: Mapping[str, str], deadline: Deadline,
              **kwargs) -> requests.Response:
        # Each read waits at most what is left of the deadline: a silent server is bounded too.
        left = max(0.01, deadline.remaining())
        timeouts = (min(TIMEOUT_S[0], left), min(TIMEOUT_S[1], left))
        watchdog = Watchdog(deadline)  # until `chunks` has read the body
        try:
            with watchdog:
                response = self.session.request(method, url, headers=headers, stream=True,
                                                verify=self._trust(url),
                                                timeout=timeouts,
                                                allow_redirects=False, **kwargs)
        except requests.exceptions.SSLError as err:
            kind = err.__class__.__name__
            if origin(url).host != origin(self.base).host:
                raise RegistryError(method, url, 0, f"TLS verification failed ({kind}) for "
                                    "this host, which is not the registry's: the "
                                    "system's trusted CAs must vouch for it (the registry's "
                                    "`ca_cert` applies to the registry's host only; "
                                    "$REQUESTS_CA_BUNDLE names another bundle)") from None
            raise RegistryError(method, url, 0, f"TLS verification failed ({kind}); "
                                "give the CA certificate that signed the registry's certificate "
                                "(`ca_cert` in [oci.registries], or --ca-cert)") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
            deadline.check(method, url)
            # http.client refuses a head over 100 lines or a line over 64 KiB the same way.
            raise RegistryError(method, url, 0, "cannot connect, or no well-formed status line "
                                f"and headers came back: {err.__class__.__name__}",
                                retryable=True) from None
        except (requests.exceptions.RequestException, ValueError) as err:
            raise RegistryError(method, url, 0, f"not a usable URL or request: "
                                f"{err.__class__.__name__}") from None
        response.deadline = deadline  # type: ignore[attr-defined]  # for reading its body
        response.watchdog = watchdog  # type: ignore[attr-defined]
        return response

    def _trust(self, url: str):
        """What verifies `url`'s certificate: `ca_cert` for the registry's own host (any port:
        the CA vouches for that name), the system store for every other host (blob storage,
        a token realm elsewhere), so a registry's private CA cannot vouch for them. The
        system store is requests' (certifi), or `$REQUESTS_CA_BUNDLE` / `$CURL_CA_BUNDLE`
        as requests reads them (`trust_env` is off here for the sake of proxies)."""
        own_host = origin(url).host == origin(self.base).host
        if own_host and not self.verify_tls:
            return False
        if self.ca_cert and own_host:
            return self.ca_cert
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True

    def _authenticate(self, challenge: str, scope: str, method: str, url: str) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials or not self.credentials.username:
                raise RegistryError(method, url, 401, "the registry needs credentials and none "
                                    "were found (see docs/registries.md)")
            self._auth[scope] = _basic(self.credentials)
        elif scheme == "bearer":
            self._auth[scope] = "Bearer " + self._token(params, scope, method, url)
        else:
            raise RegistryError(method, url, 401,
                                f"unsupported auth scheme {printable(scheme)[:40]!r}")

    def _check_realm(self, realm: str, method: str, url: str) -> None:
        problem = refusal(realm)
        if problem:
            raise RegistryError(method, url, 401, f"the Bearer challenge names the token realm "
                                f"{printable(realm)!r}, which {problem}")
        if origin(realm).scheme == "http" and not self.insecure:
            raise RegistryError(method, url, 401, f"the Bearer challenge names the token realm "
                                f"{printable(realm)!r}, plain HTTP: credentials would travel in "
                                "clear. An HTTPS registry must name an https realm (only a "
                                "registry marked insecure may use an http one)")

    def _token(self, params: Mapping[str, str], scope: str, method: str, url: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError(method, url, 401, "Bearer challenge without a realm")
        self._check_realm(realm, method, url)
        service = params.get("service", "")
        creds = self.credentials
        deadline = Deadline(self.deadline_s)
        if creds and creds.identity_token:
            token_method = "POST"
            response = self._follow("POST", realm, {}, deadline, secret_body=True, data={
                "grant_type": "refresh_token", "refresh_token": creds.identity_token,
                "service": service, "scope": scope, "client_id": "ocibuild"})  # OAuth2: space-separated
        else:
            token_method = "GET"
            response = self._follow(
                "GET", realm, {}, deadline, params={"service": service, "scope": scope.split()},
                auth=_basic(creds) if creds and creds.username else None,
                auth_origin=origin(realm))
        if response.status_code != 200:
            body = self.read(response, MAX_ERROR_BODY, token_method, realm)
            raise RegistryError(token_method, realm, response.status_code,
                                error_message(body) + " (token for " + scope + ", "
                                f"credentials used: {self._describe_credentials()})")
        try:
            return parse_token_reply(self.read(response, MAX_REPLY, token_method, realm))
        except RegistryError:
            raise
        except OciBuildError as err:
            raise RegistryError(token_method, realm, 200, str(err)) from None


def _basic(creds: Credentials) -> str:
    pair = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(pair).decode()
