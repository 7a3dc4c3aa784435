"""Repository and tag templates: placeholders, build args, per-registry names."""

from __future__ import annotations

import json
from textwrap import dedent

import pytest
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import RuleRunner

from pants_oci.subsystems.oci import Registry
from pants_oci.util_rules.image_names import (
    ImageNameError,
    ImageNames,
    interpolate,
    template_values,
)
from tests.backend.conftest import build, configure

VALUES = template_values(Address("services/api", target_name="image"), {"GIT_SHA": "abc123"})


def test_placeholders() -> None:
    assert VALUES == {"name": "image", "directory": "api", "parent_directory": "services",
                      "build_args.GIT_SHA": "abc123"}
    assert interpolate("{parent_directory}/{directory}:{build_args.GIT_SHA}", VALUES, "w") == \
        "services/api:abc123"


def test_unknown_placeholder_says_what_to_do() -> None:
    with pytest.raises(ImageNameError, match=r"w: unknown placeholder \{build_args.TAG\} in "
                                             r"'\{build_args.TAG\}'; list 'TAG' in \[oci\].build_args"):
        interpolate("{build_args.TAG}", VALUES, "w")


def test_per_registry_repository_and_extra_tags() -> None:
    names = ImageNames("services/api/image", ("1.0",), tuple(sorted(VALUES.items())))
    mirror = Registry("m", "mirror.io", repository="mirror/{default_repository}",
                      extra_image_tags=("ci-{build_args.GIT_SHA}", "1.0"))
    assert names.for_registry(mirror, "where") == ImageNames(
        "mirror/services/api/image", ("1.0", "ci-abc123"), names.values)
    bad = Registry("b", "b.io", extra_image_tags=("{nope}",))
    with pytest.raises(ImageNameError, match=r"where: unknown placeholder \{nope\}"):
        names.for_registry(bad, "where")


def _runner(runner: RuleRunner, env: dict) -> RuleRunner:
    configure(runner, ("--oci-build-args=['GIT_SHA', 'CHANNEL=stable']",), env)
    runner.write_files({
        "svc/BUILD": dedent("""\
            files(name="f", sources=["f.txt"])
            oci_image(name="image", base="scratch", dependencies=[":f"],
                      repository="team/{directory}", image_tags=["{build_args.GIT_SHA}",
                      "{build_args.CHANNEL}"])
            oci_image(name="bad", base="scratch", dependencies=[":f"],
                      image_tags=["{build_args.UNLISTED}"])
            """),
        "svc/f.txt": "f\n",
    })
    return runner


def test_templates_in_a_build(rule_runner: RuleRunner) -> None:
    runner = _runner(rule_runner, {"GIT_SHA": "0a1b2c3"})
    _, dist = build(runner, Address("svc", target_name="image"))
    meta = json.loads((dist / "svc/image.json").read_text())
    assert (meta["repository"], meta["ref_names"]) == ("team/svc", ["0a1b2c3", "stable"])
    with pytest.raises(ExecutionError, match=r"The 'image_tags' field of svc:bad: unknown "
                                             r"placeholder \{build_args.UNLISTED\}"):
        build(runner, Address("svc", target_name="bad"))
