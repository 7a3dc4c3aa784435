"""pants-oci: a Pants backend that builds OCI images without a Docker daemon, root or privilege."""
