"""Never leave partial output: write a temp file beside the target, then rename it.

The temp file lives in the target's directory so the rename stays on one filesystem and is
atomic; a reader sees either no file or the whole file.
"""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Optional

# Blobs and metadata are data, readable by everyone, whatever the umask.
FILE_MODE = 0o644


class TempFile:
    """`with TempFile(dir) as tmp: tmp.file.write(...); tmp.commit(path)`.

    The temp file is removed on leaving the block unless it was committed, and so are the
    directories created for it, if they are still empty: a failed build leaves nothing."""

    def __init__(self, directory: str) -> None:
        self._created = []  # deepest first
        missing = os.path.abspath(directory)
        while not os.path.isdir(missing) and os.path.dirname(missing) != missing:
            self._created.append(missing)
            missing = os.path.dirname(missing)
        os.makedirs(directory, exist_ok=True)
        fd, self.path = tempfile.mkstemp(dir=directory, prefix=".partial-")
        self.file: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 20)
        self._done = False

    def __enter__(self) -> "TempFile":
        return self

    def commit(self, final_path: str, *, keep_existing: bool = False) -> None:
        """Rename into place. `keep_existing`: a content-addressed target that exists already
        holds these very bytes, so keep it (and its inode) and drop the temp file."""
        self.file.close()
        if keep_existing and os.path.exists(final_path):
            os.unlink(self.path)
        else:
            os.chmod(self.path, FILE_MODE)
            os.replace(self.path, final_path)
        self._done = True

    def __exit__(self, *exc_info: object) -> None:
        if not self._done:
            self.file.close()
            if os.path.exists(self.path):
                os.unlink(self.path)
            for directory in self._created:
                try:
                    os.rmdir(directory)
                except OSError:  # not empty: something else was written there meanwhile
                    break


def atomic_write(path: str, data: bytes, *, keep_existing: bool = False) -> None:
    directory: Optional[str] = os.path.dirname(path) or "."
    with TempFile(directory) as tmp:
        tmp.file.write(data)
        tmp.commit(path, keep_existing=keep_existing)
