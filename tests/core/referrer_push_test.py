"""Referrers pushed after their image to the real distribution registry on loopback: it has
no referrers API, so the `sha256-<hex>` tag lists them (merged with what it listed)."""

from __future__ import annotations

import json
from pathlib import Path

from ocibuild.image.referrer import referrers_tag
from ocibuild.layout import OciLayout, resolve_image
from ocibuild.reference import parse_reference
from ocibuild.registry.pull import fetch_manifest
from ocibuild.registry.push import PushResult, push_image
from ocibuild.registry.transport import Transport
from tests.core.layouts import add_image, named, write_layout
from tests.core.referrer_test import CDX, SBOM, _attach
from tests.fixtures.registry import Registry, registry  # noqa: F401 (a fixture)


def _transport(reg: Registry) -> Transport:
    return Transport(reg.host, insecure=True)


def _blob(reg: Registry, repo: str, digest: str) -> bytes:
    transport = _transport(reg)
    response = transport.request("GET", f"/v2/{repo}/blobs/{digest}",
                                 scope=f"repository:{repo}:pull", stream=True)
    return transport.read(response, 1 << 20, "GET", digest)


def _push(reg: Registry, layout: OciLayout) -> PushResult:
    return push_image(layout, resolve_image(layout, ref_name="latest"),
                      parse_reference(f"{reg.host}/team/app:1.0"), _transport(reg), ["1.0"])


def test_sboms_follow_the_image_and_the_referrers_tag_lists_them(
        registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    layout_dir = tmp_path / "layout"
    image = add_image(layout_dir, "app")
    write_layout(layout_dir, [named(image, "latest")])
    dest = parse_reference(f"{registry.host}/team/app")
    tag = referrers_tag(image.digest)
    (tmp_path / "first").mkdir()
    spdx_only, first_layout = _attach(layout_dir, tmp_path / "first", image.digest, cdx=False)
    first = _push(registry, OciLayout(first_layout))
    assert first.tags_written == ["1.0", tag]
    assert [m["digest"] for m in fetch_manifest(_transport(registry), dest, tag).json()[
        "manifests"]] == [spdx_only.referrers[0].manifest_digest]

    # Both now: the tag keeps what it listed and adds the new one; the image is not re-sent.
    attached, merged = _attach(layout_dir, tmp_path, image.digest)
    layout = OciLayout(merged)
    result = _push(registry, layout)
    digests = [r.manifest_digest for r in attached.referrers]
    assert result.referrers == digests
    assert result.tags_written == [tag]
    listed = fetch_manifest(_transport(registry), dest, tag).json()["manifests"]
    assert listed == [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
         "size": r.size, "artifactType": r.artifact_type}
        for digest, r in zip(digests, attached.referrers)]
    assert [r.artifact_type for r in attached.referrers] == [
        "application/spdx+json", "application/vnd.cyclonedx+json"]
    for referrer, sbom in zip(attached.referrers, (SBOM, CDX)):
        manifest = fetch_manifest(_transport(registry), dest, referrer.manifest_digest)
        assert manifest.content == Path(layout.blob_path(referrer.manifest_digest)).read_bytes()
        raw = json.loads(manifest.content)
        assert raw["subject"]["digest"] == image.digest
        (layer,) = raw["layers"]
        assert _blob(registry, "team/app", layer["digest"]) == sbom
        assert _blob(registry, "team/app", raw["config"]["digest"]) == b"{}"

    again = _push(registry, layout)
    assert (again.uploaded, again.tags_written) == ([], [])
    assert fetch_manifest(_transport(registry), dest, tag).json()["manifests"] == listed
