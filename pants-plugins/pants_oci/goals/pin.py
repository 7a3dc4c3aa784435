"""`pants oci-pin`: point each `oci_pull`'s `digest` at what its `image` tag names now.

Base images stay pinned in BUILD files (reviewable, reproducible); this goal is how a pin is
made or moved, like `pants generate-lockfiles` for Python requirements.
"""

from __future__ import annotations

from collections import defaultdict

from ocibuild.errors import OciBuildError
from ocibuild.reference import parse_reference
from ocibuild.registry import credentials
from ocibuild.registry.pull import fetch_manifest
from pants.base.build_root import BuildRoot
from pants.build_graph.address import BuildFileAddress, BuildFileAddressRequest
from pants.engine.console import Console
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import CreateDigest, Digest, DigestContents, FileContent, PathGlobs, Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule
from pants.engine.target import Targets

from pants_oci.goals.build_file_pin import PinError, pin_digest
from pants_oci.subsystems.oci import OciSubsystem
from pants_oci.target_types import OciPullDigestField, OciPullImageField, OciPullTarget
from pants_oci.util_rules.pulled_base import registry_client


class OciPinSubsystem(GoalSubsystem):
    name = "oci-pin"
    help = (
        "Resolve the tag of each given `oci_pull` to the digest it names now and write that "
        "digest into the BUILD file, e.g. `pants oci-pin //:python-base` or `pants oci-pin ::`."
    )


class OciPin(Goal):
    subsystem_cls = OciPinSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def oci_pin(
    targets: Targets, console: Console, workspace: Workspace, oci: OciSubsystem,
    build_root: BuildRoot,
) -> OciPin:
    pulls = [t for t in targets if isinstance(t, OciPullTarget)]
    if not pulls:
        console.print_stderr("No oci_pull targets among the given addresses: nothing to pin.")
        return OciPin(exit_code=0)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(credentials.ENV_VARS))
    build_files = await MultiGet(
        Get(BuildFileAddress, BuildFileAddressRequest(t.address, description_of_origin="oci-pin"))
        for t in pulls
    )
    by_file = defaultdict(list)
    for target, build_file in zip(pulls, build_files):
        image = target[OciPullImageField].value
        ref = parse_reference(image)
        try:
            transport = registry_client(ref, oci, env, build_root.path)
            digest = fetch_manifest(transport, ref, ref.tag or "latest").digest
        except OciBuildError as err:
            console.print_stderr(f"{target.address}: {err}")
            return OciPin(exit_code=1)
        by_file[build_file.rel_path].append((target, digest))

    contents = await Get(DigestContents, PathGlobs(sorted(by_file)))
    changed = []
    for file in contents:
        text = file.content.decode()
        for target, digest in by_file[file.path]:
            old = target[OciPullDigestField].value
            if old == digest:
                console.print_stdout(f"{target.address}: already pinned to {digest}")
                continue
            directory = target.address.spec_path.rsplit("/", 1)[-1] or build_root.pathlib_path.name
            try:
                text = pin_digest(text, target.address.target_name, directory, digest, file.path)
            except PinError as err:
                console.print_stderr(str(err))
                return OciPin(exit_code=1)
            image = target[OciPullImageField].value
            console.print_stdout(f"{target.address}: {image} -> {digest}"
                                 + (f" (was {old})" if old else ""))
        if text != file.content.decode():
            changed.append(FileContent(file.path, text.encode(), is_executable=file.is_executable))
    if changed:
        workspace.write_digest(await Get(Digest, CreateDigest(changed)))
    return OciPin(exit_code=0)


def rules():
    return collect_rules()
