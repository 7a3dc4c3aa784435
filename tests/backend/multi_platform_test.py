"""`oci_image(platforms=[...])`: one image per platform under one OCI image index."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import RuleRunner

from ocibuild import mediatypes
from ocibuild.layout import OciLayout, read_ref, resolve_image
from ocibuild.platform import parse_platform
from tests.backend.conftest import build


def _blob(layout: Path, digest: str) -> dict:
    return json.loads((layout / "blobs/sha256" / digest.split(":", 1)[1]).read_bytes())


def test_an_index_of_two_platforms_on_scratch_and_an_image_built_on_it(
        rule_runner: RuleRunner) -> None:
    rule_runner.write_files({
        "app/BUILD": dedent(
            """\
            files(name="conf", sources=["app.conf"])
            oci_image(name="image", base="scratch", dependencies=[":conf"],
                      platforms=["linux/amd64", "linux/arm64/v8"], entrypoint=["/app"],
                      annotations={"org.opencontainers.image.source": "https://example.com/x"})
            files(name="more", sources=["more.conf"])
            oci_image(name="child", base=":image", dependencies=[":more"],
                      platform="linux/arm64/v8")
            """
        ),
        "app/app.conf": "x = 1\n",
        "app/more.conf": "y = 2\n",
    })
    package, dist = build(rule_runner, Address("app", target_name="image"))
    layout = dist / "app/image"
    meta = json.loads((dist / "app/image.json").read_text())
    assert meta["kind"] == "index-result"
    assert package.artifacts[0].extra_log_lines == (f"    OCI layout, index {meta['manifest_digest']}",)

    # index.json names the index, which lists one image per platform in the order asked;
    # the rest of index.json is the images' SBOMs (sbom_package_test), unnamed.
    (top,) = [m for m in json.loads((layout / "index.json").read_text())["manifests"]
              if "artifactType" not in m]
    assert (top["mediaType"], top["digest"]) == (mediatypes.OCI_INDEX, meta["manifest_digest"])
    index = _blob(layout, top["digest"])
    assert [m["platform"] for m in index["manifests"]] == [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm64", "variant": "v8"},
    ]
    assert index["annotations"] == {"org.opencontainers.image.source": "https://example.com/x"}
    assert [m["digest"] for m in index["manifests"]] == [
        m["manifest_digest"] for m in meta["manifests"]]
    amd64, arm64 = (read_ref(OciLayout(layout)).manifests[i].image for i in (0, 1))
    # The layer is built once and shared; the configs say each platform.
    assert amd64.layers == arm64.layers
    assert (amd64.config["architecture"], arm64.config["architecture"],
            arm64.config["variant"]) == ("amd64", "arm64", "v8")
    assert amd64.config["config"]["Entrypoint"] == arm64.config["config"]["Entrypoint"] == ["/app"]
    for image in (amd64, arm64):
        for blob in (image.config_descriptor, *image.layers):
            assert (layout / "blobs/sha256" / blob.digest.split(":", 1)[1]).is_file()

    # An image built on the index takes the image of its own platform.
    _, dist = build(rule_runner, Address("app", target_name="child"))
    child = resolve_image(OciLayout(dist / "app/child"))
    assert child.layers[0] == arm64.layers[0] and len(child.layers) == 2
    assert child.platform == parse_platform("linux/arm64/v8")
    # Its base is the arm64 image (what it was built on), not the index.
    assert child.manifest["annotations"]["org.opencontainers.image.base.digest"] == \
        arm64.manifest_descriptor.digest


@pytest.mark.parametrize("fields, message", [
    ('platforms=["linux/amd64"], platform="linux/amd64"',
     "sets `platforms` and `platform`: `platforms` builds an index"),
    ('platforms=["linux/amd64"], docker_archive=True',
     "sets `platforms` and `docker_archive`"),
    ('platforms=["linux/amd64", "linux/amd64"]', "lists linux/amd64 more than once"),
    ("platforms=[]", "lists no platform"),
    ('platforms=["linux"]', "The 'platforms' field in target app:image"),
])
def test_bad_platforms(rule_runner: RuleRunner, fields: str, message: str) -> None:
    rule_runner.write_files({"app/BUILD": f'oci_image(name="image", base="scratch", {fields})\n'})
    with pytest.raises(ExecutionError) as err:
        build(rule_runner, Address("app", target_name="image"))
    assert message in str(err.value)


def test_a_base_without_the_platform_is_an_error_naming_both(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({
        "app/BUILD": dedent(
            """\
            oci_image(name="base", base="scratch", platform="linux/amd64")
            oci_image(name="image", base=":base", platforms=["linux/amd64", "linux/arm64"])
            """
        ),
    })
    with pytest.raises(ExecutionError) as err:
        build(rule_runner, Address("app", target_name="image"))
    assert "the oci_image app:image for linux/arm64" in str(err.value)
    assert "linux/arm64 was asked for, but the base 'app:base' is linux/amd64" in str(err.value)
