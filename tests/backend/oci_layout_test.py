"""oci_layout bases: vendored layouts (directories and archives), platform selection, corruption."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from textwrap import dedent

from pants.engine.addresses import Address
from pants.testutil.rule_runner import RuleRunner

from ocibuild.layout import OciLayout, resolve_image
from ocibuild.build import build as build_image
from ocibuild.layout.files import MAX_JSON_BLOB
from ocibuild.protocol.build import BuildRequest
from ocibuild.protocol.layer import LayerMapping
from pants.engine.fs import Snapshot
from pants_oci.util_rules.assemble import ShallowLayout, ShallowLayoutRequest
from ocibuild.platform import parse_platform
from tests.backend.conftest import build, package_error
from tests.core.layouts import multi_arch_layout

BUILD = dedent(
    """\
    oci_layout(name="base", layout="vendored")
    oci_layout(name="archived", layout="vendored.tar")
    files(name="f", sources=["f.txt"])
    oci_image(name="arm", base=":base", platform="linux/arm64", dependencies=[":f"])
    oci_image(name="default", base=":archived", dependencies=[":f"])
    """
)


def _setup(rule_runner: RuleRunner) -> Path:
    rule_runner.write_files({"img/BUILD": BUILD, "img/f.txt": "f\n"})
    vendored = Path(rule_runner.build_root, "img/vendored")
    multi_arch_layout(vendored)
    with tarfile.open(Path(rule_runner.build_root, "img/vendored.tar"), "w") as tar:
        for path in sorted(vendored.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(vendored)), recursive=False)
    return vendored


def _config(dist: Path, name: str) -> dict:
    return resolve_image(OciLayout(dist / name), ref_name="latest").config


def test_platform_is_selected_from_a_multi_arch_layout(rule_runner: RuleRunner) -> None:
    _setup(rule_runner)
    _, dist = build(rule_runner, Address("img", target_name="arm"))
    config = _config(dist, "img/arm")
    assert (config["architecture"], config.get("variant")) == ("arm64", "v8")
    assert config["config"]["Env"] == ["MARKER=arm64"]
    # Unset platform on a multi-arch base: linux/amd64, a fixed default. From the .tar too.
    _, dist = build(rule_runner, Address("img", target_name="default"))
    assert _config(dist, "img/default")["config"]["Env"] == ["MARKER=amd64"]


def _error(rule_runner: RuleRunner, target: str) -> str:
    return package_error(rule_runner, f"img:{target}")


def test_corrupt_vendored_blob_is_refused(rule_runner: RuleRunner) -> None:
    vendored = _setup(rule_runner)
    image = resolve_image(OciLayout(vendored), ref_name="latest",
                          platform=parse_platform("linux/amd64"))
    blob = vendored / "blobs/sha256" / image.layers[0].digest.split(":")[1]
    blob.write_bytes(blob.read_bytes() + b"x")
    message = _error(rule_runner, "arm")
    assert "the `layout` field of the oci_layout img:base: blobs/sha256/" in message
    assert "does not match its digest" in message


def test_missing_vendored_blob_is_refused(rule_runner: RuleRunner) -> None:
    vendored = _setup(rule_runner)
    arm = resolve_image(OciLayout(vendored), ref_name="latest",
                        platform=parse_platform("linux/arm64"))
    (vendored / "blobs/sha256" / arm.layers[0].digest.split(":")[1]).unlink()
    message = _error(rule_runner, "arm")
    assert "The base 'img:base' of the oci_image img:arm lacks the layer blob(s)" in message


def test_layout_directory_without_index(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"img/BUILD": BUILD, "img/f.txt": "f\n", "img/vendored/x": "x"})
    message = _error(rule_runner, "arm")
    assert "'img/vendored' is not an OCI image layout (no img/vendored/index.json)" in message


def test_assembling_reads_only_the_base_metadata(rule_runner: RuleRunner, tmp_path: Path) -> None:
    """The assemble process gets the base's index, manifests and config, never a layer too big
    to be one of them: a large base costs nothing to assemble on."""
    big = tmp_path / "big"
    big.mkdir()
    (big / "data.bin").write_bytes(os.urandom(MAX_JSON_BLOB + 1))
    (tmp_path / "small.txt").write_text("small\n")
    layout = tmp_path / "large"
    build_image(BuildRequest(base="scratch", output=str(layout), layers=(
        LayerMapping(str(big), "/big"), LayerMapping(str(tmp_path / "small.txt"), "/small.txt"))))
    image = resolve_image(OciLayout(layout), ref_name="latest")
    big_layer, small_layer = (d.digest for d in image.layers)
    files = {str(p.relative_to(layout)) for p in layout.rglob("*") if p.is_file()}
    snapshot = rule_runner.make_snapshot({f: (layout / f).read_bytes() for f in files})
    shallow = rule_runner.request(ShallowLayout, [ShallowLayoutRequest(snapshot.digest)])
    kept = set(rule_runner.request(Snapshot, [shallow.digest]).files)
    assert kept == files - {f"blobs/sha256/{big_layer[7:]}"}
    assert {"index.json", "oci-layout", f"blobs/sha256/{small_layer[7:]}",
            f"blobs/sha256/{image.manifest_descriptor.digest[7:]}"} <= kept


def test_a_compressed_archive_is_a_base_and_a_bomb_is_refused(rule_runner: RuleRunner) -> None:
    import hashlib
    import io

    import zstandard

    _setup(rule_runner)
    plain = Path(rule_runner.build_root, "img/vendored.tar").read_bytes()
    compress = zstandard.ZstdCompressor(level=19).compress
    Path(rule_runner.build_root, "img/vendored.tar.zst").write_bytes(compress(plain))
    zeros = bytes(64 << 20)
    bomb = io.BytesIO()
    with tarfile.open(fileobj=bomb, mode="w") as tar:
        info = tarfile.TarInfo(f"blobs/sha256/{hashlib.sha256(zeros).hexdigest()}")
        info.size = len(zeros)
        tar.addfile(info, io.BytesIO(zeros))
    Path(rule_runner.build_root, "img/bomb.tar.zst").write_bytes(compress(bomb.getvalue()))
    rule_runner.write_files({"img/BUILD": BUILD + dedent(
        """\
        oci_layout(name="zst", layout="vendored.tar.zst")
        oci_layout(name="bomb", layout="bomb.tar.zst")
        oci_image(name="from-zst", base=":zst", dependencies=[":f"])
        oci_image(name="from-bomb", base=":bomb", dependencies=[":f"])
        """)})
    message = _error(rule_runner, "from-bomb")  # first: package_error wants no dist/ yet
    assert "img/bomb.tar.zst': 'blobs/sha256/" in message
    assert ("declares 67108864 bytes, which would take OCI archive 'img/bomb.tar.zst' to "
            "67108864 before any of it is written, past its 8388608-byte bound (zstd: at most "
            "100x its") in message
    _, dist = build(rule_runner, Address("img", target_name="from-zst"))
    assert _config(dist, "img/from-zst")["config"]["Env"] == ["MARKER=amd64"]
