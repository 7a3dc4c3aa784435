"""`./pants package ::` on the examples, as a user runs it, checked by independent tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.repo import copy_repo, run_pants
from tests.fixtures.image_checks import skopeo_inspect, umoci_unpack

EXAMPLES = ("examples.static-site/image", "examples.site-with-config/image",
            "examples.python-hello/image", "examples.python-cli/image",
            "examples.python-hello/image-multiarch", "examples.python-cli/image-files",
            "examples.ocibuild-image/image", "examples.ocibuild-image/image-debug")


def _tree_digests(dist: Path) -> dict[str, str]:
    return {
        path: json.loads((dist / f"{path}.json").read_text())["manifest_digest"] for path in EXAMPLES
    }


def _scramble(repo: Path) -> None:
    """What a different checkout looks like: other mtimes and other permission bits."""
    later = time.time() + 86400
    for path in repo.rglob("*"):
        if path.is_file() and "examples" in path.parts:
            os.utime(path, (later, later))
            path.chmod(0o600)


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy as checked out, shared by the module's tests (and its pantsd with them)."""
    return copy_repo(tmp_path_factory.mktemp("examples") / "clone-a", pantsd=True)


def test_examples_are_reproducible_and_valid(first: Path, tmp_path: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        second = copy_repo(tmp_path / "somewhere" / "else" / "clone-b")
    finally:
        os.umask(old_umask)
    _scramble(second)

    run_pants(first, "package", "::")
    # No local process cache: every layer is really rebuilt in the second clone.
    run_pants(second, "--no-local-cache", "package", "::")
    digests = _tree_digests(first / "dist")
    assert digests == _tree_digests(second / "dist")
    # And the provenance, byte for byte: nothing of the clone's path, time or user in it.
    provenances = sorted(p.relative_to(first / "dist")
                         for p in (first / "dist").glob("*/*.provenance.json"))
    assert len(provenances) == len(EXAMPLES) + 1  # image-multiarch: one per platform
    for path in provenances:
        assert (first / "dist" / path).read_bytes() == (second / "dist" / path).read_bytes()
    for path in EXAMPLES:
        for suffix in ("", ".json"):
            assert (first / "dist" / f"{path}{suffix}").exists(), path + suffix
    # A docker-archive only where the target asks for one.
    assert sorted(p.name for p in (first / "dist").glob("*/*.tar")) == ["image.tar"]
    assert (first / "dist/examples.static-site/image.tar").is_file()

    dist = first / "dist"
    static = skopeo_inspect(dist / "examples.static-site/image", "latest")
    assert static["Digest"] == digests["examples.static-site/image"]
    assert static["Architecture"] == "amd64" and static["Os"] == "linux"
    assert skopeo_inspect(dist / "examples.static-site/image", "1.0.0")["Digest"] == static["Digest"]
    chained = skopeo_inspect(dist / "examples.site-with-config/image", "latest")
    assert chained["Layers"][: len(static["Layers"])] == static["Layers"]
    assert len(chained["Layers"]) == len(static["Layers"]) + 1
    config = skopeo_inspect(dist / "examples.site-with-config/image", "latest", config=True)
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Env"] == [
        "SITE_ROOT=/srv/www",
        "SITE_CONFIG=/etc/site/config/site.conf",
    ]

    rootfs = umoci_unpack(dist / "examples.site-with-config/image", "latest", tmp_path / "bundle")
    assert (rootfs / "srv/www/index.html").read_text().startswith("<!doctype html>")
    assert "listen = 8080" in (rootfs / "etc/site/config/site.conf").read_text()


def test_reference_doc_is_generated_from_help(first: Path) -> None:
    repo = first
    help_all = run_pants(repo, "help-all").stdout
    rendered = subprocess.run(
        [sys.executable, "docs/generate_reference.py"], input=help_all, cwd=repo,
        capture_output=True, text=True, check=True,
    ).stdout
    assert rendered == (repo / "docs/reference.md").read_text(), (
        "docs/reference.md is stale: run "
        "./pants help-all | python3 docs/generate_reference.py > docs/reference.md"
    )
