"""`pants oci-load path/to:image ...`: build images and load them into the local podman (or
docker, when podman is not on the PATH) under `repository:tag`, without running them: what
`docker build` leaves behind, for `podman run`, `docker compose` or a local kind cluster."""

from __future__ import annotations

from pants.engine.console import Console
from pants.engine.env_vars import CompleteEnvironmentVars
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import InteractiveProcess, InteractiveProcessResult
from pants.engine.rules import Effect, Get, MultiGet, collect_rules, goal_rule
from pants.engine.target import Targets

from pants_oci.target_types import OciImageTarget
from pants_oci.util_rules.local_runtime import LOAD, LocalImage, LocalImageRequest

_LOAD = LOAD + """set -e
load "$1" "$2" "$3"
echo "Loaded $3 into $(basename "$1")"
"""


class OciLoadSubsystem(GoalSubsystem):
    name = "oci-load"
    help = (
        "Build each given `oci_image` and load it into the local podman (or docker) as "
        "REPOSITORY:TAG, without running it, e.g. `pants oci-load //app:image`."
    )


class OciLoad(Goal):
    subsystem_cls = OciLoadSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def oci_load(targets: Targets, console: Console, env: CompleteEnvironmentVars) -> OciLoad:
    images = [t for t in targets if isinstance(t, OciImageTarget)]
    if not images:
        console.print_stderr("No oci_image targets among the given addresses: nothing to load.")
        return OciLoad(exit_code=0)
    local = await MultiGet(
        Get(LocalImage, LocalImageRequest(t.address, "oci-load")) for t in images
    )
    for image in local:
        process = InteractiveProcess(
            argv=("/bin/sh", "-c", _LOAD, "pants-oci-load",
                  image.runtime, image.image.replace("{chroot}", "."), image.name),
            input_digest=image.digest,
            # The runtime runs as the user's: their configuration, storage and credentials.
            env=dict(env),
            run_in_workspace=False,
        )
        result = await Effect(InteractiveProcessResult, InteractiveProcess, process)
        if result.exit_code != 0:
            return OciLoad(exit_code=result.exit_code)
    return OciLoad(exit_code=0)


def rules():
    return collect_rules()
