"""examples/dockerfile-app: `./pants package` builds its Dockerfile (FROM the Debian python3
base, COPY of a packaged pex_binary, a RUN, a COPY of a file), as a user runs it; the image is
checked by skopeo and umoci and run. An edit to the file only the last COPY reads re-runs no
RUN step: with `--keep-sandboxes=always` Pants names every process it really executed (a
cache hit or a memoized result executes nothing), and the RUN is not among them. `pants
publish` pushes the packaged image to a real registry on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.repo import copy_repo, run_pants
from tests.fixtures.image_checks import run_in_rootfs, skopeo_inspect, umoci_unpack
from tests.fixtures.registry import Registry, registry  # noqa: F401 (a fixture)
from tests.fixtures.tools import require

IMAGE = "examples.dockerfile-app/image"
ADDRESS = "examples/dockerfile-app:image"
_PRESERVED = re.compile(r"Preserving local process execution dir (\S+) for (.*)$", re.M)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy whose Dockerfile starts with a comment of its own: every step's key is new (the
    Dockerfile up to a step is in its key), so the first build runs them all, whatever the
    machine's Pants cache holds."""
    repo = copy_repo(tmp_path_factory.mktemp("dockerfile-app") / "repo", pantsd=True)
    dockerfile = repo / "examples/dockerfile-app/Dockerfile"
    dockerfile.write_text(f"# {uuid.uuid4().hex}\n" + dockerfile.read_text())
    return repo


def _package_executed(repo: Path) -> list[str]:
    """`./pants package` the example; the descriptions of the processes that really ran
    (their sandboxes are removed again)."""
    result = run_pants(repo, "--keep-sandboxes=always", "package", ADDRESS)
    executed = []
    for sandbox, description in _PRESERVED.findall(result.stderr):
        shutil.rmtree(sandbox.strip("`'\""), ignore_errors=True)
        executed.append(description.strip().strip("`'\""))
    return executed


def _steps(executed: list[str]) -> list[str]:
    """The Dockerfile steps among them: "RUN", "COPY", "FROM", ..., in the order run."""
    return [d.rpartition(" ")[2] for d in executed if d.startswith(f"{ADDRESS}: step ")]


def test_the_dockerfile_example_builds_runs_and_reruns_no_run_step(repo: Path,
                                                                    tmp_path: Path) -> None:
    first = _package_executed(repo)
    assert "RUN" in _steps(first), first  # the marker works: a step that ran is named
    dist = repo / "dist"
    config = skopeo_inspect(dist / IMAGE, "1.0.0", config=True)
    assert config["config"]["Entrypoint"] == ["/usr/bin/python3", "/app/app.pex"]
    assert config["config"]["User"] == "nonroot"
    rootfs = umoci_unpack(dist / IMAGE, "latest", tmp_path / "bundle")
    assert (rootfs / "etc/built-with").read_text().startswith(
        "hello from a Dockerfile, Python 3.13.")
    assert (rootfs / "etc/motd").read_text() == "Built by pants-oci from a Dockerfile.\n"
    hello = run_in_rootfs(rootfs, ["/usr/bin/python3", "/app/app.pex", "pants"],
                          env={"PEX_ROOT": "/tmp/pex"})
    assert hello.stdout.startswith("hello pants from Python 3.13.")
    layers = skopeo_inspect(dist / IMAGE, "latest")["Layers"]

    (repo / "examples/dockerfile-app/motd.txt").write_text("Edited.\n")
    second = _package_executed(repo)
    # The last COPY (and the FROM step, which reads the whole context for the base's
    # ONBUILD triggers) ran again; the pex COPY and the RUN were cache hits.
    assert _steps(second) == ["FROM", "COPY"], second
    again = skopeo_inspect(dist / IMAGE, "latest")["Layers"]
    assert again[:-1] == layers[:-1] and again[-1] != layers[-1]


def test_publish_pushes_the_packaged_dockerfile_image(repo: Path, registry: Registry) -> None:
    entry = {"address": registry.host, "default": True, "insecure": True}
    option = f"--oci-registries={{'local': {entry!r}}}"
    published = run_pants(repo, option, "publish", ADDRESS)
    run_pants(repo, "package", ADDRESS)
    digest = json.loads((repo / f"dist/{IMAGE}.json").read_text())["manifest_digest"]
    name = f"{registry.host}/examples/dockerfile-app/image"
    for tag in ("latest", "1.0.0"):
        assert f"{name}:{tag} published to {name}@{digest}" in published.stderr + published.stdout
    manifest = (repo / f"dist/{IMAGE}/blobs/sha256" / digest.split(":")[1]).read_bytes()
    pushed = subprocess.run([require("skopeo"), "inspect", "--raw", *registry.skopeo_src_flags(),
                             f"docker://{name}:1.0.0"], capture_output=True, check=True).stdout
    assert pushed == manifest
