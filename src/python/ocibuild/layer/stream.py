"""A layer blob read as a tar stream: the decompressor its media type names, and the errors a
damaged one raises.

One place for what the readers of base layers (accounts' /etc/passwd, the base tree a layer
must not replace, a Dockerfile stage's filesystem) all need; each bounds what it reads itself.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from typing import BinaryIO

from ocibuild import mediatypes


def decompressed(media_type: str, blob: BinaryIO) -> BinaryIO:
    """`blob` decompressed as `media_type` says (an uncompressed layer as it is)."""
    if media_type in (mediatypes.OCI_LAYER_GZIP, mediatypes.DOCKER_LAYER_GZIP):
        return gzip.GzipFile(fileobj=blob)  # type: ignore[return-value]
    if media_type == mediatypes.OCI_LAYER_ZSTD:
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(blob)  # type: ignore[return-value]
    return blob


def unreadable() -> tuple:
    """What a damaged layer raises while it is decompressed and read as a tar (OSError covers
    gzip.BadGzipFile). zstandard is imported only here: most processes never need it."""
    errors: tuple = (tarfile.TarError, OSError, EOFError, zlib.error)
    try:
        import zstandard
        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    return errors
