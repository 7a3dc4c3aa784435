"""The layer spec that the layer rule hands to `ocibuild layer` (a plain function)."""

from __future__ import annotations

import json

import pytest
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST

from pants_oci.subsystems.oci_tool import Compressor
from pants_oci.util_rules.layer_content import LayerContent
from pants_oci.util_rules.layers import BuildLayerRequest, layer_spec


@pytest.mark.parametrize("compression, expected", [
    ("gzip", {"compression": "gzip"}),
    ("zstd", {"compression": "zstd"}),
    ("gzip-zlib", {"compression": "gzip", "gzip_engine": "zlib"}),
])
def test_compression_in_the_spec(compression: str, expected: dict) -> None:
    content = LayerContent(Address("app"), EMPTY_DIGEST, (("in/a", "app/a"),), ("app/a",))
    request = BuildLayerRequest(content, Address("img"), compression, 0)
    spec = json.loads(layer_spec(request, Compressor("pgzip 3 deflate 0.8.1")))
    assert spec == {"mappings": [{"source": "in/a", "dest": "app/a"}], "mtime": 0,
                    "compressor": "pgzip 3 deflate 0.8.1", **expected}
