"""A user namespace of our own: the build user is root in it (or USER's uid), chroot works.

The fast path where the kernel and the container's seccomp profile allow unprivileged user
namespaces: no ptrace, native speed. Only the build user's own id is mapped, so a chown to
another id is refused by the kernel (EINVAL) unless fakeroot answers it first (dynamically
linked programs), and supplementary groups cannot be given (setgroups is denied, as it must
be for an unprivileged map). Set up in the child between fork and exec, so no host program
runs with the image's LD_PRELOAD. RUN --mount binds in the step's mount namespace (read-only
enforced); --network=none is a network namespace of its own, loopback only.
"""

from __future__ import annotations

import os

from ocibuild.rootfs.executors import Step, _native
from ocibuild.rootfs.executors._spawn import spawn
from ocibuild.rootfs.paths import RUN_DIR

NAME = "userns"


def run(step: Step) -> int:
    outer_uid, outer_gid = os.getuid(), os.getgid()
    uid, gid = step.user
    env = dict(step.env)
    if step.preload:
        env["LD_PRELOAD"] = f"/{RUN_DIR}/{os.path.basename(step.preload)}"

    def enter() -> None:
        net = _native.CLONE_NEWNET if step.network == "none" else 0
        _native.unshare(_native.CLONE_NEWUSER | _native.CLONE_NEWNS | net)
        _native.write("/proc/self/setgroups", "deny")
        _native.write("/proc/self/uid_map", f"{uid} {outer_uid} 1")
        _native.write("/proc/self/gid_map", f"{gid} {outer_gid} 1")
        _native.make_private("/")
        _native.bind_host_mounts(step.root)
        try:
            if net:
                _native.loopback_up()
            _native.bind_step_mounts(step.root, step.mounts)
        except OSError as err:
            _native.fail("setting up the step's mounts or network", err)
        os.chroot(step.root)
        os.chdir(step.cwd)

    return spawn(step, step.argv, env, preexec=enter)


def probe() -> bool:
    """Can this process make a user and a mount namespace and map itself into it?"""
    import subprocess
    import sys

    code = ("import os; from ocibuild.rootfs.executors import _native as n\n"
            "n.unshare(n.CLONE_NEWUSER | n.CLONE_NEWNS)\n"
            "n.write('/proc/self/setgroups', 'deny')\n"
            "n.write('/proc/self/uid_map', f'0 {os.getuid()} 1')\n"
            "os.chroot('/')\n")
    source_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    env = {"PYTHONPATH": source_root, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    try:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
