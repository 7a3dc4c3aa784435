"""`sha256:<hex>` digests, computed while streaming so no blob is ever held in memory."""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO, Optional

from ocibuild.errors import OciBuildError

# Big enough that per-call overhead vanishes, small enough that memory stays flat.
CHUNK = 1 << 20
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def validate_digest(value: object) -> str:
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise OciBuildError(
            f"digest {value!r} must be 'sha256:' followed by 64 lowercase hex digits, "
            f'e.g. "{EMPTY_DIGEST}"'
        )
    return value


def hex_of(digest: str) -> str:
    """The hex part, which names the blob file under `blobs/sha256/`."""
    return validate_digest(digest)[len("sha256:"):]


def bytes_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HashingWriter:
    """Passes writes on to `fileobj` (if any) while counting and hashing them."""

    def __init__(self, fileobj: Optional[BinaryIO] = None) -> None:
        self._fileobj = fileobj
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self.size += len(data)
        if self._fileobj is not None:
            self._fileobj.write(data)
        return len(data)

    def flush(self) -> None:
        if self._fileobj is not None:
            self._fileobj.flush()

    def detach(self) -> None:
        """Stop passing writes on (they are still counted and hashed)."""
        self._fileobj = None

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


class HashingReader:
    """Reads from `fileobj` while counting and hashing what was read, to verify while copying."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._fileobj = fileobj
        self._sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._fileobj.read(n)
        self._sha.update(data)
        self.size += len(data)
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


def file_digest(path: str) -> tuple[str, int]:
    """(digest, size) of a file, read in CHUNK pieces."""
    writer = HashingWriter()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            writer.write(chunk)
    return writer.digest, writer.size
