"""`pants debian-lock`: resolve each `debian_packages` target and write its lockfile.

Like `pants generate-lockfiles` for Python: the only step that reads the mirror's indexes.
A target may name several suites (`sources`), each read and verified on its own and
resolved together. Each InRelease's signature is checked with gpgv and the target's `keyring` (default: the Debian
archive keyring), and only the text gpgv verified is read; no keyring or no gpgv stops the
lock unless the target sets `allow_unsigned_index=True`. The lockfile records which. The
Packages indexes are checked against InRelease.
"""

from __future__ import annotations

import os
from typing import List, Optional

from ocibuild.debian import lock, lockfile
from ocibuild.debian.changes import diff
from ocibuild.debian.lock import Resolved, Suite
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import load_json
from pants.base.build_root import BuildRoot
from pants.engine.console import Console
from pants.engine.fs import CreateDigest, Digest, FileContent, Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.engine.target import Targets
from pants.option.global_options import NamedCachesDirOption
from pants.option.option_types import BoolOption
from pants.util.strutil import help_text

from pants_oci.subsystems.oci import OciSubsystem
from pants_oci.target_types import DebianAllowUnsignedIndexField, DebianPackagesTarget
from pants_oci.util_rules.debian_base import lock_request

INDEX_CACHE = "pants_oci/debian-indexes"


class DebianLockSubsystem(GoalSubsystem):
    name = "debian-lock"
    help = help_text(
        """
        Resolve the packages of each given `debian_packages` target against its suites and
        write its lockfile, e.g. `pants debian-lock //:python-base` or `pants debian-lock ::`,
        printing what changed (packages added, removed, upgraded or downgraded, per
        architecture). With `--check`, write nothing and fail when a suite has a newer version
        of a locked package (e.g. a pending security update).
        """
    )

    check = BoolOption(
        default=False,
        help=help_text(
            """
            Write nothing; exit 1 when any suite has a newer version of a locked package
            (listing each: architecture, package, locked and newer version, suite), or when a
            lockfile is missing or stale, and 0 when every lockfile is current. For CI:
            `pants debian-lock --check ::` fails once a security update is published.
            """
        ),
    )


class DebianLock(Goal):
    subsystem_cls = DebianLockSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


def read_suites(target: DebianPackagesTarget, cache_dir: str, build_root: str,
                oci: OciSubsystem) -> Resolved:
    """Every suite's verified InRelease and Packages indexes, merged per architecture."""
    # The lockfile names the keyring as the BUILD file does (relative to the build root),
    # so it does not change from one checkout to another.
    suites = [Suite(s["suite"], s["mirror"],
                    os.path.join(build_root, s["keyring"]) if s["keyring"] else None,
                    s["keyring"]) for s in target.debian_sources()]
    return lock.read_suites(lock_request(target), suites, cache_dir, oci.debian_mirror,
                            target[DebianAllowUnsignedIndexField].value)


def previous_lock(path: str) -> Optional[dict]:
    """The lockfile now at `path` (any version), for the report only; None if unreadable."""
    try:
        with open(path, "rb") as f:
            return load_json(f.read(), path, max_bytes=lockfile.MAX_BYTES)
    except (OSError, OciBuildError):
        return None


def check(target: DebianPackagesTarget, resolved: Resolved, build_root: str) -> List[str]:
    """Why the target's lockfile is not current: newer versions, or a missing or stale
    lockfile; empty when it is current."""
    path = target.lockfile_path()
    try:
        with open(os.path.join(build_root, path), "rb") as f:
            data: Optional[bytes] = f.read(lockfile.MAX_BYTES + 1)
    except FileNotFoundError:
        data = None
    return lock.check(data, resolved, path, f"pants debian-lock {target.address}")


@goal_rule
async def debian_lock(
    targets: Targets,
    console: Console,
    workspace: Workspace,
    named_caches: NamedCachesDirOption,
    build_root: BuildRoot,
    oci: OciSubsystem,
    subsystem: DebianLockSubsystem,
) -> DebianLock:
    chosen = [t for t in targets if isinstance(t, DebianPackagesTarget)]
    if not chosen:
        console.print_stderr("No debian_packages targets among the given addresses.")
        return DebianLock(exit_code=0)
    cache_dir = os.path.join(str(named_caches.val), INDEX_CACHE)
    written, outdated = [], 0
    for target in chosen:
        path = target.lockfile_path()
        try:
            resolved = read_suites(target, cache_dir, build_root.path, oci)
            if subsystem.check:
                problems = check(target, resolved, build_root.path)
                outdated += bool(problems)
                verdict = (f"{len(problems)} newer or out of date:" if problems
                           else "up to date")
                console.print_stdout(f"{target.address}: {path} is {verdict}")
                for line in problems:
                    console.print_stdout(f"  {line}")
                continue
            doc = resolved.document(str(target.address))
        except OciBuildError as err:
            console.print_stderr(f"{target.address}: {err}")
            return DebianLock(exit_code=1)
        written.append(FileContent(path, lockfile.dumps(doc)))
        console.print_stdout(f"{target.address}: wrote {path}: {lock.summary(doc)}")
        previous = previous_lock(os.path.join(build_root.path, path))
        changes = diff(previous, doc)
        console.print_stdout(f"  {'changes' if previous else 'new lockfile'}: "
                             f"{len(changes) if changes or not previous else 'none'}")
        for line in changes:
            console.print_stdout(f"  {line}")
    if written:
        workspace.write_digest(await Get(Digest, CreateDigest(written)))
    return DebianLock(exit_code=1 if outdated else 0)


def rules():
    return collect_rules()
