"""HTTP to one registry: TLS options, and auth by answering the registry's challenge.

On a 401 the `WWW-Authenticate` challenge decides: `Basic` sends the credentials; `Bearer`
fetches a token for exactly the requested scope from the realm (cached per scope), then the
request is retried once. Credentials are only ever sent to the registry host or its realm.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import requests

from ocibuild.registry.errors import RegistryError, error_message

_PARAM = re.compile(r'(\w+)="([^"]*)"')
TIMEOUT_S = (10, 300)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(username={self.username!r}, password=<redacted>)"


def parse_challenge(header: str) -> Tuple[str, Dict[str, str]]:
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(params))


class Transport:
    def __init__(self, host: str, *, insecure: bool = False, ca_cert: Optional[str] = None,
                 credentials: Optional[Credentials] = None) -> None:
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.credentials = credentials
        self.session = requests.Session()
        # The machine's proxy settings must not apply to a registry we were told to use.
        self.session.trust_env = False
        if ca_cert:
            self.session.verify = ca_cert
        self._auth: Dict[str, str] = {}  # scope -> Authorization header value

    def request(self, method: str, path_or_url: str, *, scope: str,
                expected: Tuple[int, ...] = (200,), **kwargs) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        response = self._send(method, url, scope, **kwargs)
        if response.status_code == 401 and "WWW-Authenticate" in response.headers:
            self._authenticate(response.headers["WWW-Authenticate"], scope, url)
            data = kwargs.get("data")
            if hasattr(data, "seek"):
                data.seek(0)
            response = self._send(method, url, scope, **kwargs)
        if response.status_code not in expected:
            message = error_message(response.content, response.reason)
            if response.status_code in (401, 403):
                message += (" (the registry refused these credentials or their scope: set "
                            "OCIBUILD_USERNAME and OCIBUILD_PASSWORD for it)")
            raise RegistryError(method, url, response.status_code, message)
        return response

    def _send(self, method: str, url: str, scope: str, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if scope in self._auth:
            headers["Authorization"] = self._auth[scope]
        try:
            return self.session.request(method, url, headers=headers, timeout=TIMEOUT_S,
                                        allow_redirects=True, **kwargs)
        except requests.exceptions.SSLError as err:
            raise RegistryError(method, url, 0, f"TLS verification failed ({err.__class__.__name__}); "
                                "pass the registry's CA certificate") from None
        except requests.exceptions.ConnectionError as err:
            raise RegistryError(method, url, 0, f"cannot connect: {err.__class__.__name__}") from None

    def _authenticate(self, challenge: str, scope: str, url: str) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials:
                raise RegistryError("GET", url, 401, "the registry needs credentials; none given")
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            self._auth[scope] = "Basic " + base64.b64encode(pair).decode()
        elif scheme == "bearer":
            self._auth[scope] = "Bearer " + self._token(params, scope)
        else:
            raise RegistryError("GET", url, 401, f"unsupported auth scheme {scheme!r}")

    def _token(self, params: Dict[str, str], scope: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError("GET", self.base, 401, "Bearer challenge without a realm")
        query = {"service": params.get("service", ""), "scope": scope}
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        response = self.session.get(realm, params=query, auth=auth, timeout=TIMEOUT_S)
        if response.status_code != 200:
            raise RegistryError("GET", realm, response.status_code,
                                error_message(response.content))
        body = response.json()
        return body.get("token") or body["access_token"]
