"""Which mechanism runs RUN steps here, chosen once per process, fastest first:

* "root": the build runs as root (kaniko's model, or a privileged CI job): chroot, real
  owners and devices, nothing faked;
* "userns": unprivileged user namespaces work (a laptop, an unconfined pod): native speed,
  ownership through fakeroot;
* "proot": user namespaces and mounts refused (the default seccomp profile of docker and
  containerd for a non-root pod) but ptrace allowed: ptrace-confined paths, ownership
  through fakeroot.
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.executors import chroot, proot, userns

MECHANISMS = {m.NAME: m for m in (chroot, userns, proot)}
_probed: Optional[str] = None


def choose(requested: Optional[str] = None) -> str:
    global _probed
    if requested is not None:
        if requested not in MECHANISMS:
            raise OciBuildError(f"RUN mechanism {requested!r}: must be one of "
                                f"{', '.join(sorted(MECHANISMS))}, or unset to choose the "
                                "fastest that works here")
        if requested == chroot.NAME and os.geteuid() != 0:
            raise OciBuildError("RUN mechanism 'root' needs the build to run as root; unset it "
                                "to use userns or proot")
        return requested
    if _probed is None:
        if os.geteuid() == 0:
            _probed = chroot.NAME
        elif userns.probe():
            _probed = userns.NAME
        elif shutil.which("proot"):
            _probed = proot.NAME
        else:
            raise OciBuildError(
                "no way to run RUN steps here: not root, user namespaces are refused, and "
                "proot is not installed; install proot (Debian: apt-get install proot "
                "fakeroot) or run the build as root")
    return _probed
