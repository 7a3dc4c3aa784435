"""The layer request that the layer rule hands to `ocibuild layer` (a plain function)."""

from __future__ import annotations

import pytest
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, DigestEntries, Directory, FileDigest, FileEntry, SymlinkEntry

from ocibuild.protocol.layer import LayerRequest
from pants_oci.subsystems.oci_tool import Compressor
from pants_oci.util_rules.layer_content import LayerContent, OciDependencyError
from pants_oci.util_rules.layers import (
    BuildLayerRequest,
    check_no_whiteouts,
    executables_of,
    layer_request,
)


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
                        "executables": [], **expected}
    # What the plugin writes is what the core reads back.
    assert LayerRequest.from_json(document, "the request") == layer_request(
        request, Compressor("pgzip 3 deflate 0.8.1"))


def test_the_executables_are_what_pants_records() -> None:
    """Not the sandbox's modes: `tests/core/layer_sandbox_test.py` shows why."""
    digest = FileDigest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0)
    entries = DigestEntries([
        FileEntry("in/app.pex/__main__.py", digest, is_executable=True),
        FileEntry("in/app.pex/.bootstrap", digest, is_executable=False),
        FileEntry("in/bin/tool", digest, is_executable=True),
        Directory("in/empty"), SymlinkEntry("in/link", "bin/tool"),
    ])
    assert executables_of(entries) == ("in/app.pex/__main__.py", "in/bin/tool")
    content = LayerContent(Address("app"), EMPTY_DIGEST, (("in/app.pex", "app/app.pex"),), ())
    request = BuildLayerRequest(content, Address("img"), "gzip", 0)
    document = layer_request(request, Compressor("c"), executables_of(entries))
    assert LayerRequest.from_json(document.to_json(), "the request").executables == (
        "in/app.pex/__main__.py", "in/bin/tool")


@pytest.mark.parametrize("mappings, image_paths, path", [
    ((("in/etc", "etc"),), ("etc/.wh.passwd",), "etc/.wh.passwd"),
    ((("in/x", ".wh..wh..opq"),), (".wh..wh..opq",), ".wh..wh..opq"),
    ((("in/site", "srv/.wh.www"),), (), "srv/.wh.www"),
])
def test_a_whiteout_name_is_refused_naming_the_dependency(mappings, image_paths, path) -> None:
    content = LayerContent(Address("web", target_name="www"), EMPTY_DIGEST, mappings, image_paths)
    with pytest.raises(OciDependencyError) as err:
        check_no_whiteouts(content, Address("web", target_name="image"))
    name = next(p for p in path.split("/") if p.startswith(".wh."))
    assert str(err.value) == (
        f"The dependency web:www of the oci_image web:image puts /{path} in the image, and "
        f"{name!r} is a whiteout name (.wh.*): unpacking the layer would delete or hide files "
        "of the base instead. Rename the file (or the `dest`, `destination` or `output_path` "
        "that makes the name), or leave it out.")
    check_no_whiteouts(LayerContent(Address("web"), EMPTY_DIGEST, (("in/a.wh.b", "a.wh.b"),),
                                    ("a.wh.b/.whx",)), Address("web", target_name="image"))
