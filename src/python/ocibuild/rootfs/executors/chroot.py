"""Root in the pod (kaniko's model): chroot into the tree as real root, then become USER.

Owners, modes and devices are real, so nothing is faked or lost. /dev, /proc and /sys are
bound in a private mount namespace when the pod allows it (CAP_SYS_ADMIN); otherwise the
step sees the image's own, often empty, directories. RUN --mount and --network=none need that
namespace (and a network one): without them the step is not run.
"""

from __future__ import annotations

import os

from ocibuild.rootfs.executors import Step, _native
from ocibuild.rootfs.executors._spawn import spawn

NAME = "root"


def run(step: Step) -> int:
    uid, gid = step.user
    needed = bool(step.mounts) or step.network == "none"

    def enter() -> None:
        flags = _native.CLONE_NEWNS | (_native.CLONE_NEWNET if step.network == "none" else 0)
        try:
            _native.unshare(flags)
            _native.make_private("/")
        except OSError as err:
            if needed:
                _native.fail("RUN --mount and --network=none need a mount and network "
                             "namespace (CAP_SYS_ADMIN), refused here", err)
        else:
            _native.bind_host_mounts(step.root)
            try:
                if step.network == "none":
                    _native.loopback_up()
                _native.bind_step_mounts(step.root, step.mounts)
            except OSError as err:
                _native.fail("setting up the step's mounts or network", err)
        os.chroot(step.root)
        os.chdir(step.cwd)
        os.setgroups(list(step.groups))
        os.setgid(gid)
        os.setuid(uid)

    return spawn(step, step.argv, step.env, preexec=enter)
