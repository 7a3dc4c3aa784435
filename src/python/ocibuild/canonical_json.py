"""Canonical JSON: the bytes of configs and manifests are content-addressed, so one value
must always serialize to the same bytes (sorted keys, no whitespace, UTF-8)."""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
