"""`sha256:<hex>` digests, computed while streaming."""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from ocibuild.errors import OciBuildError

CHUNK = 1 << 20
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def validate_digest(value: str) -> str:
    if not _DIGEST.match(value):
        raise OciBuildError(f"{value!r} is not a sha256 digest, e.g. 'sha256:' + 64 hex digits.")
    return value


def hex_of(digest: str) -> str:
    return validate_digest(digest).split(":", 1)[1]


def bytes_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HashingWriter:
    """Passes writes to `target` (if any) while counting and hashing them."""

    def __init__(self, target: BinaryIO | None = None) -> None:
        self._target = target
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self.size += len(data)
        if self._target is not None:
            self._target.write(data)
        return len(data)

    def flush(self) -> None:
        if self._target is not None:
            self._target.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


def file_digest(path: str) -> tuple[str, int]:
    writer = HashingWriter()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            writer.write(chunk)
    return writer.digest, writer.size
