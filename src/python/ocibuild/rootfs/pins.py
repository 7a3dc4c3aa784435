"""Every inode of a RUN step's tree held open while the step runs, so none can be reused.

Without root, what the image says of a file (owner, mode, device) is keyed by its inode
number: faked's table and the ledger's records both. ext4 and others hand a freed number to
the next file made, so a step that deletes a file and makes another (shadow's tools do it
for each file they write: `/etc/gshadow+`, chowned, renamed over /etc/gshadow) could give the
new file the number of the old, and with it the old one's owner, or leave it with none where
the table looked unchanged for that number. An inode stays allocated while a descriptor
holds it, even unlinked: with one O_PATH descriptor on each (no read permission needed, no
side effect the step can see), a number the tree had when the step started names the same
file until the step ends, and what the step makes gets numbers of its own.

The descriptors are this process's, never passed to the step (spawn closes them). The
soft open-file limit is raised for them, up to the hard one; a tree with more inodes than
that allows is held in part, and `complete` says so.
"""

from __future__ import annotations

import errno
import os
import resource
from typing import Dict, List, Optional, Set, Tuple

from ocibuild.rootfs.paths import walk

# Descriptors left for everything else the build opens meanwhile (pipes, faked, logs).
SPARE = 256
_O_PATH = getattr(os, "O_PATH", 0o10000000)


class Pins:
    """`held`: the (st_dev, st_ino) held open, all of the tree's when `complete`."""

    def __init__(self, root: str) -> None:
        self.held: Set[Tuple[int, int]] = set()
        self._fds: List[int] = []
        self._limit: Optional[Tuple[int, int]] = None
        wanted: Dict[Tuple[int, int], str] = {}
        for path, st in walk(root):
            wanted.setdefault((st.st_dev, st.st_ino), path)
        self.inodes = len(wanted)
        room = self._make_room(len(wanted))
        for key, path in list(wanted.items())[:room]:
            try:
                self._fds.append(os.open(os.path.join(root, path), _O_PATH | os.O_NOFOLLOW))
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE):
                    break  # the limit was not all ours
                continue  # gone, or under a directory a step left unsearchable
            self.held.add(key)
        self.complete = len(self.held) == len(wanted)

    def _make_room(self, wanted: int) -> int:
        """How many descriptors may be opened, the soft limit raised for them if need be."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        open_now = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 64
        need = open_now + wanted + SPARE
        if need > soft:
            target = need if hard == resource.RLIM_INFINITY else min(need, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                self._limit = (soft, hard)
                soft = target
            except (OSError, ValueError):
                pass
        return max(0, min(wanted, soft - open_now - SPARE))

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        if self._limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, self._limit)
            self._limit = None
