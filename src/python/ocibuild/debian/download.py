"""Locked .deb files, fetched outside Pants (`ocibuild build` with Debian `contents`).

What Pants' downloader does for the plugin, with the same trust rule: a file is kept only if
its size and SHA-256 are the lockfile's. Each try streams into a temp file beside the cache,
stops at the first byte past the locked size, and is renamed into the cache (named by its
SHA-256) only once verified, so the cache never holds a file that is not what some lockfile
locked, and a package is downloaded once for every image and lockfile that names it.
The URLs are tried in order (the suite's mirror, then each fallback), as the plugin does.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable, List, Optional, Sequence

import requests

from ocibuild.atomic import TempFile
from ocibuild.debian.repository import fetch_to, redact
from ocibuild.digest import HashingWriter
from ocibuild.errors import OciBuildError

Progress = Callable[[int], None]  # bytes received since the last call


def cached_deb(cache_dir: str, sha256: str, size: int) -> Optional[str]:
    """The cached file of that SHA-256, if its bytes still are the locked ones (it was verified
    when stored; hashing it again costs ~20 ms for a Python base and catches a damaged cache,
    which is then fetched anew)."""
    path = os.path.join(cache_dir, f"{sha256}.deb")
    try:
        if os.path.getsize(path) != size:
            return None
        with open(path, "rb") as f:
            digest = _sha256(f)
    except OSError:
        return None
    return path if digest == sha256 else None


def _sha256(f) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def fetch_deb(session: requests.Session, urls: Sequence[str], sha256: str, size: int,
              cache_dir: str, progress: Optional[Progress] = None) -> str:
    """The path of the verified file in `cache_dir`: from the cache, else from the first of
    `urls` that serves exactly the locked bytes. Raises with every try's failure."""
    found = cached_deb(cache_dir, sha256, size)
    if found:
        return found
    final = os.path.join(cache_dir, f"{sha256}.deb")
    failures: List[str] = []
    for url in urls:
        with TempFile(cache_dir) as tmp:
            writer = HashingWriter(tmp.file)

            def sink(chunk: bytes) -> None:
                writer.write(chunk)
                if progress:
                    progress(len(chunk))
            try:
                # A byte past the locked size is already the wrong file: stop there.
                fetch_to(session, url, size, sink)
            except OciBuildError as err:
                failures.append(str(err))
                continue
            if (writer.digest, writer.size) != (f"sha256:{sha256}", size):
                failures.append(f"GET {redact(url)}: {writer.size} bytes with {writer.digest}, "
                                f"not the locked {size} bytes with sha256:{sha256}")
                continue
            tmp.commit(final)  # replaces a damaged copy, if that is why we fetched
            return final
    raise OciBuildError("\n  ".join(failures))
