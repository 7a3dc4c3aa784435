"""Run RUN steps the way a locked-down pod would: `/usr/bin/python3 rootfs_pod.py SPEC.json`.

Started by the rootfs tests as an unprivileged user (setpriv), it first installs, when the
spec asks, a seccomp filter refusing what the default profile of docker and containerd
refuses a non-root container: user namespaces (unshare, clone with CLONE_NEWUSER, clone3
answered ENOSYS so libc falls back to clone), mount, umount, pivot_root and setns; ptrace
stays allowed, as there. python3-seccomp is the system python's (Debian), hence the system
interpreter. Then it unpacks the base, runs each step, diffs each step's layer, and prints
one JSON line: each step's RunResult and layer descriptor.
"""

import errno
import json
import os
import sys


def lock_down() -> None:
    import seccomp  # pants: no-infer-dep (Debian's python3-seccomp, the system Python's)

    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    # As Docker's profile, the 32-bit ABIs too: libseccomp kills (SIGSYS) any other ABI's
    # call by default, and proot makes such calls where Docker's profile lets them through.
    if os.uname().machine == "x86_64":
        for arch in (seccomp.Arch.X86, seccomp.Arch.X32):
            f.add_arch(arch)
    for name in ("unshare", "mount", "umount2", "pivot_root", "setns"):
        f.add_rule(seccomp.ERRNO(errno.EPERM), name)
    f.add_rule(seccomp.ERRNO(errno.EPERM), "clone",
               seccomp.Arg(0, seccomp.MASKED_EQ, 0x10000000, 0x10000000))
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    f.load()


def main() -> None:
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    sys.path.insert(0, spec["source_root"])
    if spec.get("seccomp"):
        lock_down()
    from ocibuild.errors import OciBuildError
    from ocibuild.rootfs import diff_layer, run, snapshot, unpack
    from ocibuild.rootfs.executors import Mount

    out = {"euid": os.geteuid(), "steps": []}
    try:
        ledger = unpack([tuple(layer) for layer in spec["layers"]], spec["root"])
        for step in spec["steps"]:
            before = snapshot(spec["root"], ledger)
            with open(os.path.join(spec["out"], f"step{len(out['steps'])}.log"), "wb") as log:
                result = run(spec["root"], step["argv"], step.get("env", {}), ledger=ledger,
                             cwd=step.get("cwd", "/"), user=tuple(step.get("user", (0, 0))),
                             mechanism=spec.get("mechanism"), stdout=log, stderr=log,
                             timeout=step.get("timeout", 300),
                             mounts=[Mount(*m) for m in step.get("mounts", [])],
                             network=step.get("network", "default"),
                             groups=step.get("groups", []),
                             cpus=frozenset(step["cpus"]) if "cpus" in step else None)
            blob = diff_layer(before, spec["root"], ledger, spec["out"], compression="gzip",
                              engine="zlib", source_date_epoch=spec.get("epoch", 0))
            out["steps"].append({"result": result.to_json(), "layer": blob.to_json()})
    except OciBuildError as err:
        out["error"] = str(err)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
