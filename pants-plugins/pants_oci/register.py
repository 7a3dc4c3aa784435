"""Wiring only: the targets and rules of the pants-oci backend."""

from pants_oci.goals import debian_lock, load, package, pin, publish, run, verify
from pants_oci.subsystems import oci_tool
from pants_oci.target_types import (
    DebianPackagesTarget,
    OciDockerfileImageTarget,
    OciImageTarget,
    OciLayerTarget,
    OciLayoutTarget,
    OciPullTarget,
    OciPythonAppTarget,
)
from pants_oci.util_rules import (
    assemble,
    base_image,
    debian_base,
    dockerfile_context,
    dockerfile_image,
    image,
    image_names,
    layer_content,
    layers,
    local_runtime,
    mount_source,
    provenance,
    pulled_base,
    python_app,
    referrers,
    sbom,
    vcs,
)


def target_types():
    return (
        OciImageTarget,
        OciLayerTarget,
        OciPullTarget,
        OciLayoutTarget,
        DebianPackagesTarget,
        OciPythonAppTarget,
        OciDockerfileImageTarget,
    )


def rules():
    return (
        *oci_tool.rules(),
        *base_image.rules(),
        *pulled_base.rules(),
        *layer_content.rules(),
        *python_app.rules(),
        *layers.rules(),
        *assemble.rules(),
        *image.rules(),
        *dockerfile_context.rules(),
        *dockerfile_image.rules(),
        *image_names.rules(),
        *mount_source.rules(),
        *package.rules(),
        *publish.rules(),
        *run.rules(),
        *verify.rules(),
        *load.rules(),
        *pin.rules(),
        *debian_lock.rules(),
        *debian_base.rules(),
        *local_runtime.rules(),
        *sbom.rules(),
        *provenance.rules(),
        *referrers.rules(),
        *vcs.rules(),
    )
