"""Write an `Image` or an `Index` into an OCI layout, named in its index.json.

The config(s), manifest(s) and the index blob are written, each atomically and kept when
already there; layer blobs are the caller's to put in the layout (`ocibuild layer` writes
them there, or the build merges them in), as they are never held in memory.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence, Union

from ocibuild.image.image import Image
from ocibuild.image.index import Index
from ocibuild.image.manifest import REF_NAME, Descriptor
from ocibuild.layout.files import OciLayout


def _write_blobs(layout: OciLayout, what: Union[Image, Index]) -> Descriptor:
    if isinstance(what, Index):
        for child in what.manifests:
            _write_blobs(layout, child.image)
        return layout.write_blob_bytes(what.index_bytes, what.media_type)
    layout.write_blob_bytes(what.config_bytes, what.config_media_type)
    return layout.write_blob_bytes(what.manifest_bytes, what.media_type)


def write(layout: OciLayout, what: Union[Image, Index], ref_names: Sequence[str]) -> Descriptor:
    """Writes `what`'s blobs, then an index.json naming it once per ref name (replacing the
    layout's index.json), then oci-layout. Returns the manifest's (or index's) descriptor."""
    descriptor = _write_blobs(layout, what)
    layout.write_index([replace(descriptor, annotations={REF_NAME: ref}) for ref in ref_names])
    layout.write_oci_layout_file()
    return descriptor
