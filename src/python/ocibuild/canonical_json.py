"""Canonical JSON for configs, manifests and indexes.

Their bytes are content-addressed: the digest of the bytes *is* the image's identity, so one
value must always serialize to the same bytes, whatever the dict insertion order, Python
version or locale. Hence sorted keys, no whitespace, UTF-8 without escaping (so non-ASCII
labels do not depend on an escaping choice), and no NaN/Infinity (not JSON at all).
"""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
