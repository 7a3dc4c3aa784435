"""An oci_image's VCS annotations, read from a real git checkout of the build root."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from textwrap import dedent

from pants.engine.addresses import Address
from pants.testutil.rule_runner import RuleRunner

from ocibuild.layout import OciLayout, resolve_image
from ocibuild.platform import parse_platform
from tests.backend.conftest import build, configure

SOURCE = "org.opencontainers.image.source"
REVISION = "org.opencontainers.image.revision"
CREATED = "org.opencontainers.image.created"
BUILD = dedent("""\
    files(name="conf", sources=["app.conf"])
    oci_image(name="image", base="scratch", dependencies=[":conf"], sbom=False, provenance=False)
    oci_image(name="mine", base="scratch", dependencies=[":conf"], sbom=False, provenance=False,
              annotations={"org.opencontainers.image.source": "https://example.org/mine"})
    oci_image(name="off", base="scratch", dependencies=[":conf"], sbom=False, provenance=False,
              vcs_annotations=False)
    oci_image(name="multi", base="scratch", dependencies=[":conf"], sbom=False, provenance=False,
              platforms=["linux/amd64", "linux/arm64"])
    """)


def _git(root: str, *args: str) -> str:
    return subprocess.run(["git", "-C", root, *args], check=True, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "HOME": root,
                                          "GIT_CONFIG_NOSYSTEM": "1"}).stdout.strip()


def _checkout(runner: RuleRunner, origin: str) -> str:
    """The build root as a clean git checkout of one commit; its commit id."""
    runner.write_files({"app/BUILD": BUILD, "app/app.conf": "x = 1\n",
                        ".gitignore": "/.pants.d/\n/dist/\n/.pids/\n"})
    root = runner.build_root
    _git(root, "init", "-q")
    _git(root, "remote", "add", "origin", origin)
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "c")
    return _git(root, "rev-parse", "HEAD")


def _annotations(runner: RuleRunner, name: str, platform: str | None = None) -> dict:
    _, dist = build(runner, Address("app", target_name=name))
    layout = OciLayout(dist / "app" / name)
    image = resolve_image(layout, platform=parse_platform(platform) if platform else None)
    return image.manifest.get("annotations") or {}


def test_a_clean_checkout_annotates_source_and_revision(rule_runner: RuleRunner) -> None:
    commit = _checkout(rule_runner, "https://x-access-token:SECRET@git.example/org/repo.git")
    configure(rule_runner, extra_env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert _annotations(rule_runner, "image") == {
        SOURCE: "https://git.example/org/repo.git",
        REVISION: commit,
        CREATED: "2023-11-14T22:13:20Z",
    }
    # The target's own annotation wins; the rest still come from git.
    assert _annotations(rule_runner, "mine")[SOURCE] == "https://example.org/mine"
    assert _annotations(rule_runner, "mine")[REVISION] == commit
    assert _annotations(rule_runner, "off") == {}
    # An index and each of its images.
    _, dist = build(rule_runner, Address("app", target_name="multi"))
    layout = OciLayout(dist / "app/multi")
    (entry,) = layout.read_index()["manifests"]
    _, index = layout.read_json_blob(entry["digest"])
    assert index["annotations"][REVISION] == commit
    for platform in ("linux/amd64", "linux/arm64"):
        assert _annotations(rule_runner, "multi", platform)[REVISION] == commit
    assert "SECRET" not in "".join(p.read_text("latin-1") for p in dist.rglob("*") if p.is_file())


def test_a_dirty_tree_has_no_revision_and_no_epoch_no_created(rule_runner: RuleRunner) -> None:
    _checkout(rule_runner, "git@git.example:org/repo.git")
    Path(rule_runner.build_root, "app/app.conf").write_text("x = 2\n")
    configure(rule_runner)  # a new session, as a new run: git is asked again
    assert _annotations(rule_runner, "image") == {SOURCE: "git@git.example:org/repo.git"}


def test_an_untracked_file_makes_the_tree_dirty(rule_runner: RuleRunner) -> None:
    _checkout(rule_runner, "/srv/git/repo.git")  # a local origin: no source
    Path(rule_runner.build_root, "app/new.txt").write_text("new\n")
    configure(rule_runner)
    assert _annotations(rule_runner, "image") == {}


def test_the_oci_option_turns_them_off(rule_runner: RuleRunner) -> None:
    _checkout(rule_runner, "https://git.example/org/repo.git")
    configure(rule_runner, extra_options=("--oci-vcs-annotations=false",))
    assert _annotations(rule_runner, "image") == {}
    assert _annotations(rule_runner, "mine") == {SOURCE: "https://example.org/mine"}


def test_not_a_checkout_has_none(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"app/BUILD": BUILD, "app/app.conf": "x = 1\n"})
    assert _annotations(rule_runner, "image") == {}


def test_the_provenance_names_the_commit_of_a_clean_checkout(rule_runner: RuleRunner) -> None:
    commit = _checkout(rule_runner, "https://tok@git.example/org/repo.git")
    rule_runner.write_files({"app/BUILD": BUILD + dedent("""\
        oci_image(name="prov", base="scratch", dependencies=[":conf"], sbom=False)
        """)})
    _git(rule_runner.build_root, "-c", "user.name=t", "-c", "user.email=t@example.org",
         "commit", "-qam", "prov")
    configure(rule_runner)
    _, dist = build(rule_runner, Address("app", target_name="prov"))
    statement = json.loads((dist / "app/prov.provenance.json").read_text())
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"uri": "git+https://git.example/org/repo.git",
            "digest": {"gitCommit": _git(rule_runner.build_root, "rev-parse", "HEAD")},
            "annotations": {"role": "source-revision"}} in deps
    assert commit != _git(rule_runner.build_root, "rev-parse", "HEAD")
