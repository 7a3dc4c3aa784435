"""`pants run path/to:image [-- args]`: build the image and run it with podman, else docker
(`util_rules/local_runtime.py` says which and how the image gets there).

Arguments after `--` replace the image's `cmd`, as with `docker run IMAGE ARGS`. A terminal is
passed through when there is one (`-t`), and stdin always (`-i`). The image is also left in
the runtime under its repository and first tag, as `pants oci-load` leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from pants_oci.target_types import OciImageBaseField
from pants_oci.util_rules.local_runtime import LOAD, LocalImage, LocalImageRequest

# $1: the runtime, $2: the image, $3: its name; the rest: the arguments after `--`.
_RUN = LOAD + """set -e
load "$1" "$2" "$3"; shift 3
tty=""; if [ -t 0 ] && [ -t 1 ]; then tty="-t"; fi
exec "$runtime" run --rm -i $tty "$id" "$@"
"""


@dataclass(frozen=True)
class OciImageRunFieldSet(RunFieldSet):
    required_fields = (OciImageBaseField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED

    base: OciImageBaseField


@rule(desc="Prepare to run an OCI image", level=LogLevel.DEBUG)
async def run_oci_image(field_set: OciImageRunFieldSet) -> RunRequest:
    image = await Get(LocalImage, LocalImageRequest(field_set.address, "run"))
    return RunRequest(
        digest=image.digest,
        args=("/bin/sh", "-c", _RUN, "pants-oci-run", image.runtime, image.image, image.name),
    )


def rules():
    return (*collect_rules(), *OciImageRunFieldSet.rules())
