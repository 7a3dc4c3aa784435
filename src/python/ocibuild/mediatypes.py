"""OCI and Docker media types."""

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

# Docker "v2 schema 2": skopeo copies these verbatim into OCI layouts.
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)

# A Docker gzip layer is byte-for-byte an OCI tar+gzip layer. An OCI manifest must use the OCI
# name for it: umoci, for one, refuses Docker layer media types inside an OCI manifest.
_OCI_LAYER_EQUIVALENT = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP}


def oci_layer_media_type(media_type: str) -> str:
    return _OCI_LAYER_EQUIVALENT.get(media_type, media_type)

# Every manifest kind we can read, for the registry's `Accept` negotiation.
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])
