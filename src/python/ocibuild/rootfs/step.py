"""Run one RUN step in a tree: choose the mechanism, fake ownership when not root, record
what the step made in the ledger."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional, Sequence, Tuple

from ocibuild.rootfs import cpus as step_cpus
from ocibuild.rootfs import stubs, workdir

from ocibuild.errors import OciBuildError
from ocibuild.rootfs.executors import Mount, Output, Step
from ocibuild.rootfs.fakeroot import Fakeroot, guest_can_load, host_library
from ocibuild.rootfs.ledger import Ledger
from ocibuild.rootfs.paths import RUN_DIR
from ocibuild.rootfs.pins import Pins
from ocibuild.rootfs.select import MECHANISMS, choose

# Docker's PATH for a RUN step whose image sets none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STATIC_LOST = ("chown and mknod by statically linked programs are not recorded "
               "(they keep the step's user as owner and stay regular files)")
PINS_SHORT = ("the open-file limit held only {held} of the tree's {inodes} inodes for the "
              "step (rootfs/pins.py): a file it makes may take the number of one it deletes, "
              "and with it that file's owner; raise the hard limit (ulimit -Hn)")
PROOT_READ_ONLY_LOST = ("read-only mounts are writable under proot (the writes go to a "
                        "throw-away copy, never to the tree nor to the mount's source)")


@dataclass(frozen=True)
class RunResult:
    mechanism: str  # "root", "userns" or "proot"
    exit_code: int
    ownership: str  # "real" (root), "fakeroot" (recorded by faked), "none" (not recorded)
    lost: Tuple[str, ...]  # what this mechanism could not record, in words for the build log
    cpus: Optional[str] = None  # the CPUs it ran on (`0-3,5`); None: wherever the build may

    def to_json(self) -> dict:
        return {"mechanism": self.mechanism, "exit_code": self.exit_code,
                "ownership": self.ownership, "lost": list(self.lost), "cpus": self.cpus}


def _check(root: str, argv: Sequence[str], cwd: str) -> None:
    if not argv:
        raise OciBuildError("RUN step: the command is empty; give a command, e.g. "
                            "RUN [\"/bin/sh\", \"-c\", \"true\"]")
    if not cwd.startswith("/"):
        raise OciBuildError(f"RUN step: working directory {cwd!r} must be absolute, e.g. /app")
    if "\0" in cwd:
        raise OciBuildError(f"RUN step: the working directory {cwd!r} holds a NUL byte, which "
                            "no directory's name can; fix the WORKDIR (or the base image's "
                            "WorkingDir)")
    if not os.path.isdir(root):
        raise OciBuildError(f"RUN step: the tree {root!r} does not exist; unpack the base first")


def _make_run_dir(run_dir: str) -> None:
    """Ours alone: an image's own /.ocibuild-run (a symlink to a host directory, say) is
    refused rather than written through."""
    try:
        os.mkdir(run_dir, 0o755)
    except FileExistsError:
        raise OciBuildError(f"the image has /{RUN_DIR}, a name RUN steps reserve for their "
                            "own files; remove it in the step that made it") from None


def _write_run_files(run_dir: str, files: Dict[str, Tuple[bytes, int]]) -> None:
    for name, (data, mode) in sorted(files.items()):
        path = os.path.join(run_dir, name)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)


def _pin(pid: int, cpus: FrozenSet[int]) -> None:
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError:
        pass  # faked gone already: finish() says so


def run(root: str, argv: Sequence[str], env: Dict[str, str], *, ledger: Ledger,
        cwd: str = "/", user: Tuple[int, int] = (0, 0), mechanism: Optional[str] = None,
        stdout: Output = None, stderr: Output = None,
        timeout: Optional[float] = None, mounts: Sequence[Mount] = (),
        network: str = "default", groups: Sequence[int] = (),
        run_files: Optional[Dict[str, Tuple[bytes, int]]] = None,
        cpus: Optional[FrozenSet[int]] = None) -> RunResult:
    """Run `argv` with exactly `env` (PATH defaulted as Docker does) in `root` as `user`.

    `mounts`: seen by this step only (a read-only one's source must be a throw-away copy:
    proot cannot enforce read-only). `network`: "none" cuts it (root and userns only).
    `groups`: supplementary groups (root only; reported lost elsewhere). `run_files`: name ->
    (bytes, mode), files the step sees in /.ocibuild-run, never layered. `cpus`: what the
    step runs on (default: one CPU under proot, see rootfs/cpus.py; else the build's own).

    A non-zero exit is a result, not an error: the caller names the Dockerfile line."""
    _check(root, argv, cwd)
    name = choose(mechanism)
    if network not in ("default", "host", "none"):
        raise OciBuildError(f"RUN network {network!r}: must be default, host or none")
    if network == "none" and name == "proot":
        raise OciBuildError(
            "RUN --network=none cannot be honoured by the RUN mechanism 'proot' (chosen "
            "because user namespaces are refused here): it has no network namespace to cut "
            "the step's network; run the build as root or where user namespaces are allowed, "
            "or drop --network=none")
    if name == "root" and not ledger.real:
        raise OciBuildError("RUN mechanism 'root' cannot use a tree unpacked without root "
                            "(its owners are in the ledger, not on disk); unpack it as root")
    if name != "root" and ledger.real:
        raise OciBuildError(f"RUN mechanism {name!r} cannot use a tree unpacked as root; "
                            "unpack it as the user that runs the steps")
    env = dict(env)
    env.setdefault("PATH", DEFAULT_PATH)
    work = tempfile.mkdtemp(prefix="ocibuild-run-")
    run_dir = os.path.join(root, RUN_DIR)
    fake, lost, preload, fresh, made_run_dir, made, pins = None, [], None, set(), False, [], None
    if groups and name != "root":
        lost.append(f"supplementary groups {','.join(map(str, groups))} are not given under "
                    f"{name} (only the user's own uid and gid are mapped)")
    if mounts and name == "proot" and any(m.readonly for m in mounts):
        lost.append(PROOT_READ_ONLY_LOST)
    on = step_cpus.for_step(name, cpus)
    try:
        workdir.ensure(root, cwd, ledger)
        mounts, made = stubs.make(root, mounts)
        if not ledger.real:
            pins = Pins(root)
            if not pins.complete:
                lost.append(PINS_SHORT.format(held=len(pins.held), inodes=pins.inodes))
        if name != "root":
            preload = host_library()
            if preload is None or not guest_can_load(root, preload):
                why = ("fakeroot is not installed" if preload is None
                       else "the image has no glibc as new as the host's libfakeroot needs")
                lost.append(f"chown and mknod are not recorded: {why}")
                preload = None
            else:
                fake = Fakeroot(root, ledger, work, user, pins.held)
                fake.start()
                if on is not None:  # faked answers every stat and chown of the step
                    _pin(fake.pid, on)
                env.update(fake.env())
                lost.append(STATIC_LOST)
                if name == "userns":
                    _make_run_dir(run_dir)
                    made_run_dir = True
                    shutil.copy(preload, os.path.join(run_dir, os.path.basename(preload)))
        if run_files:
            if not made_run_dir:
                _make_run_dir(run_dir)
                made_run_dir = True
            _write_run_files(run_dir, run_files)
        step = Step(root, list(argv), env, cwd, user, work, preload, stdout, stderr, timeout,
                    tuple(mounts), network, tuple(groups) if name == "root" else (), on)
        code = MECHANISMS[name].run(step)
    finally:
        try:
            if fake is not None:
                fresh = fake.finish()
        finally:
            if pins is not None:
                pins.release()
            if made_run_dir:
                shutil.rmtree(run_dir, ignore_errors=True)
            stubs.remove(root, made)
            shutil.rmtree(work, ignore_errors=True)
    ledger.adopt(root, user[0], user[1], fresh)
    ownership = "real" if name == "root" else ("fakeroot" if fake is not None else "none")
    return RunResult(name, code, ownership, tuple(lost),
                     None if on is None else step_cpus.spell(on))
