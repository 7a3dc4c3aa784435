"""The image model: config and manifest, as pure transformations of JSON values."""
