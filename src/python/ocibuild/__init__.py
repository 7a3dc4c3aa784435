"""ocibuild: build OCI image layers, configs and layouts deterministically, without privilege."""
