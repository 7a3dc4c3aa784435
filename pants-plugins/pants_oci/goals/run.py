"""`pants run path/to:image [-- args]`: build the image and run it with podman, else docker.

podman runs the OCI layout as it is (`podman run oci:DIR`), a multi-platform index included
(it picks the machine's platform); docker gets the image as a docker-archive (`docker load`),
which holds one platform. Arguments after `--` replace the image's `cmd`, as with `docker
run IMAGE ARGS`. A terminal is passed through when there is one (`-t`), and stdin always
(`-i`). Which runtime is used is decided from the PATH pants runs with; with neither on it,
the error says what to install.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import AddPrefix, Digest
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from ocibuild.protocol.archive import DockerArchiveRequest
from pants_oci.subsystems.oci_tool import OcibuildResult, OcibuildRun
from pants_oci.target_types import OciImageBaseField
from pants_oci.util_rules.image import OciImage, OciImageRequest

_LAYOUT = "image"
_ARCHIVE = "image.tar"
# $1: the runtime, $2: the image; the rest: the arguments after `--`.
_RUN = """set -e
runtime="$1"; image="$2"; shift 2
tty=""; if [ -t 0 ] && [ -t 1 ]; then tty="-t"; fi
case "$image" in
  oci:*)
    # podman names an image pulled from a layout after the layout's path, which must be a
    # valid (lowercase) repository name: the sandbox's is not, so go through a link.
    link="/tmp/pants-oci-run-$$"; trap 'rm -f "$link"' EXIT
    layout="${image#oci:}"; ln -sfn "${layout%:*}" "$link"
    id="$("$runtime" pull --quiet "oci:$link:${layout##*:}")"; rm -f "$link"
    exec "$runtime" run --rm -i $tty "$id" "$@" ;;
  *)
    ref="$("$runtime" load --quiet --input "$image" | sed -n 's/^Loaded image: //p' | tail -1)"
    exec "$runtime" run --rm -i $tty "$ref" "$@" ;;
esac
"""

class OciRunError(Exception):
    """The image cannot be run here."""


@dataclass(frozen=True)
class OciImageRunFieldSet(RunFieldSet):
    required_fields = (OciImageBaseField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED

    base: OciImageBaseField


async def _runtime(path: str) -> str | None:
    for name in ("podman", "docker"):
        found = await Get(
            BinaryPaths, BinaryPathRequest(binary_name=name, search_path=path.split(":"))
        )
        if found.first_path is not None:
            return found.first_path.path
    return None


@rule(desc="Prepare to run an OCI image", level=LogLevel.DEBUG)
async def run_oci_image(field_set: OciImageRunFieldSet) -> RunRequest:
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["PATH"]))
    runtime = await _runtime(env.get("PATH") or "/usr/local/bin:/usr/bin:/bin")
    if runtime is None:
        raise OciRunError(
            f"`pants run {field_set.address}` runs the image with podman or docker, and "
            "neither is on the PATH. Install podman (`apt install podman`, `dnf install "
            "podman`, `brew install podman`) or docker, or use `pants package` and run the "
            "OCI layout in dist/ with any OCI runtime."
        )
    image = await Get(OciImage, OciImageRequest(field_set.address))
    if runtime.endswith("podman"):
        digest = await Get(Digest, AddPrefix(image.layout, _LAYOUT))
        target = f"oci:{{chroot}}/{_LAYOUT}:{image.tags[0]}"
    else:
        if image.is_index:
            raise OciRunError(
                f"{field_set.address} is a multi-platform image (`platforms`), and docker "
                "loads one platform at a time: run it with podman, or build it with `platform`."
            )
        archive = await Get(
            OcibuildResult,
            OcibuildRun(
                DockerArchiveRequest(
                    layout="layout",
                    out=f"out/{_ARCHIVE}",
                    ref_name=image.tags[0],
                    repo_tags=(f"{image.repository}:{image.tags[0]}",),
                ),
                await Get(Digest, AddPrefix(image.layout, "layout")),
                description=f"Writing the docker-archive of {field_set.address}",
                context=f"writing the docker-archive to run {field_set.address}",
            ),
        )
        digest = archive.output_digest
        target = f"{{chroot}}/{_ARCHIVE}"
    return RunRequest(digest=digest, args=("/bin/sh", "-c", _RUN, "pants-oci-run", runtime, target))


def rules():
    return (*collect_rules(), *OciImageRunFieldSet.rules())
