"""HTTP to one registry: TLS options, retries, and auth by answering the registry's challenge.

On a 401 the `WWW-Authenticate` challenge decides: `Basic` sends the credentials; `Bearer`
fetches a token for exactly the requested scope from the realm (cached per scope; an identity
token is exchanged as an OAuth2 refresh token), then the request is retried once.
Credentials are only ever sent to the registry host or its realm; requests drops the
Authorization header on a redirect to another host (blob storage).

408, 429 and 5xx answers and dropped connections are retried with exponential backoff,
honouring `Retry-After`; a request body is rewound before each try.
"""

from __future__ import annotations

import base64
import email.utils
import re
import time
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import requests

from ocibuild.registry.credentials import Credentials
from ocibuild.registry.errors import RETRYABLE, RegistryError, error_message

_PARAM = re.compile(r'(\w+)="([^"]*)"')
TIMEOUT_S = (10, 300)
ATTEMPTS = 5
BACKOFF_S = 0.5
MAX_WAIT_S = 30.0

__all__ = ["Credentials", "Transport", "parse_challenge"]


def parse_challenge(header: str) -> Tuple[str, Dict[str, str]]:
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(params))


def retry_after_s(value: Optional[str], default: float) -> float:
    """`Retry-After` as seconds or an HTTP date, capped; absent or unreadable: `default`."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_WAIT_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return default
    return max(0.0, min(when - time.time(), MAX_WAIT_S))


class Transport:
    def __init__(self, host: str, *, insecure: bool = False, ca_cert: Optional[str] = None,
                 credentials: Union[None, Credentials, Callable[[], Optional[Credentials]]] = None,
                 attempts: int = ATTEMPTS, sleep: Callable[[float], None] = time.sleep) -> None:
        """`credentials` may be a function: it is called once, when a challenge needs them,
        so a run that needs none never reads config files or runs credential helpers."""
        self.host = host
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self._credentials = credentials
        self.attempts = attempts
        self.sleep = sleep
        self.retries = 0  # how many requests were repeated, for reports and tests
        self.session = requests.Session()
        # The machine's proxy settings must not apply to a registry we were told to use.
        self.session.trust_env = False
        if ca_cert:
            self.session.verify = ca_cert
        self._auth: Dict[str, str] = {}  # scope -> Authorization header value

    @property
    def credentials(self) -> Optional[Credentials]:
        if callable(self._credentials):
            self._credentials = self._credentials()
        return self._credentials  # type: ignore[return-value]

    def url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else self.base + path_or_url

    def request(self, method: str, path_or_url: str, *, scope: str,
                expected: Tuple[int, ...] = (200,), **kwargs) -> requests.Response:
        url = self.url(path_or_url)
        response = self._send_retrying(method, url, scope, **kwargs)
        if response.status_code == 401 and "WWW-Authenticate" in response.headers:
            self._authenticate(response.headers["WWW-Authenticate"], scope, method, url)
            response = self._send_retrying(method, url, scope, **kwargs)
        if response.status_code not in expected:
            message = error_message(response.content, response.reason)
            if response.status_code in (401, 403):
                message += (" (the registry refused these credentials or their scope; "
                            f"credentials used: {self._describe_credentials()}; see "
                            "docs/registries.md for where they are looked up)")
            raise RegistryError(method, url, response.status_code, message)
        return response

    def authorization(self, scope: str) -> Dict[str, str]:
        """The headers another HTTP client needs to read with `scope` (empty: anonymous).

        Asks `/v2/` for the challenge, as docker does, then authenticates for `scope`.
        """
        if scope not in self._auth:
            response = self._send_retrying("GET", self.base + "/v2/", scope)
            if response.status_code == 401 and "WWW-Authenticate" in response.headers:
                self._authenticate(response.headers["WWW-Authenticate"], scope, "GET",
                                   self.base + "/v2/")
            elif response.status_code != 200:
                raise RegistryError("GET", self.base + "/v2/", response.status_code,
                                    error_message(response.content, response.reason))
        return {"Authorization": self._auth[scope]} if scope in self._auth else {}

    def _describe_credentials(self) -> str:
        if self.credentials is None:
            return "none (anonymous)"
        return f"user {self.credentials.username!r} from {self.credentials.source}"

    def _send_retrying(self, method: str, url: str, scope: str, **kwargs) -> requests.Response:
        for attempt in range(1, self.attempts + 1):
            data = kwargs.get("data")
            if hasattr(data, "seek"):
                data.seek(0)
            backoff = BACKOFF_S * 2 ** (attempt - 1)
            try:
                response = self._send(method, url, scope, **kwargs)
            except RegistryError as err:
                if not err.retryable or attempt == self.attempts:
                    raise
                self.retries += 1
                self.sleep(backoff)
                continue
            if response.status_code not in RETRYABLE or attempt == self.attempts:
                return response
            self.retries += 1
            self.sleep(retry_after_s(response.headers.get("Retry-After"), backoff))
        raise AssertionError("unreachable")

    def _send(self, method: str, url: str, scope: str, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if scope in self._auth:
            headers["Authorization"] = self._auth[scope]
        try:
            return self.session.request(method, url, headers=headers, timeout=TIMEOUT_S,
                                        allow_redirects=True, **kwargs)
        except requests.exceptions.SSLError as err:
            raise RegistryError(method, url, 0, f"TLS verification failed ({err.__class__.__name__}); "
                                "give the CA certificate that signed the registry's certificate "
                                "(`ca_cert` in [oci.registries], or --ca-cert)") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
            raise RegistryError(method, url, 0, f"cannot connect: {err.__class__.__name__}",
                                retryable=True) from None

    def _authenticate(self, challenge: str, scope: str, method: str, url: str) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials or not self.credentials.username:
                raise RegistryError(method, url, 401, "the registry needs credentials and none "
                                    "were found (see docs/registries.md)")
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            self._auth[scope] = "Basic " + base64.b64encode(pair).decode()
        elif scheme == "bearer":
            self._auth[scope] = "Bearer " + self._token(params, scope)
        else:
            raise RegistryError(method, url, 401, f"unsupported auth scheme {scheme!r}")

    def _token(self, params: Mapping[str, str], scope: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError("GET", self.base, 401, "Bearer challenge without a realm")
        service = params.get("service", "")
        creds = self.credentials
        try:
            if creds and creds.identity_token:
                method = "POST"
                response = self.session.post(realm, timeout=TIMEOUT_S, data={
                    "grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "service": service, "scope": scope, "client_id": "ocibuild"})  # OAuth2: space-separated
            else:
                method = "GET"
                auth = (creds.username, creds.password) if creds and creds.username else None
                response = self.session.get(realm, params={"service": service, "scope": scope.split()},
                                            auth=auth, timeout=TIMEOUT_S)
        except requests.exceptions.RequestException as err:
            raise RegistryError("GET", realm, 0, f"cannot reach the token server: "
                                f"{err.__class__.__name__}", retryable=True) from None
        if response.status_code != 200:
            raise RegistryError(method, realm, response.status_code,
                                error_message(response.content) + " (token for " + scope + ", "
                                f"credentials used: {self._describe_credentials()})")
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(method, realm, 200, "the token server's answer has no token")
        return token
