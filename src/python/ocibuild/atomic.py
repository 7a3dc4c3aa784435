"""Never leave partial output: write a temp file (or directory) beside the target, then rename.

The temp lives in the target's directory so the rename stays on one filesystem and is atomic;
a reader sees either no file or the whole file, and never a half-written directory.

Debris. A failed run removes its temps when it unwinds (`ocibuild.cli` turns SIGTERM, SIGINT
and SIGHUP into an unwind too). SIGKILL cannot be caught, so temps are named
`.partial-<pid>-<pid namespace>-<random>`: whoever next creates a temp in that directory
removes those whose writer is gone (same PID namespace, PID no longer alive). A reused PID
only delays that until the PID is free again; a temp of another PID namespace (another
container sharing the directory) is left alone, as we cannot tell whether its writer lives.
Readers only ever open exact names (`index.json`, `blobs/sha256/<hex>`), never `.partial-*`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from typing import BinaryIO, Iterator, List, Optional, Set

from ocibuild.digest import HashingWriter
from ocibuild.errors import OciBuildError

# Blobs and metadata are data, readable by everyone, whatever the umask.
FILE_MODE = 0o644
DIR_MODE = 0o755
PARTIAL = ".partial-"
_OURS = re.compile(r"^\.partial-([0-9]+)-([0-9]+)-")
# Directories swept by this process already: sweeping once is enough, since what we leave
# there ourselves is cleaned up on unwinding.
_swept: Set[str] = set()


def _pid_namespace() -> str:
    """The PID namespace's inode on Linux ("0" elsewhere): a PID means nothing outside it."""
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return "0"


def _prefix() -> str:
    return f"{PARTIAL}{os.getpid()}-{_pid_namespace()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:  # gone already (another sweeper), or not ours to remove
        pass


def sweep_debris(directory: str) -> List[str]:
    """Remove the temps in `directory` that killed writers left; returns their names."""
    namespace = _pid_namespace()
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        ours = _OURS.match(name)
        if ours and ours.group(2) == namespace and int(ours.group(1)) != os.getpid() \
                and not _alive(int(ours.group(1))):
            _remove(os.path.join(directory, name))
            removed.append(name)
    return removed


def _sweep_once(directory: str) -> None:
    key = os.path.abspath(directory)
    if key not in _swept:
        _swept.add(key)
        sweep_debris(directory)


def _missing_parents(directory: str) -> List[str]:
    """The directories `os.makedirs(directory)` would create, deepest first."""
    created = []
    missing = os.path.abspath(directory)
    while not os.path.isdir(missing) and os.path.dirname(missing) != missing:
        created.append(missing)
        missing = os.path.dirname(missing)
    return created


def _remove_empty(directories: List[str]) -> None:
    for directory in directories:
        try:
            os.rmdir(directory)
        except OSError:  # not empty: something else was written there meanwhile
            break


class TempFile:
    """`with TempFile(dir) as tmp: tmp.file.write(...); tmp.commit(path)`.

    The temp file is removed on leaving the block unless it was committed, and so are the
    directories created for it, if they are still empty: a failed build leaves nothing."""

    def __init__(self, directory: str) -> None:
        self._created = _missing_parents(directory)
        os.makedirs(directory, exist_ok=True)
        _sweep_once(directory)
        fd, self.path = tempfile.mkstemp(dir=directory, prefix=_prefix())
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
            _remove_empty(self._created)


def atomic_write(path: str, data: bytes, *, keep_existing: bool = False) -> None:
    directory: Optional[str] = os.path.dirname(path) or "."
    with TempFile(directory) as tmp:
        tmp.file.write(data)
        tmp.commit(path, keep_existing=keep_existing)


def copy_verified(blob: BinaryIO, path: str, digest: str) -> str:
    """Stream `blob` into the content-addressed `path`, committed only if its bytes are
    `digest`. Returns the digest read, for the caller to word the error when they differ."""
    with TempFile(os.path.dirname(path)) as tmp:
        writer = HashingWriter(tmp.file)
        for chunk in iter(lambda: blob.read(1 << 20), b""):
            writer.write(chunk)
        if writer.digest == digest:
            tmp.commit(path, keep_existing=True)
        return writer.digest


def _check_target(target: str) -> None:
    if os.path.lexists(target) and not (os.path.isdir(target) and not os.path.islink(target)
                                        and not os.listdir(target)):
        raise OciBuildError(f"the output directory {target!r} exists and is not empty; it is "
                            "left as it is: give a new directory, or remove it first")


@contextlib.contextmanager
def atomic_directory(target: str) -> Iterator[str]:
    """`with atomic_directory(out) as tmp: <write into tmp>`: on success `tmp` is renamed to
    `out`; on any failure (or signal) it is removed and `out` stays as it was.

    `out` must not exist or be an empty directory: a directory the user already filled is
    theirs, and is never replaced or deleted (a non-empty one is refused before any work).
    """
    _check_target(target)
    parent = os.path.dirname(os.path.abspath(target))
    created = _missing_parents(parent)
    os.makedirs(parent, exist_ok=True)
    _sweep_once(parent)
    tmp = tempfile.mkdtemp(dir=parent, prefix=_prefix())
    try:
        yield tmp
        os.chmod(tmp, DIR_MODE)
        _check_target(target)  # filled meanwhile by someone else: still theirs
        # rename(2) replaces an empty directory atomically and fails on a non-empty one.
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise


@contextlib.contextmanager
def layout_directory(output: Optional[str]) -> Iterator[str]:
    """Where a command builds its layout: beside `output`, renamed to it on success
    (`atomic_directory`); with no `output` (a push alone), a temp directory removed after."""
    if output is not None:
        with atomic_directory(output) as tmp:
            yield tmp
    else:
        with tempfile.TemporaryDirectory(prefix="ocibuild-layout-") as tmp:
            yield tmp
