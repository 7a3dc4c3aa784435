"""RUN in a Dockerfile stage: a real tree per stage (ocibuild.rootfs), the step run in it,
its changes made into the stage's next layer.

Each stage keeps one tree (`StageRoot`): made by unpacking the stage's layers the first time
a RUN needs it, then brought up to date by applying only the layers added since (COPY, ADD,
WORKDIR); a RUN's own changes are already in it. The step's argv, environment, working
directory and user are the builder's (SHELL + command for the shell form, the stage's ENV over
its ARGs in scope, HOME from /etc/passwd when unset as runc sets it, WORKDIR, USER through
the tree's /etc/passwd and /etc/group).

Flags: `--network=default` and `--network=host` (the host's network: the build's own network
namespace, which is what a step's default network is here); `--network=none` (a network
namespace of its own, loopback only, under the root and userns mechanisms; refused under
proot, which has none); `--mount` (ocibuild.dockerfile.mounts); `--security=insecure` is
refused: steps never get more privilege than the build has.

Heredocs, as BuildKit's dispatchRun: when the command is one heredoc (`RUN <<EOF`), its
content is the script the shell runs (`/bin/sh -c CONTENT`), or, starting with `#!`, a file
run by its interpreter; otherwise (`RUN <<EOF bash`, `RUN python3 <<EOF`, several heredocs)
the line and its heredocs are given to the shell whole, which feeds them to the command
(expansion, `<<-` and quoted delimiters are then the shell's own). The frontend expands
nothing in either case.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from contextlib import ExitStack
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from ocibuild import rootfs
from ocibuild.errors import OciBuildError
from ocibuild.dockerfile import mounts as run_mounts
from ocibuild.dockerfile.parser import _HEREDOC, Node
from ocibuild.layer.builder import build_layer
from ocibuild.layer.entries import LayerEntry
from ocibuild.rootfs.diff import layer_entries
from ocibuild.rootfs.paths import RUN_DIR, remove_tree
from ocibuild.rootfs.unpack_ahead import UnpackAhead
from ocibuild.rootfs.users import home_of
from ocibuild.untrusted import shown


@dataclass
class StageRoot:
    """A stage's tree on disk, with the ledger of what the disk cannot hold, and how many of
    the stage's layers it has."""

    path: str
    ledger: rootfs.Ledger
    applied: int


NETWORKS = ("default", "none", "host")
# BuildKit's: a one-heredoc script starting with #! is a file here, run by its interpreter.
PIPES = "/dev/pipes/"


def check_flags(opts: Dict[str, Optional[str]], at: str) -> None:
    network = opts.get("network", "default")
    if network not in NETWORKS:
        raise OciBuildError(f"{at}: RUN --network={shown(network or '')} is not one of "
                            f"{', '.join(NETWORKS)}")
    security = opts.get("security", "sandbox")
    if security != "sandbox":
        raise OciBuildError(f"{at}: RUN --security={shown(security or '')} is not supported: "
                            "a step never gets more privilege than the build; only "
                            "--security=sandbox")


def check_heredocs(node: Node, at: str) -> None:
    if node.heredocs and node.json:
        raise OciBuildError(f"{at}: a heredoc needs the shell form of RUN, not a JSON array")
    if node.heredocs and is_single_heredoc(node.args[0]) and \
            _is_script(node.heredocs[0]) and \
            ("/" in node.heredocs[0].name or node.heredocs[0].name in (".", "..")):
        raise OciBuildError(f"{at}: the heredoc name {shown(node.heredocs[0].name)} names the "
                            "script's file: it cannot hold '/'")


def is_single_heredoc(text: str) -> bool:
    """BuildKit's MustParseHeredoc on the whole command: it is one word `<<NAME`."""
    from ocibuild.dockerfile.shell import split_raw

    match = _HEREDOC.match(text)
    return bool(match and match.group(3) and
                len(split_raw(match.group(3), keep_quotes=False)) == 1)


def _is_script(doc) -> bool:
    """BuildKit looks at the heredoc as written: `<<-` with a tab before `#!` is no script."""
    return (doc.raw or doc.content).startswith("#!")


@dataclass(frozen=True)
class Command:
    argv: List[str]  # what runs
    shown: List[str]  # what history records: BuildKit's args
    files: Dict[str, Tuple[bytes, int]]  # files in /.ocibuild-run the step needs


def command(node: Node, shell_argv: Sequence[str]) -> Command:
    """`shell_argv`: SHELL + the command line (the builder's shell form). See the module doc."""
    if not node.heredocs:
        return Command(list(shell_argv), list(shell_argv), {})
    prefix = list(shell_argv[:-1])
    first = node.heredocs[0]
    if is_single_heredoc(node.args[0]):
        if _is_script(first):
            shown_path = PIPES + first.name
            real = f"/{RUN_DIR}/pipes/{first.name}"
            return Command(prefix + [real], prefix + [shown_path],
                           {f"pipes/{first.name}": (first.content.encode(), 0o755)})
        return Command(prefix + [first.content], prefix + [first.content], {})
    full = node.args[0]
    for doc in node.heredocs:
        full += "\n" + (doc.raw or doc.content) + doc.name
    return Command(prefix + [full], prefix + [full], {})


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
                work: str, ahead: Optional[UnpackAhead] = None) -> StageRoot:
    """The stage's tree with all of `blob_paths` ((path, media type), lowest first); `ahead`:
    its first layers being unpacked already, taken when they are these."""
    if current is None and ahead is not None:
        ledger = ahead.take(blob_paths[:len(ahead.layers)])
        if ledger is not None:
            current = StageRoot(ahead.root, ledger, len(ahead.layers))
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
    entries: Sequence[LayerEntry] = ()  # what the layer holds, in its order

@dataclass(frozen=True)
class StepOptions:
    """What RUN's flags and the build's options ask of one step."""

    mounts: Tuple[run_mounts.MountSpec, ...] = ()
    network: str = "default"
    timeout: Optional[float] = None
    files: Tuple[Tuple[str, Tuple[bytes, int]], ...] = ()
    cpus: Optional[FrozenSet[int]] = None


def run_step(root: StageRoot, argv: List[str], env: Dict[str, str], cwd: str, user: str,
             out_dir: str, compression: str, epoch: int, at: str,
             options: StepOptions = StepOptions(),
             sources: Optional[run_mounts.Sources] = None, work: str = "") -> StepDone:
    """`user`: the stage's USER; "" (none set) is 0:0 without a look-up, as docker has it (an
    image without /etc/passwd runs its steps as root), with no supplementary groups (as
    BuildKit); a user gets its /etc/group memberships (rootfs.supplementary_groups)."""
    try:
        ids = rootfs.resolve_user(root.path, user) if user else (0, 0)
        groups = rootfs.supplementary_groups(root.path, user) if user else ()
    except OciBuildError as err:
        raise OciBuildError(f"{at}: {err}") from None
    if "HOME" not in env:
        env = {**env, "HOME": home_of(root.path, ids[0])}
    before = rootfs.snapshot(root.path, root.ledger)
    sys.stdout.flush()
    sys.stderr.flush()
    mount_work = os.path.join(work or os.path.dirname(root.path), "mounts")
    try:
        with ExitStack() as stack:
            os.makedirs(mount_work, mode=0o700, exist_ok=True)
            stack.callback(remove_tree, mount_work)  # a read-only copy's too
            mounts = run_mounts.prepare(options.mounts, sources, mount_work, stack, at) \
                if options.mounts and sources is not None else []
            # The step's output goes to the build's stderr: stdout is the build's result.
            result = rootfs.run(root.path, argv, env, ledger=root.ledger, cwd=cwd, user=ids,
                                stdout=2, stderr=2, timeout=options.timeout, mounts=mounts,
                                network=options.network, groups=groups,
                                run_files=dict(options.files), cpus=options.cpus)
    except OciBuildError as err:
        text = str(err)
        raise OciBuildError(text if text.startswith(at) else f"{at}: {text}") from None
    if result.exit_code != 0:
        raise OciBuildError(f"{at}: the command {shown(' '.join(argv))} failed with exit "
                            f"code {result.exit_code} (its output is above, on stderr)")
    after = rootfs.snapshot(root.path, root.ledger, before=False)
    entries = layer_entries(before, after, root.path, epoch)
    if not entries:
        return StepDone(result, None)
    _bounded(entries, at)
    blob = build_layer(entries, out_dir, compression=compression, mtime=epoch, whiteouts=True)
    return StepDone(result, blob, entries)


def report(at: str, result: rootfs.RunResult) -> dict:
    """One line on stderr per step, and the step's entry in the build's JSON result."""
    lost = "; ".join(result.lost)
    cpus = f", on CPU {result.cpus}" if result.cpus else ""
    print(f"ocibuild: {at}: ran with mechanism {result.mechanism} (ownership "
          f"{result.ownership}{cpus})" + (f"; lost: {lost}" if lost else ""), file=sys.stderr)
    return {"at": at, **result.to_json()}
