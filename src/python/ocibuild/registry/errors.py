"""Registry errors: `METHOD url: CODE: message`, body read capped, never credentials."""

from __future__ import annotations

import json

from ocibuild.errors import OciBuildError

_MAX_BODY = 4096
RETRYABLE = {408, 429, 500, 502, 503, 504}


class RegistryError(OciBuildError):
    def __init__(self, method: str, url: str, status: int, message: str, *,
                 retryable: bool = False) -> None:
        self.status = status
        self.retryable = retryable or status in RETRYABLE
        super().__init__(f"{method} {url}: {status}: {message}")


def error_message(body: bytes, reason: str = "") -> str:
    """The registry's own error text (distribution spec `errors` array) when there is one."""
    text = body[:_MAX_BODY].decode("utf-8", "replace")
    try:
        errors = json.loads(text).get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or text
    except (ValueError, AttributeError):
        return text.strip() or reason or "(no body)"
