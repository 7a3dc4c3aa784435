"""Where a URL really goes: the origin the HTTP library connects to, and which URLs we take.

Credentials follow origins, so the origin must be the one requests/urllib3 will connect to,
not what `urllib.parse` reads: the two disagree on `http://EVIL\\@REGISTRY/` (urllib3 ends the
host at the backslash, urllib.parse at the `@`), on percent-encoded hosts (urllib3 decodes
`%31%32%37.0.0.1`), on tabs (urllib.parse drops them), and may disagree on the next trick.
So `origin` asks the library's own parser, after its own normalisation (the URL requests
prepares, then `urllib3.util.parse_url`, as its adapter picks a connection pool), and
`refusal` turns down any URL a server hands us (redirects, upload Locations, token realms)
that the two parsers read differently, or that holds what no honest server sends: userinfo,
whitespace, control or non-ASCII characters, backslashes, a `%` in the host.
"""

from __future__ import annotations

from typing import NamedTuple, Optional
from urllib.parse import urlsplit

import requests
import urllib3

DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(NamedTuple):
    scheme: str
    host: str  # lower case; an IPv6 literal without its brackets
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


# Matches no real origin: what an unusable URL is, so it never equals the registry's.
NOWHERE = Origin("", "", -1)


def origin(url: str) -> Origin:
    """The (scheme, host, port) requests connects to for `url`; `NOWHERE` if it cannot."""
    try:
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        parsed = urllib3.util.parse_url(prepared.url)
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ValueError,
            UnicodeError):
        return NOWHERE
    scheme = (parsed.scheme or "").lower()
    port = parsed.port or DEFAULT_PORTS.get(scheme)
    if not parsed.host or port is None:
        return NOWHERE
    return Origin(scheme, parsed.host.lower().strip("[]"), port)


def _stdlib_origin(url: str) -> Optional[Origin]:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return Origin(scheme, parts.hostname, port)


def refusal(url: str) -> Optional[str]:
    """Why `url`, from a server, is not one we send a request to; None if it is fine."""
    if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        return "holds whitespace, control or non-ASCII characters"
    if "\\" in url:
        return "holds a backslash (HTTP libraries disagree on where its host ends)"
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in DEFAULT_PORTS:
        return "is not an http(s) URL"
    authority = url[len(scheme) + 3:].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        return "holds a user name or password (userinfo), which a server never needs to send"
    if "%" in authority:
        return "has a percent-encoded host"
    connects_to = origin(url)
    if connects_to == NOWHERE:
        return "is not a URL the HTTP library can use"
    if _stdlib_origin(url) != connects_to:
        return "is read differently by different URL parsers"
    return None
