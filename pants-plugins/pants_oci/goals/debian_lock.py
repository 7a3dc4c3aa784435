"""`pants debian-lock`: resolve each `debian_packages` target and write its lockfile.

Like `pants generate-lockfiles` for Python: the only step that reads the mirror's indexes.
InRelease's signature is checked with gpgv and the target's `keyring` (default: the Debian
archive keyring), and only the text gpgv verified is read; no keyring or no gpgv stops the
lock unless the target sets `allow_unsigned_index=True`. The lockfile records which. The
Packages indexes are checked against InRelease.
"""

from __future__ import annotations

import os

from ocibuild.debian import lockfile
from ocibuild.debian.repository import Mirror
from ocibuild.debian.resolve import resolve
from ocibuild.errors import OciBuildError
from pants.base.build_root import BuildRoot
from pants.engine.console import Console
from pants.engine.fs import CreateDigest, Digest, FileContent, Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.engine.target import Targets
from pants.option.global_options import NamedCachesDirOption

from pants_oci.subsystems.oci import OciSubsystem
from pants_oci.target_types import DebianAllowUnsignedIndexField, DebianPackagesTarget
from pants_oci.util_rules.debian_base import lock_request

INDEX_CACHE = "pants_oci/debian-indexes"


class DebianLockSubsystem(GoalSubsystem):
    name = "debian-lock"
    help = (
        "Resolve the packages of each given `debian_packages` target against its suite and "
        "write its lockfile, e.g. `pants debian-lock //:python-base` or `pants debian-lock ::`."
    )


class DebianLock(Goal):
    subsystem_cls = DebianLockSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


def lock(target: DebianPackagesTarget, cache_dir: str, build_root: str, oci: OciSubsystem
         ) -> tuple[bytes, str]:
    request = lock_request(target)
    keyring = target.keyring_path()
    # The lockfile names the keyring as the BUILD file does (relative to the build root),
    # so it does not change from one checkout to another.
    mirror = Mirror(oci.debian_mirror(request["mirror"]), request["suite"], cache_dir,
                    os.path.join(build_root, keyring) if keyring else None,
                    allow_unsigned=target[DebianAllowUnsignedIndexField].value,
                    keyring_name=keyring)
    release = mirror.release()
    resolved = {}
    for arch in request["architectures"]:
        index = mirror.index(release, request["components"], arch)
        resolved[arch] = resolve(index, request["packages"], f"{target.address} ({arch})")
    summary = ", ".join(
        f"{len(pkgs)} packages for {arch} ({sum(p.size for p in pkgs) / 1e6:.1f} MB)"
        for arch, pkgs in resolved.items()
    )
    doc = lockfile.document(request, release.signature, resolved)
    return lockfile.dumps(doc), f"{summary}; InRelease signature {release.signature}"


@goal_rule
async def debian_lock(
    targets: Targets,
    console: Console,
    workspace: Workspace,
    named_caches: NamedCachesDirOption,
    build_root: BuildRoot,
    oci: OciSubsystem,
) -> DebianLock:
    chosen = [t for t in targets if isinstance(t, DebianPackagesTarget)]
    if not chosen:
        console.print_stderr("No debian_packages targets among the given addresses.")
        return DebianLock(exit_code=0)
    cache_dir = os.path.join(str(named_caches.val), INDEX_CACHE)
    written = []
    for target in chosen:
        try:
            content, summary = lock(target, cache_dir, build_root.path, oci)
        except OciBuildError as err:
            console.print_stderr(f"{target.address}: {err}")
            return DebianLock(exit_code=1)
        path = target.lockfile_path()
        written.append(FileContent(path, content))
        console.print_stdout(f"{target.address}: wrote {path}: {summary}")
    workspace.write_digest(await Get(Digest, CreateDigest(written)))
    return DebianLock(exit_code=0)


def rules():
    return collect_rules()
