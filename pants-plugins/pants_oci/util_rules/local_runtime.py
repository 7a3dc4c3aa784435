"""The container runtime on this machine (podman, else docker), and an image in the form it
loads: podman takes the OCI layout as it is (`podman pull oci:DIR`, a multi-platform index
included: it picks the machine's platform); docker takes a docker-archive (`docker load`),
which holds one platform. Used by `pants run` and `pants oci-load`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths
from pants.engine.addresses import Address
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import AddPrefix, Digest
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from ocibuild.errors import EscapedError
from ocibuild.protocol.archive import DockerArchiveRequest
from pants_oci.subsystems.oci_tool import OcibuildResult, OcibuildRun
from pants_oci.util_rules.image import OciImage, OciImageRequest

_LAYOUT = "image"
_ARCHIVE = "image.tar"
# A shell function `load RUNTIME IMAGE NAME` that loads IMAGE (oci:DIR:TAG or a docker-archive
# file) into RUNTIME, tags it NAME, and sets $id to what `run` takes.
LOAD = """load() {
  runtime="$1"; image="$2"; name="$3"
  case "$image" in
    oci:*)
      # podman names an image pulled from a layout after the layout's path, which must be a
      # valid (lowercase) repository name: the sandbox's is not, so go through a link in a
      # new private directory (mkdir fails if the name exists: nobody can plant a layout).
      private="/tmp/pants-oci-$$-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
      mkdir -m 700 "$private"; trap 'rm -rf "$private"' EXIT
      layout="${image#oci:}"; dir="${layout%:*}"
      case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
      ln -s "$dir" "$private/image"
      id="$("$runtime" pull --quiet "oci:$private/image:${layout##*:}")"; rm -rf "$private"
      "$runtime" tag "$id" "$name" ;;
    *)
      "$runtime" load --quiet --input "$image" >/dev/null
      id="$name" ;;
  esac
}
"""


class OciRuntimeError(EscapedError):
    """No runtime here, or one that cannot take the image."""


@dataclass(frozen=True)
class LocalImageRequest:
    address: Address
    goal: str  # "run" or "oci-load", for messages


@dataclass(frozen=True)
class LocalImage:
    """The image as the runtime takes it: `digest` holds it, `image` names it for `load`
    (with `{chroot}` for the directory the digest is materialized in), `name` is the
    repository:tag it gets."""

    runtime: str
    digest: Digest
    image: str
    name: str


async def _runtime(path: str) -> str | None:
    for name in ("podman", "docker"):
        found = await Get(
            BinaryPaths, BinaryPathRequest(binary_name=name, search_path=path.split(":"))
        )
        if found.first_path is not None:
            return found.first_path.path
    return None


@rule(desc="Prepare an OCI image for the local container runtime", level=LogLevel.DEBUG)
async def local_image(request: LocalImageRequest) -> LocalImage:
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["PATH"]))
    runtime = await _runtime(env.get("PATH") or "/usr/local/bin:/usr/bin:/bin")
    if runtime is None:
        raise OciRuntimeError(
            f"`pants {request.goal} {request.address}` hands the image to podman or docker, and "
            "neither is on the PATH. Install podman (`apt install podman`, `dnf install "
            "podman`, `brew install podman`) or docker, or use `pants package` and give the "
            "OCI layout in dist/ to any OCI runtime."
        )
    image = await Get(OciImage, OciImageRequest(request.address))
    name = f"{image.repository}:{image.tags[0]}"
    if runtime.endswith("podman"):
        digest = await Get(Digest, AddPrefix(image.layout, _LAYOUT))
        return LocalImage(runtime, digest, f"oci:{{chroot}}/{_LAYOUT}:{image.tags[0]}", name)
    if image.is_index:
        raise OciRuntimeError(
            f"{request.address} is a multi-platform image (`platforms`), and docker loads one "
            "platform at a time: use podman, or build it with `platform`."
        )
    archive = await Get(
        OcibuildResult,
        OcibuildRun(
            DockerArchiveRequest(
                layout="layout", out=f"out/{_ARCHIVE}", ref_name=image.tags[0], repo_tags=(name,)
            ),
            await Get(Digest, AddPrefix(image.layout, "layout")),
            description=f"Writing the docker-archive of {request.address}",
            context=f"writing the docker-archive of {request.address} for docker",
        ),
    )
    return LocalImage(runtime, archive.output_digest, f"{{chroot}}/{_ARCHIVE}", name)


def rules():
    return collect_rules()
