"""oci_layer: several dependencies in one layer, with destination, owner, file mode, compression."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from textwrap import dedent

import pytest
import zstandard
from pants.engine.addresses import Address
from pants.testutil.rule_runner import RuleRunner

from ocibuild import mediatypes
from ocibuild.layout import OciLayout, resolve_image
from tests.backend.conftest import build, package_error

BUILD = dedent(
    """\
    files(name="assets", sources=["assets/*"])
    files(name="config", sources=["app.conf"])
    oci_layer(name="static", dependencies=[":assets", ":config"], destination="/srv/www",
              owner="65532:65532", file_mode="0640", layer_compression="zstd")
    oci_image(name="image", base="scratch", dependencies=[":static", ":config"])
    oci_layer(name="outer", dependencies=[":static"])
    oci_image(name="nested", base="scratch", dependencies=[":outer"])
    oci_layer(name="empty")
    oci_image(name="with-empty", base="scratch", dependencies=[":empty"])
    """
)


def _setup(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({
        "web/BUILD": BUILD, "web/assets/site.css": "body {}\n", "web/assets/logo.svg": "<svg/>\n",
        "web/app.conf": "port = 8080\n",
    })


def _members(layout: Path, descriptor) -> dict:
    data = Path(OciLayout(layout).blob_path(descriptor.digest)).read_bytes()
    if descriptor.media_type == mediatypes.OCI_LAYER_ZSTD:
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar}


def test_one_layer_with_its_own_placement_owner_mode_and_compression(rule_runner: RuleRunner) -> None:
    _setup(rule_runner)
    _, dist = build(rule_runner, Address("web", target_name="image"))
    image = resolve_image(OciLayout(dist / "web/image"), ref_name="latest")
    static, config = image.layers
    assert static.media_type == mediatypes.OCI_LAYER_ZSTD
    assert config.media_type == mediatypes.OCI_LAYER_GZIP
    members = _members(dist / "web/image", static)
    css = members["srv/www/web/assets/site.css"]
    assert (css.uid, css.gid, css.mode) == (65532, 65532, 0o640)
    assert members["srv/www/web/app.conf"].uid == 65532
    # Directories the layer only creates on the way stay root's.
    assert (members["srv"].uid, members["srv/www"].uid) == (0, 0)
    assert members["srv/www/web"].mode == 0o755
    # The same files, as a plain dependency, keep the default placement and owner.
    plain = _members(dist / "web/image", config)
    assert plain["web/app.conf"].uid == 0 and plain["web/app.conf"].mode == 0o644
    assert [h["created_by"] for h in image.config["history"]] == [
        "pants-oci: web:static", "pants-oci: web:config"]


@pytest.mark.parametrize("target,message", [
    ("nested", "The oci_layer web:outer depends on the oci_layer web:static: layers do not nest"),
    ("with-empty", "The oci_layer web:empty has no `dependencies`: list what goes in the layer."),
])
def test_layer_errors(rule_runner: RuleRunner, target: str, message: str) -> None:
    _setup(rule_runner)
    assert message in package_error(rule_runner, f"web:{target}")
