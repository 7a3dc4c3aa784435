"""The image model: immutable values and pure transformations of them.

`image.Image` (config bytes, layers, manifest annotations; its manifest and digests),
`layer.Layer`, `index.Index` (images per platform); `mutate` derives new images;
`config` holds the config-level semantics (settings, Dockerfile rules) `mutate` applies;
`manifest` the descriptors every document uses. Reading and writing them: `ocibuild.layout`.
"""
