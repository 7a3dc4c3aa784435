"""proot: paths confined by ptrace, the mechanism left when user namespaces and mounts are
refused (the default seccomp profile of docker and containerd allows ptrace).

`-0` (or `-i uid:gid` for USER) makes the command see that identity and turns the refused
chown of a static binary into a silent success (so lost). Owners, modes and devices of
dynamically linked programs go to fakeroot (fakeroot.py).

LD_PRELOAD must reach the command but not proot, a host program: the variable names a path
in our work directory that on the host is a symlink to the host's own libc (preloading libc
into proot changes nothing) and in the guest is bound, by proot, to libfakeroot.

RUN --mount is `-b source:target`. proot cannot make a binding read-only: step.py gives it
only throw-away copies, so a write lands in the copy and never in the tree or the source.
proot gives no network namespace and no supplementary groups (step.py refuses
--network=none here and reports the groups as lost).
"""

from __future__ import annotations

import os
import shutil

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.executors import Step
from ocibuild.rootfs.executors._spawn import spawn

NAME = "proot"


def host_libc() -> str:
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if os.path.basename(path).startswith("libc.so") or \
                    os.path.basename(path).startswith("libc-2."):
                return path
    raise OciBuildError("cannot find the host's libc to run proot with fakeroot")


def run(step: Step) -> int:
    proot = shutil.which("proot")
    if proot is None:
        raise OciBuildError("proot is not installed; install it (Debian: apt-get install "
                            "proot) to run RUN steps without root or user namespaces")
    uid, gid = step.user
    argv = [proot, "-r", step.root, "-w", step.cwd]
    argv += ["-0"] if (uid, gid) == (0, 0) else ["-i", f"{uid}:{gid}"]
    for name in ("dev", "proc", "sys"):
        target = os.path.join(step.root, name)
        if os.path.isdir(target) and not os.path.islink(target):
            argv += ["-b", "/" + name]
    for m in step.mounts:
        if ":" in m.source or ":" in m.target:  # proot's -b splits host:guest at a colon
            raise OciBuildError(f"RUN --mount target {m.target}: a path holding ':' cannot be "
                                "given to proot's -b; choose another target")
        argv += ["-b", f"{m.source}:{m.target}"]
    env = dict(step.env)
    if step.preload:
        stub = os.path.join(step.work, "preload", os.path.basename(step.preload))
        os.makedirs(os.path.dirname(stub), exist_ok=True)
        os.symlink(host_libc(), stub)
        argv += ["-b", f"{step.preload}:{stub}"]
        env["LD_PRELOAD"] = stub
    # proot's own temporary files, away from the shared /tmp.
    env["PROOT_TMP_DIR"] = step.work
    return spawn(step, argv + list(step.argv), env, traced=True)
