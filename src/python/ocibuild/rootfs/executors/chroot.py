"""Root in the pod (kaniko's model): chroot into the tree as real root, then become USER.

Owners, modes and devices are real, so nothing is faked or lost. /dev, /proc and /sys are
bound in a private mount namespace when the pod allows it (CAP_SYS_ADMIN); otherwise the
step sees the image's own, often empty, directories.
"""

from __future__ import annotations

import os

from ocibuild.rootfs.executors import Step, _native
from ocibuild.rootfs.executors._spawn import spawn

NAME = "root"


def run(step: Step) -> int:
    uid, gid = step.user

    def enter() -> None:
        try:
            _native.unshare(_native.CLONE_NEWNS)
            _native.make_private("/")
            _native.bind_host_mounts(step.root)
        except OSError:
            pass  # no mount namespace here: run without the host's /dev and /proc
        os.chroot(step.root)
        os.chdir(step.cwd)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return spawn(step, step.argv, step.env, preexec=enter)
