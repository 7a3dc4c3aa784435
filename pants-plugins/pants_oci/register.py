"""Wiring only: the targets and rules of the pants-oci backend."""

from pants_oci.goals import package, publish
from pants_oci.subsystems import oci_tool
from pants_oci.target_types import OciImageTarget, OciLayoutTarget
from pants_oci.util_rules import base_image, image, layer_content, layers


def target_types():
    return (OciImageTarget, OciLayoutTarget)


def rules():
    return (
        *oci_tool.rules(),
        *base_image.rules(),
        *layer_content.rules(),
        *layers.rules(),
        *image.rules(),
        *package.rules(),
        *publish.rules(),
    )
