"""`pants package` of an oci_image writes its SLSA provenance: real ocibuild processes, real
files, checked against the specs' structure and recomputed digests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from textwrap import dedent

import jsonschema
from pants.engine.addresses import Address
from pants.testutil.rule_runner import RuleRunner

from ocibuild.digest import bytes_digest
from ocibuild.image.referrer import REFERRER
from ocibuild.layout import OciLayout, resolve_image
from ocibuild.platform import parse_platform
from tests.backend.conftest import build, configure, debian_lock
from tests.backend.debian_packages_test import _runner as debian_runner
from tests.backend.debian_packages_test import repo  # noqa: F401 (a fixture)
from tests.fixtures.debian_repo import DebianRepo
from tests.fixtures.provenance_schema import STATEMENT_V1

IN_TOTO = "application/vnd.in-toto+json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sources_digest(root: str, paths: list[str]) -> str:
    """docs/supply-chain.md's definition, recomputed from the files themselves."""
    table = {p: "sha256:" + _sha256(Path(root, p).read_bytes()) for p in paths}
    return _sha256(json.dumps(table, sort_keys=True, separators=(",", ":")).encode())


def _write_app(runner: RuleRunner, fields: str = "") -> None:
    runner.write_files({
        "app/BUILD": dedent(f"""\
            files(name="conf", sources=["app.conf", "extra/*.txt"])
            oci_image(name="image", base="scratch", dependencies=[":conf"],
                      repository="registry.example/app", {fields})
            """),
        "app/app.conf": "x = 1\n",
        "app/extra/a.txt": "a\n",
    })


def test_the_provenance_of_an_image(rule_runner: RuleRunner) -> None:
    _write_app(rule_runner)
    package, dist = build(rule_runner, Address("app", target_name="image"))
    assert [a.relpath for a in package.artifacts] == [
        "app/image", "app/image.json", "app/image.spdx.json", "app/image.cdx.json",
        "app/image.provenance.json"]
    layout = OciLayout(dist / "app/image")
    image = resolve_image(layout, ref_name="latest")
    manifest_bytes = Path(layout.blob_path(image.manifest_descriptor.digest)).read_bytes()
    data = (dist / "app/image.provenance.json").read_bytes()
    statement = json.loads(data)
    jsonschema.validate(statement, STATEMENT_V1)
    assert statement["subject"] == [{"name": "registry.example/app",
                                     "digest": {"sha256": _sha256(manifest_bytes)}}]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["externalParameters"] == {"target": "app:image", "platform": "linux/amd64"}
    # Scratch, no lockfile, not a git checkout: the sources alone.
    assert definition["resolvedDependencies"] == [{
        "name": "sources",
        "digest": {"sha256": _sources_digest(rule_runner.build_root,
                                             ["app/app.conf", "app/extra/a.txt"])},
        "annotations": {"role": "sources", "files": 2}}]
    builder = statement["predicate"]["runDetails"]["builder"]
    assert builder["version"]["pants"] == "2.17.1"
    assert "metadata" not in statement["predicate"]["runDetails"]

    # Attached in the layout as an OCI 1.1 referrer of the image.
    (entry,) = [e for e in layout.read_index()["manifests"] if e.get("artifactType") == IN_TOTO]
    assert entry["annotations"] == {
        REFERRER: f"SLSA provenance of {image.manifest_descriptor.digest}"}
    referrer = json.loads(Path(layout.blob_path(entry["digest"])).read_bytes())
    assert referrer["subject"]["digest"] == image.manifest_descriptor.digest
    assert referrer["layers"] == [{"mediaType": IN_TOTO, "digest": bytes_digest(data),
                                   "size": len(data)}]
    assert Path(layout.blob_path(bytes_digest(data))).read_bytes() == data


def test_a_changed_source_changes_the_provenance_and_epoch_is_its_only_time(
        rule_runner: RuleRunner) -> None:
    _write_app(rule_runner)
    _, dist = build(rule_runner, Address("app", target_name="image"))
    first = (dist / "app/image.provenance.json").read_bytes()
    _, dist = build(rule_runner, Address("app", target_name="image"))
    assert (dist / "app/image.provenance.json").read_bytes() == first
    # A file that is not in the image still changes the sources digest: it is a source of
    # the target (a BUILD-visible input), and provenance says what was built from.
    rule_runner.write_files({"app/extra/a.txt": "b\n"})
    _, dist = build(rule_runner, Address("app", target_name="image"))
    second = json.loads((dist / "app/image.provenance.json").read_bytes())
    (sources,) = second["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert sources["digest"]["sha256"] == _sources_digest(
        rule_runner.build_root, ["app/app.conf", "app/extra/a.txt"])
    assert second != json.loads(first)

    configure(rule_runner, extra_env={"SOURCE_DATE_EPOCH": "1700000000"})
    _, dist = build(rule_runner, Address("app", target_name="image"))
    timed = json.loads((dist / "app/image.provenance.json").read_bytes())
    assert timed["predicate"]["runDetails"]["metadata"] == {
        "startedOn": "2023-11-14T22:13:20Z", "finishedOn": "2023-11-14T22:13:20Z"}


def test_one_per_platform_and_opt_out(rule_runner: RuleRunner) -> None:
    _write_app(rule_runner, 'platforms=["linux/amd64", "linux/arm64/v8"], sbom=False')
    package, dist = build(rule_runner, Address("app", target_name="image"))
    assert [a.relpath for a in package.artifacts][2:] == [
        "app/image.linux-amd64.provenance.json", "app/image.linux-arm64-v8.provenance.json"]
    for platform in ("linux/amd64", "linux/arm64/v8"):
        image = resolve_image(OciLayout(dist / "app/image"), ref_name="latest",
                              platform=parse_platform(platform))
        data = Path(OciLayout(dist / "app/image").blob_path(
            image.manifest_descriptor.digest)).read_bytes()
        statement = json.loads(
            (dist / f"app/image.{platform.replace('/', '-')}.provenance.json").read_text())
        jsonschema.validate(statement, STATEMENT_V1)
        assert statement["subject"][0]["digest"] == {"sha256": _sha256(data)}
        assert statement["predicate"]["buildDefinition"]["externalParameters"] == {
            "target": "app:image", "platform": platform,
            "platforms": ["linux/amd64", "linux/arm64/v8"]}

    _write_app(rule_runner, "provenance=False, sbom=False")
    package, dist = build(rule_runner, Address("app", target_name="image"))
    assert [a.relpath for a in package.artifacts] == ["app/image", "app/image.json"]
    assert [e.get("artifactType") for e in
            OciLayout(dist / "app/image").read_index()["manifests"]] == [None]


def test_a_debian_base_names_its_lockfile_and_base(rule_runner: RuleRunner,
                                                   repo: DebianRepo) -> None:  # noqa: F811
    runner = debian_runner(rule_runner, repo, ["busybox-test"])
    debian_lock(runner)
    lock = Path(runner.build_root, "img/base.lock.json").read_bytes()
    _, dist = build(runner, Address("img", target_name="image"))
    image = resolve_image(OciLayout(dist / "img/image"), ref_name="latest")
    base_digest = image.manifest["annotations"]["org.opencontainers.image.base.digest"]
    statement = json.loads((dist / "img/image.provenance.json").read_text())
    jsonschema.validate(statement, STATEMENT_V1)
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[0]["digest"] == {"sha256": base_digest.split(":")[1]}
    assert deps[0]["annotations"] == {"role": "base-image"}
    assert deps[1] == {"name": "img/base.lock.json", "digest": {"sha256": _sha256(lock)},
                       "annotations": {"role": "debian-lockfile"}}
    assert deps[2]["name"] == "sources"
