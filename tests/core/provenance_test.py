"""`ocibuild.provenance`: an in-toto Statement v1 with a SLSA Provenance v1 predicate, checked
against the two specs' structure (`tests.fixtures.provenance_schema`), not against our own
code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import pytest

from ocibuild.protocol.provenance import (
    ProvenanceBase,
    ProvenanceFile,
    ProvenanceRequest,
    ProvenanceResult,
    ProvenanceSubject,
)
from ocibuild.provenance import provenance, statement

from tests.fixtures.provenance_schema import STATEMENT_V1

from .conftest import run_ocibuild

MANIFEST = "sha256:" + "ab" * 32
BASE = "sha256:" + "cd" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _file(path: str, content: bytes, role: str | None = None) -> ProvenanceFile:
    return ProvenanceFile(path, "sha256:" + hashlib.sha256(content).hexdigest(), role)


SOURCES = (_file("app/main.py", b"print(1)\n"), _file("app/BUILD", b"pex_binary()\n"))


def request(**changes) -> ProvenanceRequest:
    fields = dict(
        subject=ProvenanceSubject(MANIFEST, "registry.example/app"),
        target="app:image",
        platform="linux/arm64/v8",
        platforms=("linux/amd64", "linux/arm64/v8"),
        base=ProvenanceBase(BASE, "docker.io/library/debian"),
        source="https://github.com/org/repo.git",
        revision=COMMIT,
        lockfiles=(_file("3rdparty/python/default.lock", b"{}", "python-lockfile"),
                   _file("base/base.lock.json", b"[]", "debian-lockfile")),
        sources=SOURCES,
        builder_version=(("ocibuild", "sha256:" + "ef" * 32), ("pants", "2.17.1")),
        epoch=None,
    )
    fields.update(changes)
    return ProvenanceRequest(**fields)


def test_the_statement_has_the_shape_of_the_specs() -> None:
    for changes in ({}, {"epoch": 1700000000}, {"base": None, "source": None, "revision": None,
                                                 "lockfiles": (), "platforms": ()}):
        jsonschema.validate(statement(request(**changes)), STATEMENT_V1,
                            format_checker=jsonschema.FormatChecker())


def test_the_schema_does_refuse_a_broken_statement() -> None:
    broken = statement(request())
    del broken["predicate"]["runDetails"]["builder"]["id"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, STATEMENT_V1)


def test_what_it_says(tmp_path: Path) -> None:
    result = provenance(request(), str(tmp_path))
    data = (tmp_path / result.path).read_bytes()
    assert result.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (result.size, result.media_type) == (len(data), "application/vnd.in-toto+json")
    doc = json.loads(data)
    assert doc["subject"] == [{"name": "registry.example/app", "digest": {"sha256": "ab" * 32}}]
    definition = doc["predicate"]["buildDefinition"]
    assert definition["externalParameters"] == {
        "target": "app:image", "platform": "linux/arm64/v8",
        "platforms": ["linux/amd64", "linux/arm64/v8"]}
    # The sources digest, recomputed independently from the files' bytes.
    table = {"app/BUILD": "sha256:" + hashlib.sha256(b"pex_binary()\n").hexdigest(),
             "app/main.py": "sha256:" + hashlib.sha256(b"print(1)\n").hexdigest()}
    sources = hashlib.sha256(json.dumps(table, sort_keys=True, separators=(",", ":")).encode())
    assert result.sources_digest == "sha256:" + sources.hexdigest()
    assert definition["resolvedDependencies"] == [
        {"name": "docker.io/library/debian", "digest": {"sha256": "cd" * 32},
         "annotations": {"role": "base-image"}},
        {"uri": "git+https://github.com/org/repo.git", "digest": {"gitCommit": COMMIT},
         "annotations": {"role": "source-revision"}},
        {"name": "3rdparty/python/default.lock",
         "digest": {"sha256": hashlib.sha256(b"{}").hexdigest()},
         "annotations": {"role": "python-lockfile"}},
        {"name": "base/base.lock.json", "digest": {"sha256": hashlib.sha256(b"[]").hexdigest()},
         "annotations": {"role": "debian-lockfile"}},
        {"name": "sources", "digest": {"sha256": sources.hexdigest()},
         "annotations": {"role": "sources", "files": 2}},
    ]
    assert doc["predicate"]["runDetails"] == {"builder": {
        "id": "https://github.com/pants-oci/pants-oci/blob/main/docs/supply-chain.md"
              "#builder-pants-oci",
        "version": {"ocibuild": "sha256:" + "ef" * 32, "pants": "2.17.1"}}}


def test_deterministic_and_only_time_is_source_date_epoch(tmp_path: Path) -> None:
    one = provenance(request(sources=tuple(reversed(SOURCES))), str(tmp_path / "a"))
    two = provenance(request(), str(tmp_path / "b"))
    assert (tmp_path / "a/provenance.json").read_bytes() == (tmp_path / "b/provenance.json").read_bytes()
    assert one == two
    timed = statement(request(epoch=1700000000))
    assert timed["predicate"]["runDetails"]["metadata"] == {
        "startedOn": "2023-11-14T22:13:20Z", "finishedOn": "2023-11-14T22:13:20Z"}
    assert timed["predicate"]["buildDefinition"]["externalParameters"]["sourceDateEpoch"] == \
        1700000000
    text = (tmp_path / "a/provenance.json").read_text()
    assert "invocationId" not in text and "startedOn" not in text


def test_a_revision_without_a_public_source_and_a_source_without_a_revision() -> None:
    deps = statement(request(source=None))["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[1] == {"name": "git", "digest": {"gitCommit": COMMIT},
                       "annotations": {"role": "source-revision"}}
    deps = statement(request(revision=None))["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert [d["annotations"]["role"] for d in deps] == [
        "base-image", "python-lockfile", "debian-lockfile", "sources"]


def test_ocibuild_run_and_its_errors(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_bytes(request().dumps())
    proc = run_ocibuild("run", "--request", "r.json", "--out-dir", "out", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    result = ProvenanceResult.from_json(json.loads(proc.stdout), "the result")
    assert result == provenance(request(), str(tmp_path / "direct"))
    assert (tmp_path / "out/provenance.json").read_bytes() == \
        (tmp_path / "direct/provenance.json").read_bytes()

    bad = request().to_json()
    bad["lockfiles"][0]["role"] = "npm-lockfile"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    proc = run_ocibuild("run", "--request", "bad.json", "--out-dir", "out2", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == (
        "ocibuild: error: the request 'bad.json': `lockfiles[0].role` must be one of "
        "debian-lockfile, python-lockfile\n")
    twice = request(sources=(*SOURCES, _file("app/main.py", b"other\n"))).to_json()
    (tmp_path / "twice.json").write_text(json.dumps(twice))
    proc = run_ocibuild("run", "--request", "twice.json", "--out-dir", "out3", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == (
        "ocibuild: error: provenance request: the source 'app/main.py' is listed twice with "
        "different digests\n")
    assert not (tmp_path / "out3").exists()
