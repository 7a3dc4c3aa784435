"""`pants package` of an oci_image writes its SBOMs: real ocibuild processes, real files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from textwrap import dedent

from pants.engine.addresses import Address
from pants.testutil.rule_runner import RuleRunner

from ocibuild.digest import bytes_digest
from ocibuild.image.manifest import REF_NAME
from ocibuild.image.referrer import REFERRER
from ocibuild.layout import OciLayout, resolve_image
from ocibuild.platform import parse_platform
from tests.backend.conftest import build, debian_lock
from tests.backend.debian_packages_test import _runner as debian_runner
from tests.backend.debian_packages_test import repo  # noqa: F401 (a fixture)
from tests.fixtures.debian_repo import DebianRepo


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spdx_packages(path: Path) -> dict:
    return {p["SPDXID"]: p for p in json.loads(path.read_text())["packages"]}


def test_files_on_scratch_get_both_sboms(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({
        "app/BUILD": dedent("""\
            files(name="conf", sources=["app.conf"])
            oci_image(name="image", base="scratch", dependencies=[":conf"],
                      repository="registry.example/app", image_tags=["1.0"])
            oci_image(name="bare", base="scratch", dependencies=[":conf"], sbom=False)
            """),
        "app/app.conf": "x = 1\n",
    })
    package, dist = build(rule_runner, Address("app", target_name="image"))
    assert [a.relpath for a in package.artifacts] == [
        "app/image", "app/image.json", "app/image.spdx.json", "app/image.cdx.json",
        "app/image.provenance.json"]
    image = resolve_image(OciLayout(dist / "app/image"), ref_name="1.0")
    digest = image.manifest_descriptor.digest
    conf = _sha256(b"x = 1\n")

    spdx = json.loads((dist / "app/image.spdx.json").read_text())
    packages = _spdx_packages(dist / "app/image.spdx.json")
    assert packages["SPDXRef-Image"]["versionInfo"] == digest
    assert packages["SPDXRef-Image"]["name"] == "registry.example/app"
    assert spdx["name"] == f"registry.example/app@{digest}"
    (artifact,) = [p for p in packages.values() if p.get("primaryPackagePurpose") == "FILE"]
    assert (artifact["name"], artifact["versionInfo"], artifact["packageFileName"]) == (
        "app:conf", f"sha256:{conf}", "/app/app.conf")  # files land at their build-root path
    assert artifact["checksums"] == [{"algorithm": "SHA256", "checksumValue": conf}]
    assert "SPDXRef-Base" not in packages  # scratch

    cdx = json.loads((dist / "app/image.cdx.json").read_text())
    assert cdx["metadata"]["component"]["version"] == digest
    (component,) = cdx["components"]
    assert component["name"] == "app:conf"
    assert {"name": "oci:path", "value": "/app/app.conf"} in component["properties"]
    assert component["hashes"] == [{"alg": "SHA-256", "content": conf}]

    package, _ = build(rule_runner, Address("app", target_name="bare"))
    assert [a.relpath for a in package.artifacts] == ["app/bare", "app/bare.json",
                                                      "app/bare.provenance.json"]


def test_a_debian_base_lists_every_locked_deb(rule_runner: RuleRunner,
                                              repo: DebianRepo) -> None:  # noqa: F811
    runner = debian_runner(rule_runner, repo, ["busybox-test", "ca-certificates"])
    debian_lock(runner)
    lock = json.loads(Path(runner.build_root, "img/base.lock.json").read_text())
    _, dist = build(runner, Address("img", target_name="image"))
    image = resolve_image(OciLayout(dist / "img/image"), ref_name="latest")
    packages = _spdx_packages(dist / "img/image.spdx.json")
    base_digest = image.manifest["annotations"]["org.opencontainers.image.base.digest"]
    assert packages["SPDXRef-Base"]["versionInfo"] == base_digest
    debs = {p["name"]: p["checksums"][0]["checksumValue"] for p in packages.values()
            if p.get("packageFileName", "").endswith(".deb")}
    assert debs == {p["name"]: p["sha256"] for p in lock["packages"]["amd64"]}
    cdx = json.loads((dist / "img/image.cdx.json").read_text())
    in_cdx = {c["name"]: c["hashes"][0]["content"] for c in cdx["components"]
              if c.get("purl", "").startswith("pkg:deb/")}
    assert in_cdx == debs


def _build_scratch_image(runner: RuleRunner, fields: str) -> tuple:
    """app:image: app.conf on scratch, with `fields`; packaged."""
    runner.write_files({
        "app/BUILD": dedent(f"""\
            files(name="conf", sources=["app.conf"])
            oci_image(name="image", base="scratch", dependencies=[":conf"], {fields})
            """),
        "app/app.conf": "x = 1\n",
    })
    return build(runner, Address("app", target_name="image"))


def test_one_pair_per_platform(rule_runner: RuleRunner) -> None:
    package, dist = _build_scratch_image(
        rule_runner, 'platforms=["linux/amd64", "linux/arm64/v8"]')
    assert [a.relpath for a in package.artifacts][2:] == [
        "app/image.linux-amd64.spdx.json", "app/image.linux-amd64.cdx.json",
        "app/image.linux-amd64.provenance.json",
        "app/image.linux-arm64-v8.spdx.json", "app/image.linux-arm64-v8.cdx.json",
        "app/image.linux-arm64-v8.provenance.json"]
    for platform in ("linux/amd64", "linux/arm64/v8"):
        stem = f"app/image.{platform.replace('/', '-')}"
        image = resolve_image(OciLayout(dist / "app/image"), ref_name="latest",
                              platform=parse_platform(platform))
        packages = _spdx_packages(dist / f"{stem}.spdx.json")
        assert packages["SPDXRef-Image"]["versionInfo"] == image.manifest_descriptor.digest
        assert packages["SPDXRef-Image"]["comment"] == f"platform {platform}; tags latest"


def test_the_sboms_are_referrers_of_the_image_in_its_layout(rule_runner: RuleRunner) -> None:
    _, dist = _build_scratch_image(rule_runner, 'image_tags=["1.0", "latest"]')
    layout = OciLayout(dist / "app/image")
    image = resolve_image(layout, ref_name="1.0")
    subject = image.manifest_descriptor
    assert resolve_image(layout).manifest_descriptor == subject  # no name: still the image
    entries = layout.read_index()["manifests"]
    assert [e.get("annotations", {}).get(REF_NAME) for e in entries] == ["1.0", "latest",
                                                                        None, None, None]
    for entry, suffix, media_type, what in zip(
            entries[2:], ("spdx.json", "cdx.json"),
            ("application/spdx+json", "application/vnd.cyclonedx+json"),
            ("SPDX SBOM", "CycloneDX SBOM")):
        sbom = (dist / f"app/image.{suffix}").read_bytes()
        manifest_bytes = Path(layout.blob_path(entry["digest"])).read_bytes()
        assert entry == {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                         "digest": bytes_digest(manifest_bytes), "size": len(manifest_bytes),
                         "artifactType": media_type,
                         "annotations": {REFERRER: f"{what} of {subject.digest}"}}
        assert json.loads(manifest_bytes) == {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": media_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": bytes_digest(b"{}"), "size": 2},
            "layers": [{"mediaType": media_type, "digest": bytes_digest(sbom),
                        "size": len(sbom)}],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                        "size": subject.size},
        }
        assert Path(layout.blob_path(bytes_digest(sbom))).read_bytes() == sbom
    assert Path(layout.blob_path(bytes_digest(b"{}"))).read_bytes() == b"{}"
