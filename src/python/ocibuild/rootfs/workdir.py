"""A RUN step's working directory, made when the tree lacks it, as docker makes it before the
step starts (moby's SetupWorkingDirectory; runc makes a missing cwd too): each missing
directory 0755 and root's, whatever the step's USER, a symlink on the way followed inside the
tree (chroot-style, as stubs.resolve), so the step's layer holds what was made. Without it a
step whose directory an earlier step removed (or a base's WorkingDir the base lacks) failed
to start as root and, under proot, ran in / without a word."""

from __future__ import annotations

import os
import stat

from ocibuild.errors import OciBuildError
from ocibuild.layer.entries import DIR
from ocibuild.rootfs import stubs
from ocibuild.rootfs.ledger import Ledger, Meta
from ocibuild.untrusted import os_reason


def ensure(root: str, cwd: str, ledger: Ledger) -> None:
    what = "RUN step: the working directory"
    rel = stubs.resolve(root, cwd, what)
    parts = rel.split("/") if rel else []
    current = root
    try:
        for i, part in enumerate(parts):
            current = os.path.join(current, part)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                os.chmod(current, 0o755)  # not the umask's
                ledger.record("/".join(parts[:i + 1]), Meta(DIR, 0o755), os.lstat(current))
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise OciBuildError(f"{what} {cwd} cannot be made: /{'/'.join(parts[:i + 1])} "
                                    "is not a directory in the image (docker refuses this "
                                    "step too)")
    except OSError as err:
        raise OciBuildError(f"{what} {cwd} cannot be made: {os_reason(err)}") from None
