"""A layer blob read as a tar stream: the decompressor its media type names, and the errors a
damaged one raises.

One place for what the readers of base layers (accounts' /etc/passwd, the base tree a layer
must not replace, a Dockerfile stage's filesystem) all need; each bounds what it reads itself.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO

from ocibuild import gunzip, mediatypes


def decompressed(media_type: str, blob: BinaryIO) -> BinaryIO:
    """`blob` decompressed as `media_type` says (an uncompressed layer as it is)."""
    if media_type in (mediatypes.OCI_LAYER_GZIP, mediatypes.DOCKER_LAYER_GZIP):
        return gunzip.reader(blob)  # igzip: a third of zlib's time (ocibuild.gunzip)
    if media_type == mediatypes.OCI_LAYER_ZSTD:
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(blob)  # type: ignore[return-value]
    return blob


def unreadable() -> tuple:
    """What a damaged layer raises while it is decompressed and read as a tar (gzip's are
    `ocibuild.gunzip.errors()`). zstandard is imported only here: most processes never need it."""
    errors: tuple = (tarfile.TarError, *gunzip.errors())
    try:
        import zstandard
        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    return errors
