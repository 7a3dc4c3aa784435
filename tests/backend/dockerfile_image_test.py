"""oci_dockerfile_image through RuleRunner: real ocibuild processes on a vendored busybox
layout. The context is laid out as Pants' docker_image lays it out; each RUN is its own cached
process, so a change to a file only the last COPY reads re-runs no RUN (each RUN writes
$RANDOM into its layer: a re-run would change that layer's digest)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from textwrap import dedent

import pytest
from pants.core.goals.package import Package
from pants.testutil.rule_runner import RuleRunner

from ocibuild.layout import OciLayout, resolve_image
from tests.backend.conftest import configure, package_error, reset, run_goal
from tests.fixtures.registry import Registry, registry  # noqa: F401 (a fixture)
from tests.fixtures.registry_images import push_multi_platform
from tests.fixtures.busybox import make_busybox_layout

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="RUN pins the root mechanism here")

BUILD = dedent(
    """\
    oci_layout(name="busybox", layout="busybox-layout")
    files(name="conf", sources=["conf/*"])
    files(name="extra", sources=["extra.conf"])
    files(name="last", sources=["last.txt"])
    archive(name="bundle", format="tar", files=[":conf"])
    oci_dockerfile_image(
        name="image",
        dependencies=[":busybox", ":bundle", ":extra", ":last"],
        extra_build_args=["GREETING=hi", "UNSET_IN_ENV"],
        image_tags=["latest", "1.0"],
    )
    oci_dockerfile_image(
        name="rooted",
        source="Dockerfile.rooted",
        dependencies=[":busybox", ":conf"],
        context_root="./conf",
    )
    """
)

DOCKERFILE = """\
ARG BASE=:busybox
FROM $BASE
ARG GREETING=hello
COPY img/bundle.tar /opt/
RUN echo "$GREETING $RANDOM$RANDOM$RANDOM" > /random-1
COPY img/extra.conf /etc/a.conf
RUN cat /etc/a.conf > /copied && echo $RANDOM$RANDOM$RANDOM > /random-2
COPY img/last.txt /last.txt
CMD ["/bin/sh"]
"""


@pytest.fixture
def rule_runner(shared_rule_runner: RuleRunner) -> RuleRunner:
    runner = reset(shared_rule_runner)
    runner.write_files({
        "img/BUILD": BUILD, "img/Dockerfile": DOCKERFILE,
        "img/Dockerfile.rooted": "FROM img:busybox\nCOPY a.conf /a.conf\n",
        "img/conf/a.conf": "a = 1\n", "img/conf/b.conf": "b = 2\n", "img/last.txt": "last 1\n",
        "img/extra.conf": "extra = 1\n",
    })
    make_busybox_layout(Path(runner.build_root, "img/busybox-layout"))
    return runner


def _package(runner: RuleRunner, name: str = "image") -> Path:
    """`pants package img:NAME`, the real goal: dist/ as a user sees it."""
    result = run_goal(runner, Package, [f"img:{name}"])
    assert result.exit_code == 0, result.stderr
    return Path(runner.build_root, "dist")


def _files(dist: Path, output: str, digest: str) -> dict[str, bytes]:
    blob = dist / output / "blobs/sha256" / digest.split(":", 1)[1]
    with tarfile.open(blob) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_package_builds_the_dockerfile_with_the_docker_context(rule_runner: RuleRunner) -> None:
    dist = _package(rule_runner)
    assert sorted(p.name for p in (dist / "img").iterdir()) == ["image", "image.json"]
    image = resolve_image(OciLayout(dist / "img/image"), ref_name="1.0")
    meta = json.loads((dist / "img/image.json").read_text())
    assert meta["manifest_digest"] == image.manifest_descriptor.digest
    assert meta["ref_names"] == ["latest", "1.0"]
    base = resolve_image(OciLayout(Path(rule_runner.build_root, "img/busybox-layout")),
                         ref_name="latest")
    assert [x.digest for x in image.layers[:len(base.layers)]] == \
        [x.digest for x in base.layers]
    bundle, run1, conf, run2, last = image.layers[len(base.layers):]
    # The archive package at its output path, under the build root's context.
    with tarfile.open(fileobj=io.BytesIO(
            _files(dist, "img/image", bundle.digest)["opt/bundle.tar"])) as inner:
        assert sorted(inner.getnames()) == ["img/conf/a.conf", "img/conf/b.conf"]
    assert _files(dist, "img/image", run1.digest)["random-1"].startswith(b"hi ")
    assert _files(dist, "img/image", conf.digest) == {"etc/a.conf": b"extra = 1\n"}
    assert _files(dist, "img/image", run2.digest)["copied"] == b"extra = 1\n"
    assert _files(dist, "img/image", last.digest) == {"last.txt": b"last 1\n"}
    assert [h["created_by"] for h in image.config["history"][-7:]] == [
        "ARG GREETING=hi",
        "COPY img/bundle.tar /opt/",
        'RUN |1 GREETING=hi /bin/sh -c echo "$GREETING $RANDOM$RANDOM$RANDOM" > /random-1',
        "COPY img/extra.conf /etc/a.conf",
        "RUN |1 GREETING=hi /bin/sh -c cat /etc/a.conf > /copied && echo "
        "$RANDOM$RANDOM$RANDOM > /random-2",
        "COPY img/last.txt /last.txt",
        'CMD ["/bin/sh"]',
    ]
    assert image.manifest["annotations"]["org.opencontainers.image.base.name"] == "img:busybox"


def test_a_late_copy_change_reruns_no_run_step(rule_runner: RuleRunner) -> None:
    dist = _package(rule_runner)
    first = resolve_image(OciLayout(dist / "img/image"), ref_name="latest")
    rule_runner.write_files({"img/last.txt": "last 2\n"})
    dist = _package(rule_runner)
    second = resolve_image(OciLayout(dist / "img/image"), ref_name="latest")
    # Every layer but the last COPY's is the same: the RUN steps' $RANDOM were not re-drawn.
    assert [x.digest for x in first.layers[:-1]] == [x.digest for x in second.layers[:-1]]
    assert first.layers[-1].digest != second.layers[-1].digest
    assert _files(dist, "img/image", second.layers[-1].digest) == {"last.txt": b"last 2\n"}
    # A file the second COPY reads: the RUN after it runs again, the one before does not.
    rule_runner.write_files({"img/extra.conf": "extra = 2\n"})
    dist = _package(rule_runner)
    third = resolve_image(OciLayout(dist / "img/image"), ref_name="latest")
    n = len(first.layers) - 5
    assert [x.digest for x in third.layers[:n + 2]] == [x.digest for x in first.layers[:n + 2]]
    assert third.layers[n + 3].digest != first.layers[n + 3].digest  # RUN 2 ran again


def test_context_root_relative_to_the_build_file(rule_runner: RuleRunner) -> None:
    dist = _package(rule_runner, "rooted")
    image = resolve_image(OciLayout(dist / "img/rooted"), ref_name="latest")
    assert _files(dist, "img/rooted", image.layers[-1].digest) == {"a.conf": b"a = 1\n"}


def test_a_from_image_no_dependency_provides_is_an_error(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"img/Dockerfile.rooted": "FROM python:3.12\n"})
    assert ("The Dockerfile img/Dockerfile.rooted names the image 'python:3.12', which no "
            "dependency of img:rooted provides. Add to its `dependencies` an "
            "`oci_pull(image=\"python:3.12\", digest=\"sha256:...\")` target (`pants oci-pin` "
            "writes the digest), or the address of an image target (`ARG BASE=//images:base` "
            "then `FROM $BASE`).") in package_error(rule_runner, "img:rooted")


def test_a_failing_run_names_the_dockerfile_line(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"img/Dockerfile.rooted": "FROM img:busybox\nRUN exit 3\n"})
    assert ("Error building img:rooted (step 2/2: img/Dockerfile.rooted line 2, RUN): "
            "img/Dockerfile.rooted:2: RUN: the command /bin/sh -c exit 3 failed with exit "
            "code 3 (its output is above, on stderr)") in package_error(rule_runner, "img:rooted")


def test_a_from_reference_is_the_oci_pull_of_that_image_pinned_by_digest(
        rule_runner: RuleRunner, registry: Registry, tmp_path: Path) -> None:
    digests = push_multi_platform(registry, tmp_path, "base/multi")
    option = f"--oci-registries={ {'local': {'address': registry.host, 'insecure': True}} !r}"
    configure(rule_runner, (option,))
    ref = f"{registry.host}/base/multi"
    rule_runner.write_files({
        "pulled/BUILD": dedent(f"""\
            oci_pull(name="multi", image="{ref}:1.0", digest="{digests['index']}")
            files(name="f", sources=["f.txt"])
            oci_dockerfile_image(name="image", dependencies=[":multi", ":f"],
                                 platform="linux/arm64")
            """),
        # By tag (the pin's), and by the pinned digest for COPY --from.
        "pulled/Dockerfile": (f"FROM {ref}:1.0\nCOPY pulled/f.txt /f.txt\n"
                              f"COPY --from={ref}@{digests['index']} /etc/marker /again\n"),
        "pulled/f.txt": "f\n",
    })
    result = run_goal(rule_runner, Package, ["pulled:image"])
    assert result.exit_code == 0, result.stderr
    dist = Path(rule_runner.build_root, "dist")
    image = resolve_image(OciLayout(dist / "pulled/image"), ref_name="latest")
    assert image.config["architecture"] == "arm64"
    assert image.config["config"]["Env"] == [  # docker gives every stage a PATH
        "MARKER=arm64", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    base = OciLayout(tmp_path / "multi").read_blob_json(digests["arm64"])
    assert image.layers[0].digest == base["layers"][0]["digest"]
    assert image.manifest["annotations"]["org.opencontainers.image.base.digest"] == \
        digests["arm64"]
    assert _files(dist, "pulled/image", image.layers[-1].digest) == {"again": b"arm64"}
