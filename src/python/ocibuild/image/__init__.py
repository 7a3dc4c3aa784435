"""The image model: configs (settings applied to a base) and manifests."""
