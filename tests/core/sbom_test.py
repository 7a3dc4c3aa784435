"""ocibuild.sbom: SBOMs from the real python-base Debian lockfile and the python-cli PEX-INFO,
checked by validators written by others (spdx-tools; cyclonedx-python-lib's JSON schema)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Dict, List

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from spdx_tools.spdx.model import ChecksumAlgorithm
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from ocibuild.errors import OciBuildError
from ocibuild.protocol.sbom import (SbomArtifact, SbomBase, SbomImage, SbomPex, SbomRequest,
                                    SbomResult)
from ocibuild.sbom import cyclonedx, identity, pex_info, purl, spdx
from ocibuild.sbom.build import inventory, sbom

from .conftest import run_ocibuild

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_LOCK = ROOT / "examples/python-base/python-base.lock.json"
FIXTURES = Path(__file__).resolve().parent / "sbom_fixtures"
# The PEX-INFO of `pants package examples/python-cli:app`, and the lockfile it was built from.
PEX_INFO = FIXTURES / "python-cli.PEX-INFO"
PYTHON_LOCK = FIXTURES / "examples.lock"
IMAGE = "sha256:" + "1" * 64
BASE = "sha256:" + "2" * 64
APP = "sha256:" + "3" * 64
EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
CLICK_WHEEL_SHA256 = "ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28"


def request(**changes) -> SbomRequest:
    values = dict(
        image=SbomImage(IMAGE, "linux/amd64", "registry.example/python-cli", ("1.0", "latest")),
        base=SbomBase(BASE, "registry.example/python-base"),
        debian_lockfiles=(str(DEBIAN_LOCK),),
        pexes=(SbomPex(str(PEX_INFO), str(PYTHON_LOCK)),),
        artifacts=(SbomArtifact("examples/python-cli:app", APP),
                   # Two files of one target with the same (empty) content: two entries.
                   SbomArtifact("examples/python-cli:lib", EMPTY, "/app/src/greet/__init__.py"),
                   SbomArtifact("examples/python-cli:lib", EMPTY, "/app/src/__init__.py")))
    return SbomRequest(**{**values, **changes})


def locked_debs(arch: str = "amd64") -> List[dict]:
    return json.loads(DEBIAN_LOCK.read_text())["packages"][arch]


def pex_wheels() -> Dict[str, str]:
    return json.loads(PEX_INFO.read_text())["distributions"]


def written(tmp_path: Path, req: SbomRequest) -> SbomResult:
    return sbom(req, str(tmp_path))


def test_spdx_is_valid_and_names_every_locked_deb_and_wheel_with_its_sha256(
        tmp_path: Path) -> None:
    written(tmp_path, request())
    document = parse_file(str(tmp_path / "sbom.spdx.json"))
    assert validate_full_spdx_document(document) == []
    by_name = {p.name: p for p in document.packages}
    assert len(document.packages) == 2 + len(locked_debs()) + len(pex_wheels()) + 3
    for deb in locked_debs():
        package = by_name[deb["name"]]
        assert package.version == deb["version"]
        assert [(c.algorithm, c.value) for c in package.checksums] == [
            (ChecksumAlgorithm.SHA256, deb["sha256"])]
        (ref,) = package.external_references
        assert (ref.reference_type, PackageURL.from_string(ref.locator).to_dict()) == (
            "purl", {"type": "deb", "namespace": "debian", "name": deb["name"],
                     "version": deb["version"], "subpath": None,
                     "qualifiers": {"arch": deb["architecture"], "distro": "debian-trixie"}})
        assert package.download_location == deb["url"]
    click = by_name["click"]
    assert ([(c.algorithm, c.value) for c in click.checksums], click.file_name,
            click.external_references[0].locator) == (
        [(ChecksumAlgorithm.SHA256, CLICK_WHEEL_SHA256)], "click-8.1.7-py3-none-any.whl",
        "pkg:pypi/click@8.1.7")
    files = [p for p in document.packages if p.name == "examples/python-cli:lib"]
    assert [(p.file_name, p.version, p.checksums[0].value) for p in files] == [
        ("/app/src/__init__.py", EMPTY, EMPTY[7:]),
        ("/app/src/greet/__init__.py", EMPTY, EMPTY[7:])]
    assert by_name["examples/python-cli:app"].file_name is None  # no path given
    image = by_name["registry.example/python-cli"]
    contained = {r.related_spdx_element_id for r in document.relationships
                 if r.spdx_element_id == image.spdx_id and r.relationship_type.name == "CONTAINS"}
    assert len(contained) == len(document.packages) - 2


def test_cyclonedx_is_valid_and_names_every_locked_deb_and_wheel_with_its_sha256(
        tmp_path: Path) -> None:
    written(tmp_path, request())
    text = (tmp_path / "sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    components = {c["name"]: c for c in bom["components"]}
    assert len(bom["components"]) == len(locked_debs()) + len(pex_wheels()) + 3
    files = [c for c in bom["components"] if c["name"] == "examples/python-cli:lib"]
    assert [(c["type"], c["properties"]) for c in files] == [
        ("file", [{"name": "oci:path", "value": "/app/src/__init__.py"},
                  {"name": "pants:address", "value": "examples/python-cli:lib"}]),
        ("file", [{"name": "oci:path", "value": "/app/src/greet/__init__.py"},
                  {"name": "pants:address", "value": "examples/python-cli:lib"}])]
    for deb in locked_debs():
        component = components[deb["name"]]
        assert (component["version"], component["hashes"], component["purl"]) == (
            deb["version"], [{"alg": "SHA-256", "content": deb["sha256"]}],
            PackageURL(type="deb", namespace="debian", name=deb["name"],
                       version=deb["version"], qualifiers={
                           "arch": deb["architecture"], "distro": "debian-trixie"}).to_string())
    for wheel, fingerprint in pex_wheels().items():
        component = components[wheel.split("-")[0]]
        assert component["hashes"] == [{"alg": "SHA-256", "content": CLICK_WHEEL_SHA256}]
        # pex's fingerprint hashes the installed files, not the wheel: a property, no hash.
        assert {"name": "pex:fingerprint", "value": fingerprint} in component["properties"]
    subject = bom["metadata"]["component"]
    assert (subject["type"], subject["version"], subject["pedigree"]["ancestors"][0]["version"],
            bom["dependencies"][0]["dependsOn"]) == (
        "container", IMAGE, BASE, [c["bom-ref"] for c in bom["components"]])


def test_the_validators_refuse_a_broken_document(tmp_path: Path) -> None:
    """The two checks above can fail: a hash of the wrong length is refused by both."""
    written(tmp_path, request())
    bom = json.loads((tmp_path / "sbom.cdx.json").read_text())
    bom["components"][0]["hashes"][0]["content"] = "abc"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is not None
    doc = json.loads((tmp_path / "sbom.spdx.json").read_text())
    doc["packages"][2]["checksums"][0]["checksumValue"] = "abc"
    (tmp_path / "broken.spdx.json").write_text(json.dumps(doc))
    assert validate_full_spdx_document(parse_file(str(tmp_path / "broken.spdx.json"))) != []


def test_same_inputs_same_bytes_and_the_epoch_changes_only_the_timestamps(
        tmp_path: Path) -> None:
    first, again = written(tmp_path / "a", request()), written(tmp_path / "b", request())
    later = written(tmp_path / "c", request(epoch=1700000000))
    assert first == again and first.files != later.files
    for name, where in (("sbom.spdx.json", ("creationInfo", "created")),
                        ("sbom.cdx.json", ("metadata", "timestamp"))):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        docs = [json.loads((tmp_path / d / name).read_text()) for d in "ac"]
        times = [doc[where[0]].pop(where[1]) for doc in docs]
        assert times == ["1970-01-01T00:00:00Z", "2023-11-14T22:13:20Z"]
        assert docs[0] == docs[1]


def test_the_document_identity_is_derived_from_the_manifest_digest(tmp_path: Path) -> None:
    expected = f"urn:uuid:{uuid.uuid5(uuid.UUID('6c0f1d2e-5a43-5b7e-9b1c-0c1b5e0d5a11'), IMAGE)}"
    found = inventory(request())
    assert (json.loads(spdx.dumps(found))["documentNamespace"],
            json.loads(cyclonedx.dumps(found))["serialNumber"]) == (expected, expected)
    other = inventory(request(image=SbomImage("sha256:" + "4" * 64, "linux/amd64")))
    assert json.loads(cyclonedx.dumps(other))["serialNumber"] != expected


def test_inventory_is_sorted_and_reads_the_requested_architecture() -> None:
    amd64 = inventory(request())
    arm64 = inventory(request(image=SbomImage(IMAGE, "linux/arm64/v8")))
    assert [p.name for p in amd64.debian] == sorted(d["name"] for d in locked_debs())
    assert {p.architecture for p in arm64.debian} == {"arm64", "all"}
    assert [(p.name, p.sha256) for p in arm64.debian] == [
        (d["name"], d["sha256"]) for d in sorted(locked_debs("arm64"), key=lambda d: d["name"])]
    # The same lockfile and PEX listed twice: each package once.
    twice = inventory(request(debian_lockfiles=(str(DEBIAN_LOCK),) * 2,
                              pexes=request().pexes * 2))
    assert (twice.debian, twice.python) == (amd64.debian, amd64.python)


def test_a_pex_without_its_lockfile_has_no_wheel_hash() -> None:
    found = inventory(request(pexes=(SbomPex(str(PEX_INFO)),)))
    (click,) = found.python
    assert (click.name, click.version, click.wheel, click.sha256) == (
        "click", "8.1.7", "click-8.1.7-py3-none-any.whl", None)
    bom = json.loads(cyclonedx.dumps(found))
    assert "hashes" not in next(c for c in bom["components"] if c["name"] == "click")


@pytest.mark.parametrize("version", ["20250419+deb13u1", "1:2.3~rc1-4", "3.13.5-2"])
def test_deb_purls_are_what_packageurl_python_writes(version: str) -> None:
    assert purl.deb("libstdc++6", version, "amd64", "trixie-security") == PackageURL(
        type="deb", namespace="debian", name="libstdc++6", version=version,
        qualifiers={"arch": "amd64", "distro": "debian-trixie"}).to_string()


def test_pypi_purl_and_spdx_ids_of_awkward_names() -> None:
    assert purl.pypi("Typing_Extensions", "4.3.0") == "pkg:pypi/typing-extensions@4.3.0"
    assert identity.ref("deb", "libstdc++6", "amd64", "1") == "deb-libstdc--6-" + \
        identity.ref("deb", "libstdc++6", "amd64", "1")[-12:]
    assert identity.ref("deb", "a", "1") != identity.ref("deb", "a", "2")


def test_bad_inputs_are_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "PEX-INFO").write_text('{"distributions": {"not-a-wheel": "ab"}}')
    with pytest.raises(OciBuildError) as err:
        inventory(request(pexes=(SbomPex(str(tmp_path)),)))
    assert str(err.value) == (
        f"the PEX-INFO of {str(tmp_path)!r}: `distributions` entry 'not-a-wheel' is not a "
        "wheel file name with a fingerprint; rebuild the PEX")
    with pytest.raises(OciBuildError) as err:
        inventory(request(image=SbomImage(IMAGE, "linux/s390x")))
    assert str(err.value) == (
        f"the Debian lockfile {str(DEBIAN_LOCK)!r} has no packages for the s390x architecture "
        "(it has amd64, arm64); add it to `architectures` and lock again")
    with pytest.raises(OciBuildError) as err:
        pex_info.read_pex_info(b"[]", "x")
    assert str(err.value) == "x must be a JSON object, not array"


def test_ocibuild_run_writes_the_files_the_result_names(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_bytes(request().dumps())
    proc = run_ocibuild("run", "--request", "r.json", "--out-dir", "out", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    result = SbomResult.from_json(json.loads(proc.stdout), "the result")
    assert result == written(tmp_path / "direct", request())
    assert (result.debian_packages, result.python_distributions, result.artifacts) == (
        len(locked_debs()), 1, 3)
    assert [(f.format, f.path, f.media_type) for f in result.files] == [
        ("spdx", "sbom.spdx.json", "application/spdx+json"),
        ("cyclonedx", "sbom.cdx.json", "application/vnd.cyclonedx+json")]
    bad = {**request().to_json(), "formats": ["swid"]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    proc = run_ocibuild("run", "--request", "bad.json", "--out-dir", "out", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == (
        "ocibuild: error: the request 'bad.json': `formats` must list some of spdx, cyclonedx, "
        "each once, e.g. [\"spdx\"]\n")
