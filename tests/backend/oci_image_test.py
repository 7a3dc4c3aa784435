"""The oci_image backend end to end through RuleRunner: real ocibuild processes, real files."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from textwrap import dedent

import pytest
from pants.core.goals.package import Package
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import RuleRunner

from ocibuild.layout import OciLayout, resolve_image
from tests.backend.conftest import build, package_error, run_goal


def _image(dist: Path, output_path: str):
    return resolve_image(OciLayout(dist / output_path), ref_name="latest")


def _layer_members(dist: Path, output_path: str, layer_digest: str) -> dict[str, tarfile.TarInfo]:
    blob = dist / output_path / "blobs" / "sha256" / layer_digest.split(":", 1)[1]
    with tarfile.open(blob, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_scratch_image_from_files_and_relocated_files(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "site/BUILD": dedent(
                """\
                files(name="raw", sources=["www/**"])
                relocated_files(name="www", files_targets=[":raw"], src="site/www", dest="srv")
                files(name="conf", sources=["app.conf"])
                oci_image(
                    name="image",
                    base="scratch",
                    dependencies=[":www", ":conf"],
                    entrypoint=["/bin/server"],
                    env={"MODE": "prod"},
                    exposed_ports=["8080"],
                    user="65532:65532",
                    workdir="/srv",
                    labels={"team": "infra"},
                    annotations={"org.opencontainers.image.version": "1.0"},
                    docker_archive=True,
                )
                """
            ),
            "site/www/index.html": "<h1>hi</h1>\n",
            "site/app.conf": "x = 1\n",
        }
    )
    package, dist = build(rule_runner, Address("site", target_name="image"))
    assert [a.relpath for a in package.artifacts] == [
        "site/image",
        "site/image.tar",
        "site/image.json",
        "site/image.spdx.json",
        "site/image.cdx.json",
        "site/image.provenance.json",
    ]
    image = _image(dist, "site/image")
    meta = json.loads((dist / "site/image.json").read_text())
    assert meta["manifest_digest"] == image.manifest_descriptor.digest
    assert image.config["architecture"] == "amd64" and image.config["os"] == "linux"
    assert image.config["config"] == {
        "Entrypoint": ["/bin/server"],
        "Env": ["MODE=prod"],
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"team": "infra"},
        "User": "65532:65532",
        "WorkingDir": "/srv",
    }
    assert [h["created_by"] for h in image.config["history"]] == [
        "pants-oci: site:www",
        "pants-oci: site:conf",
    ]
    assert image.manifest["annotations"] == {"org.opencontainers.image.version": "1.0"}
    first, second = (d.digest for d in image.layers)
    www = _layer_members(dist, "site/image", first)
    assert sorted(www) == ["srv", "srv/index.html"]
    assert (www["srv/index.html"].mode, www["srv/index.html"].uid, www["srv/index.html"].mtime) == (
        0o644,
        0,
        0,
    )
    assert sorted(_layer_members(dist, "site/image", second)) == ["site", "site/app.conf"]
    with tarfile.open(dist / "site/image.tar") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["site/image:latest"]


def test_chained_image_reuses_base_layers(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "app/BUILD": dedent(
                """\
                files(name="a", sources=["a.txt"])
                files(name="b", sources=["b.txt"])
                oci_image(name="base", base="scratch", dependencies=[":a"],
                          env={"A": "1", "B": "1"}, cmd=["/a"])
                oci_image(name="image", base=":base", dependencies=[":b"],
                          env={"B": "2", "C": "3"}, entrypoint=["/b"], platform="linux/amd64")
                """
            ),
            "app/a.txt": "a\n",
            "app/b.txt": "b\n",
        }
    )
    # The real `package` goal, which writes dist/ (where the error tests see nothing).
    result = run_goal(rule_runner, Package, ["app:base"])
    assert result.exit_code == 0, result.stderr
    assert Path(rule_runner.build_root, "dist/app/base/index.json").is_file()
    package, dist = build(rule_runner, Address("app", target_name="image"))
    # No docker_archive: no tarball.
    assert [a.relpath for a in package.artifacts] == [
        "app/image", "app/image.json", "app/image.spdx.json", "app/image.cdx.json",
        "app/image.provenance.json"]
    assert not (dist / "app/image.tar").exists()
    base = _image(dist, "app/base")
    image = _image(dist, "app/image")
    assert image.layers[0] == base.layers[0]
    assert len(image.layers) == 2
    # Env merges by name; an entrypoint set here clears the base's cmd (Dockerfile semantics).
    assert image.config["config"]["Env"] == ["A=1", "B=2", "C=3"]
    assert image.config["config"]["Entrypoint"] == ["/b"]
    assert "Cmd" not in image.config["config"]
    assert image.manifest["annotations"]["org.opencontainers.image.base.digest"] == (
        base.manifest_descriptor.digest
    )
    # Every blob the manifest names is in the layout.
    for layer in image.layers:
        assert (dist / "app/image/blobs/sha256" / layer.digest.split(":")[1]).is_file()


def _expect_error(rule_runner: RuleRunner, address: str, message: str) -> None:
    assert message in package_error(rule_runner, address)


def test_an_invalid_field_fails_as_the_build_file_is_read(rule_runner: RuleRunner) -> None:
    """Through a real BUILD file and the engine; every field's checks: target_fields_test.py."""
    rule_runner.write_files({"bad/BUILD": 'oci_image(name="image", base="scratch", '
                                          'exposed_ports=["80/xyz"])\n'})
    with pytest.raises(ExecutionError) as err:
        rule_runner.get_target(Address("bad", target_name="image"))
    assert ("The 'exposed_ports' field in target bad:image: exposed port '80/xyz': protocol "
            'must be tcp, udp or sctp, e.g. "8080/tcp"') in str(err.value)


def test_unknown_base(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"bad/BUILD": 'oci_image(name="image", base=":nope")\n'})
    _expect_error(
        rule_runner,
        "bad:image",
        "the `base` field of the oci_image bad:image: ':nope' is not a known target",
    )


def test_base_that_is_not_an_image(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "bad/BUILD": 'files(name="f", sources=["f.txt"])\noci_image(name="image", base=":f")\n',
            "bad/f.txt": "f",
        }
    )
    _expect_error(
        rule_runner,
        "bad:image",
        "the `base` field of the oci_image bad:image: bad:f is a `files` target, which is not an image.",
    )


def test_dependency_with_nothing_to_package(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {"bad/BUILD": 'target(name="t")\noci_image(name="image", base="scratch", dependencies=[":t"])\n'}
    )
    _expect_error(
        rule_runner,
        "bad:image",
        "The dependency bad:t (a `target` target) of the oci_image bad:image has nothing to put "
        "in an image.",
    )


def test_conflicting_paths(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "bad/BUILD": dedent(
                """\
                files(name="a", sources=["x/f.txt"])
                relocated_files(name="b", files_targets=[":a"], src="bad/x", dest="bad/x")
                oci_image(name="image", base="scratch", dependencies=[":a", ":b"])
                """
            ),
            "bad/x/f.txt": "f",
        }
    )
    _expect_error(
        rule_runner,
        "bad:image",
        "The dependencies bad:a and bad:b of the oci_image bad:image both write /bad/x/f.txt.",
    )


def test_image_as_dependency(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "bad/BUILD": dedent(
                """\
                oci_image(name="base", base="scratch")
                oci_image(name="image", base="scratch", dependencies=[":base"])
                """
            ),
        }
    )
    _expect_error(
        rule_runner,
        "bad:image",
        'Images do not nest: to build on it, set `base="bad:base"` instead.',
    )
