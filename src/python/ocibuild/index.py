"""Put images already assembled (one per platform) under one OCI image index.

Each image is read from its own layout (manifest and config only) and listed under the
platform its config declares, in the order given; two images for one platform are an error,
as a runtime could pick either. The index and the images' manifests and configs are written
to `out_dir` with index.json naming the index; layer blobs are the caller's to merge in.
"""

from __future__ import annotations

from ocibuild.errors import OciBuildError
from ocibuild.image.index import Index
from ocibuild.layout import OciLayout, resolve_image, write
from ocibuild.protocol.index import IndexedImage, IndexRequest, IndexResult
from ocibuild.untrusted import local_path
from ocibuild.validate import validate_annotation_key


def index(request: IndexRequest, out_dir: str) -> IndexResult:
    annotations = tuple((validate_annotation_key(k), v) for k, v in request.annotations)
    images = [resolve_image(OciLayout(local_path(p, "index request: images"))) for p in
              request.images]
    seen: dict = {}
    for path, image in zip(request.images, images):
        if image.platform is None:
            raise OciBuildError(f"the image in {path!r} declares no platform (os and "
                                "architecture in its config); an index lists images by it")
        platform = str(image.platform)
        if platform in seen:
            raise OciBuildError(f"the images {seen[platform]!r} and {path!r} are both for "
                                f"{platform}; an index holds one image per platform")
        seen[platform] = path
    built = Index.of(images, annotations=annotations)
    write(OciLayout(out_dir), built, list(request.ref_names))
    return IndexResult(
        manifest_digest=built.descriptor.digest,
        ref_name=request.ref_names[0],
        ref_names=request.ref_names,
        repository=request.repository,
        manifests=tuple(IndexedImage(str(c.platform), c.image.manifest_descriptor.digest,
                                     c.image.config_descriptor.digest)
                        for c in built.manifests),
    )
