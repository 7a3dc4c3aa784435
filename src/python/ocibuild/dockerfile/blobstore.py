"""`--cache-dir`'s blobs: base-image layers and cached step layers, kept by digest.

Content-addressed (DIR/blobs/sha256/HEX), so an entry never goes stale and one store serves
base images and RUN-step layers alike. Nothing in it is trusted: every read copies the blob
out while hashing it and keeps the copy only when digest and size are the ones asked for; a
blob that fails is removed (damaged, or written by someone else) and fetched again. Writes
go through a temp file renamed into place, so a crash or a concurrent build never leaves a
partial blob under a digest's name.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Callable, Optional

from ocibuild.atomic import TempFile
from ocibuild.digest import HashingWriter, hex_of
from ocibuild.image.manifest import Descriptor
from ocibuild.untrusted import os_reason

_CHUNK = 1 << 20


class BlobStore:
    def __init__(self, root: str) -> None:
        self.root = os.path.join(root, "blobs", "sha256")
        self._warned = False

    def path(self, digest: str) -> str:
        return os.path.join(self.root, hex_of(digest))

    def copy_out(self, descriptor: Descriptor, dest: str) -> bool:
        """The blob at `dest`, verified; False (and the bad blob removed) when the store has
        it not, or not as `descriptor` says."""
        source = self.path(descriptor.digest)
        if not os.path.isfile(source) or os.path.islink(source):
            return False
        if os.path.exists(dest):
            return True
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with TempFile(os.path.dirname(dest)) as tmp, open(source, "rb") as f:
            writer = HashingWriter(tmp.file)
            while writer.size <= descriptor.size:
                chunk = f.read(_CHUNK)
                if not chunk:
                    break
                writer.write(chunk)
            if (writer.digest, writer.size) != (descriptor.digest, descriptor.size):
                _remove(source)
                return False
            tmp.commit(dest, keep_existing=True)
        return True

    def put(self, path: str, digest: str) -> None:
        """A verified blob (our own, or checked on download) into the store."""
        final = self.path(digest)
        if os.path.exists(final):
            return
        os.makedirs(self.root, exist_ok=True)
        with TempFile(self.root) as tmp, open(path, "rb") as f:
            shutil.copyfileobj(f, tmp.file, _CHUNK)
            tmp.commit(final, keep_existing=True)

    def fetch(self, descriptor: Descriptor, dest: str,
              download: Callable[[Descriptor, str], None]) -> Optional[str]:
        """The blob at `dest`: from the store when it verifies, else `download`ed (which
        verifies) into the store first. Returns "cached" or "downloaded". A store that cannot
        be read or written is a warning (once), and the blob is downloaded to `dest`."""
        try:
            if self.copy_out(descriptor, dest):
                return "cached"
            os.makedirs(self.root, exist_ok=True)
            download(descriptor, self.path(descriptor.digest))
            if self.copy_out(descriptor, dest):
                return "downloaded"
        except OSError as err:
            if not self._warned:
                self._warned = True
                print(f"ocibuild: warning: --cache-dir {os.path.dirname(os.path.dirname(self.root))}"
                      f": {err.filename}: {os_reason(err)}; base images are downloaded "
                      "without it", file=sys.stderr)
        download(descriptor, dest)  # the store lost it meanwhile, or cannot keep it
        return "downloaded"


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
