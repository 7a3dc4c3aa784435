"""RUN in a Dockerfile stage: a real tree per stage (ocibuild.rootfs), the step run in it,
its changes made into the stage's next layer.

Each stage keeps one tree (`StageRoot`): made by unpacking the stage's layers the first time
a RUN needs it, then brought up to date by applying only the layers added since (COPY, ADD,
WORKDIR); a RUN's own changes are already in it. The step's argv, environment, working
directory and user are the builder's (SHELL + command for the shell form, the stage's ENV over
its ARGs in scope, HOME from /etc/passwd when unset as runc sets it, WORKDIR, USER through
the tree's /etc/passwd and /etc/group).

Flags: `--network=default` (the host's network, as docker's default bridge gives the step
one); `--network=none|host`, `--security=insecure` and `--mount` are refused with the line:
this builder cannot isolate the network of a step nor mount anything into it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ocibuild import rootfs
from ocibuild.errors import OciBuildError
from ocibuild.layer.builder import build_layer
from ocibuild.rootfs.diff import layer_entries
from ocibuild.rootfs.users import home_of
from ocibuild.untrusted import shown


@dataclass
class StageRoot:
    """A stage's tree on disk, with the ledger of what the disk cannot hold, and how many of
    the stage's layers it has."""

    path: str
    ledger: rootfs.Ledger
    applied: int


def check_flags(opts: Dict[str, Optional[str]], at: str) -> None:
    if "mount" in opts:
        raise OciBuildError(f"{at}: RUN --mount is not supported (no cache, secret or bind "
                            "mounts); COPY what the step needs into the stage first")
    network = opts.get("network", "default")
    if network != "default":
        raise OciBuildError(f"{at}: RUN --network={shown(network or '')} is not supported: "
                            "this builder cannot isolate a step's network; only "
                            "--network=default (the host's network) is")
    security = opts.get("security", "sandbox")
    if security != "sandbox":
        raise OciBuildError(f"{at}: RUN --security={shown(security or '')} is not supported; "
                            "only --security=sandbox")


def step_env(args: Dict[str, str], env: Sequence[str], build_args: Dict[str, str],
             proxies: Sequence[str]) -> Dict[str, str]:
    """What docker gives a step: its ARGs in scope, the proxy build args (which need no ARG),
    then the config's Env (ENV wins over an ARG of the same name)."""
    out = {k: build_args[k] for k in proxies if k in build_args}
    out.update(args)
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def created_by(argv: Sequence[str], args: Dict[str, str], env: Dict[str, str]) -> str:
    """BuildKit's history text: `RUN |N A=1 B=2 /bin/sh -c cmd` (the ARGs in scope, each
    with the value the step saw), `RUN /bin/sh -c cmd` without any."""
    pairs = [f"{k}={env.get(k, v)}" for k, v in args.items()]
    prefix = [f"|{len(pairs)}", *pairs] if pairs else []
    return "RUN " + " ".join([*prefix, *argv])


def ensure_root(current: Optional[StageRoot], blob_paths: List[Tuple[str, str]],
                work: str) -> StageRoot:
    """The stage's tree with all of `blob_paths` ((path, media type), lowest first)."""
    if current is None:
        os.makedirs(os.path.dirname(work), exist_ok=True)
        current = StageRoot(work, rootfs.unpack([], work), 0)
    if len(blob_paths) > current.applied:
        rootfs.unpack(blob_paths[current.applied:], current.path, current.ledger)
        current.applied = len(blob_paths)
    return current


# What one step's layer may hold: a step's `truncate -s 1T /big` (a sparse file, no disk in
# the tree) is a terabyte of zeros to read, compress and hash.
MAX_STEP_BYTES = 64 << 30


def _bounded(entries: list, at: str) -> None:
    total = sum(e.size or 0 for e in entries if e.kind == "file")
    if total > MAX_STEP_BYTES:
        biggest = max((e for e in entries if e.kind == "file"), key=lambda e: e.size or 0)
        raise OciBuildError(f"{at}: the step left {total} bytes of files to put in its layer, "
                            f"over the {MAX_STEP_BYTES}-byte bound (the largest: "
                            f"/{biggest.path}, {biggest.size} bytes); delete what the image "
                            "does not need in the same step")


@dataclass(frozen=True)
class StepDone:
    result: rootfs.RunResult
    layer: Optional[object]  # LayerBlob, or None when the step changed nothing


def run_step(root: StageRoot, argv: List[str], env: Dict[str, str], cwd: str, user: str,
             out_dir: str, compression: str, epoch: int, at: str) -> StepDone:
    """`user`: the stage's USER; "" (none set) is 0:0 without a look-up, as docker has it (an
    image without /etc/passwd runs its steps as root)."""
    try:
        ids = rootfs.resolve_user(root.path, user) if user else (0, 0)
    except OciBuildError as err:
        raise OciBuildError(f"{at}: {err}") from None
    if "HOME" not in env:
        env = {**env, "HOME": home_of(root.path, ids[0])}
    before = rootfs.snapshot(root.path, root.ledger)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # The step's output goes to the build's stderr: stdout is the build's result.
        result = rootfs.run(root.path, argv, env, ledger=root.ledger, cwd=cwd, user=ids,
                            stdout=2, stderr=2)
    except OciBuildError as err:
        raise OciBuildError(f"{at}: {err}") from None
    if result.exit_code != 0:
        raise OciBuildError(f"{at}: the command {shown(' '.join(argv))} failed with exit "
                            f"code {result.exit_code} (its output is above, on stderr)")
    after = rootfs.snapshot(root.path, root.ledger)
    entries = layer_entries(before, after, root.path, epoch)
    if not entries:
        return StepDone(result, None)
    _bounded(entries, at)
    blob = build_layer(entries, out_dir, compression=compression, mtime=epoch, whiteouts=True)
    return StepDone(result, blob)


def report(at: str, result: rootfs.RunResult) -> dict:
    """One line on stderr per step, and the step's entry in the build's JSON result."""
    lost = "; ".join(result.lost)
    print(f"ocibuild: {at}: ran with mechanism {result.mechanism} (ownership "
          f"{result.ownership})" + (f"; lost: {lost}" if lost else ""), file=sys.stderr)
    return {"at": at, **result.to_json()}
