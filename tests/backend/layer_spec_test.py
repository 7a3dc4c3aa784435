"""The layer request that the layer rule hands to `ocibuild layer` (a plain function)."""

from __future__ import annotations

import pytest
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST

from ocibuild.protocol.layer import LayerRequest
from pants_oci.subsystems.oci_tool import Compressor
from pants_oci.util_rules.layer_content import LayerContent
from pants_oci.util_rules.layers import BuildLayerRequest, layer_request


@pytest.mark.parametrize("compression, expected", [
    ("gzip", {"compression": "gzip", "gzip_engine": None}),
    ("zstd", {"compression": "zstd", "gzip_engine": None}),
    ("gzip-zlib", {"compression": "gzip", "gzip_engine": "zlib"}),
])
def test_compression_in_the_request(compression: str, expected: dict) -> None:
    content = LayerContent(Address("app"), EMPTY_DIGEST, (("in/a", "app/a"),), ("app/a",),
                           owner="65532:65533", file_mode="0640")
    request = BuildLayerRequest(content, Address("img"), compression, 0)
    document = layer_request(request, Compressor("pgzip 3 deflate 0.8.1")).to_json()
    assert document == {"version": 1, "kind": "layer", "mtime": 0, "level": None,
                        "mappings": [{"source": "in/a", "dest": "app/a", "mode": 0o640}],
                        "owner": [65532, 65533], "compressor": "pgzip 3 deflate 0.8.1",
                        **expected}
    # What the plugin writes is what the core reads back.
    assert LayerRequest.from_json(document, "the request") == layer_request(
        request, Compressor("pgzip 3 deflate 0.8.1"))
