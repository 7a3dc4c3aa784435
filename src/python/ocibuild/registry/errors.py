"""Registry errors: `METHOD url: CODE: message`, body read capped, never credentials.

The registry's text is shown as the registry sent it, minus control characters: a hostile
server must not be able to write terminal escape sequences into our output.
"""

from __future__ import annotations

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import load_json

# An error body is for a human: a few KiB say everything (a 1 GiB 404 must cost nothing).
MAX_ERROR_BODY = 4096
RETRYABLE = {408, 429, 500, 502, 503, 504}


class RegistryError(OciBuildError):
    def __init__(self, method: str, url: str, status: int, message: str, *,
                 retryable: bool = False) -> None:
        self.status = status
        self.retryable = retryable or status in RETRYABLE
        super().__init__(f"{method} {url}: {status}: {message}")


def printable(text: str) -> str:
    """`text` with control characters (escape sequences, NUL, newlines) made spaces."""
    return "".join(c if c.isprintable() else " " for c in text)


def error_message(body: bytes, reason: str = "") -> str:
    """The registry's own error text (distribution spec `errors` array) when there is one."""
    body = body[:MAX_ERROR_BODY]
    try:
        errors = load_json(body, "the error body").get("errors")
    except OciBuildError:
        errors = None
    if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
        text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    else:
        text = body.decode("utf-8", "replace").strip() or reason or "(no body)"
    return printable(text)[:MAX_ERROR_BODY]
