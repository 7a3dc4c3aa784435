"""OCI 1.1 referrers: the artifact manifest's exact shape (image-spec 1.1, "guidelines for
artifact usage" and the empty descriptor), and SBOMs attached into a real layout, which
lookups by tag (and without one) still resolve to the image."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ocibuild import mediatypes
from ocibuild.digest import bytes_digest
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import REF_NAME, Descriptor
from ocibuild.image.referrer import EMPTY, REFERRER, artifact_manifest, referrers_tag
from ocibuild.layout import OciLayout, read_ref, resolve_image
from ocibuild.layout.referrers import attach
from ocibuild.protocol.referrers import ReferrerBlob, ReferrersRequest

from .conftest import run_ocibuild
from .layouts import add_image, multi_arch_layout, named, write_layout

# sha256 of the two bytes `{}`: the spec's own example of the empty descriptor.
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
SUBJECT = Descriptor(mediatypes.OCI_MANIFEST, "sha256:" + "a" * 64, 1234,
                     platform={"os": "linux", "architecture": "amd64"},
                     annotations={REF_NAME: "latest"})
SBOM = b'{"spdxVersion":"SPDX-2.3"}'


def test_the_artifact_manifest_is_image_spec_1_1_shaped() -> None:
    blob = Descriptor("application/spdx+json", bytes_digest(SBOM), len(SBOM))
    manifest = artifact_manifest(SUBJECT, blob)
    assert json.loads(manifest.data) == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        # The config is empty, so artifactType MUST say what the artifact is.
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST,
                   "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": bytes_digest(SBOM),
                    "size": len(SBOM)}],
        # A descriptor of the subject manifest: no platform, no annotations of its own.
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + "a" * 64, "size": 1234},
    }
    assert (EMPTY.digest, EMPTY.size) == (EMPTY_DIGEST, 2)
    assert manifest.digest == bytes_digest(manifest.data)
    assert artifact_manifest(SUBJECT, blob).data == manifest.data  # canonical
    assert manifest.index_entry("SPDX SBOM") == {
        "mediaType": mediatypes.OCI_MANIFEST, "digest": manifest.digest,
        "size": len(manifest.data), "artifactType": "application/spdx+json",
        "annotations": {REFERRER: f"SPDX SBOM of {SUBJECT.digest}"}}
    assert referrers_tag(SUBJECT.digest) == "sha256-" + "a" * 64


CDX = b'{"bomFormat":"CycloneDX"}'


def _attach(layout_dir: Path, tmp_path: Path, subject: str, cdx: bool = True) -> tuple:
    """The SPDX SBOM (and the CycloneDX one) attached: the result, and the layout with them
    as `tmp_path/merged`."""
    (tmp_path / "sbom.spdx.json").write_bytes(SBOM)
    (tmp_path / "sbom.cdx.json").write_bytes(CDX)
    request = ReferrersRequest(str(layout_dir), (
        ReferrerBlob(str(tmp_path / "sbom.spdx.json"), "application/spdx+json", subject,
                     "SPDX SBOM"),
        *([ReferrerBlob(str(tmp_path / "sbom.cdx.json"), "application/vnd.cyclonedx+json",
                        subject, "CycloneDX SBOM")] if cdx else []),
    ))
    out = tmp_path / "out"
    result = attach(request, str(out))
    merged = tmp_path / "merged"
    shutil.copytree(layout_dir, merged)
    shutil.copytree(out, merged, dirs_exist_ok=True)  # as the plugin merges the digests
    return result, merged


def test_attached_sboms_are_listed_unnamed_and_lookups_still_find_the_image(
        tmp_path: Path) -> None:
    layout_dir = tmp_path / "layout"
    image = add_image(layout_dir, "app")
    write_layout(layout_dir, [named(image, "1.0"), named(image, "latest")])
    before = resolve_image(OciLayout(layout_dir), ref_name="1.0")

    result, merged = _attach(layout_dir, tmp_path, image.digest)
    layout = OciLayout(merged)
    entries = layout.read_index()["manifests"]
    assert [e.get("annotations", {}).get(REF_NAME) for e in entries] == ["1.0", "latest", None,
                                                                        None]
    assert [e.get("artifactType") for e in entries[2:]] == [
        "application/spdx+json", "application/vnd.cyclonedx+json"]
    assert [r.manifest_digest for r in result.referrers] == [e["digest"] for e in entries[2:]]
    spdx_manifest = layout.read_blob_json(result.referrers[0].manifest_digest)
    assert spdx_manifest["subject"] == {"mediaType": mediatypes.OCI_MANIFEST,
                                        "digest": image.digest, "size": image.size}
    (layer,) = spdx_manifest["layers"]
    assert Path(layout.blob_path(layer["digest"])).read_bytes() == SBOM
    assert Path(layout.blob_path(EMPTY_DIGEST)).read_bytes() == b"{}"
    # Lookups by tag, by full reference and without a name all still mean the image.
    for ref in ("1.0", "latest", None):
        assert resolve_image(layout, ref_name=ref).manifest_descriptor == \
            before.manifest_descriptor
    assert read_ref(layout, "1.0").manifest_descriptor == before.manifest_descriptor
    assert read_ref(layout).manifest_descriptor == before.manifest_descriptor
    # Attaching the same again adds no second entry.
    (tmp_path / "again").mkdir()
    _, remerged = _attach(merged, tmp_path / "again", image.digest)
    assert len(OciLayout(remerged).read_index()["manifests"]) == 4


def test_an_index_is_no_subject(tmp_path: Path) -> None:
    layout_dir = tmp_path / "layout"
    multi_arch_layout(layout_dir)
    (top,) = OciLayout(layout_dir).read_index()["manifests"]
    with pytest.raises(OciBuildError) as err:
        _attach(layout_dir, tmp_path, top["digest"])
    assert str(err.value) == (
        f"layout {str(layout_dir)!r}: {top['digest']} is a {mediatypes.OCI_INDEX}, not an "
        "image manifest; attach to each platform's image, not to the index")


def test_ocibuild_run_of_a_referrers_request(tmp_path: Path) -> None:
    layout_dir = tmp_path / "layout"
    image = add_image(layout_dir, "app")
    write_layout(layout_dir, [named(image, "latest")])
    (tmp_path / "sbom.spdx.json").write_bytes(SBOM)
    request = ReferrersRequest("layout", (ReferrerBlob(
        "sbom.spdx.json", "application/spdx+json", image.digest, "SPDX SBOM"),))
    (tmp_path / "request.json").write_bytes(request.dumps())
    done = run_ocibuild("run", "--request", "request.json", "--out-dir", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["kind"] == "referrers-result"
    (referrer,) = answer["referrers"]
    assert referrer["subject"] == image.digest
    assert sorted(p.name for p in (tmp_path / "out/blobs/sha256").iterdir()) == sorted(
        d.split(":")[1] for d in (referrer["manifest_digest"], referrer["blob_digest"],
                                  EMPTY_DIGEST))
