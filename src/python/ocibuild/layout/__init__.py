"""OCI image layouts on disk: read and write images and indexes, and their files.

A layout is `oci-layout`, `index.json` and `blobs/sha256/<hex>`, as skopeo, umoci and
`docker save` (25+) write it. Docker v2s2 manifests and manifest lists are read as well:
skopeo copies them verbatim into layouts.

A layout given as a base image is untrusted input:
* JSON (index.json, manifests, indexes, configs) is read capped at 16 MiB, depth-limited and
  type-checked (`ocibuild.untrusted`); a wrongly typed field is an error naming the layout,
  the blob and the field, never a traceback or a silently "fixed" value;
* a file of the layout (index.json, blobs/, blobs/sha256/, a blob) that is a symbolic link
  resolving outside the layout's root is refused, never followed: the layout's content is
  what its digests say, not whatever a link points at on the building machine;
* only the exact names `index.json` and `blobs/sha256/<64 hex>` are read, so stray files such
  as an interrupted writer's `.partial-*` are never mistaken for content;
* layer blobs are copied or streamed as opaque, digest-verified bytes, never extracted.

`files` holds the hardened file access, `read` and `write` the image model's way in and out.
"""

from ocibuild.layout.files import OCI_LAYOUT_FILE, OciLayout
from ocibuild.layout.read import read_ref, resolve_image, tag_of
from ocibuild.layout.write import write

__all__ = ["OCI_LAYOUT_FILE", "OciLayout", "read_ref", "resolve_image", "tag_of", "write"]
