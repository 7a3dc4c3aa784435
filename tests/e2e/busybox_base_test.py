"""Images on a real runnable base (busybox-static, vendored as an OCI layout), run daemonless."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from tests.e2e.repo import copy_repo, run_pants
from tests.fixtures.busybox import make_busybox_layout
from tests.fixtures.image_checks import (
    podman_load_and_run,
    run_in_rootfs,
    skopeo_inspect,
    skopeo_inspect_archive,
    umoci_unpack,
)
from tests.fixtures.tools import require, run

APP_BUILD = dedent(
    """\
    oci_layout(name="busybox", layout="busybox-layout")
    oci_layout(name="busybox-archive", layout="busybox.tar")

    files(name="script", sources=["hello.sh"])
    archive(name="bundle", format="tar", files=[":script"])
    python_sources(name="py")
    pex_binary(name="hello-pex", entry_point="main.py")

    oci_image(
        name="image",
        base=":busybox",
        dependencies=[":script", ":bundle", ":hello-pex"],
        entrypoint=["/bin/sh", "/app/hello.sh"],
        cmd=["world"],
        env={"GREETING": "hello"},
        workdir="/app",
        docker_archive=True,
    )

    oci_image(
        name="from-archive",
        base=":busybox-archive",
        dependencies=[":script"],
        entrypoint=["/bin/sh", "/app/hello.sh"],
    )
    """
)

HELLO = 'echo "$GREETING ${1:-nobody} from $(pwd) as $(id -u)"\n'


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy for the module's tests (and one pantsd); each test has its own directory."""
    repo = copy_repo(tmp_path_factory.mktemp("busybox") / "repo", pantsd=True)
    app = repo / "app"
    app.mkdir()
    make_busybox_layout(app / "busybox-layout", tag="latest")
    run([require("skopeo"), "copy", "oci:" + str(app / "busybox-layout") + ":latest",
         "oci-archive:" + str(app / "busybox.tar") + ":latest"])
    (app / "BUILD").write_text(APP_BUILD)
    (app / "hello.sh").write_text(HELLO)
    (app / "main.py").write_text('import sys\nprint("pex says", *sys.argv[1:])\n')
    return repo


def test_busybox_based_image_runs(repo: Path, tmp_path: Path) -> None:
    run_pants(repo, "package", "app:image", "app:from-archive")
    dist = repo / "dist"

    base = skopeo_inspect(repo / "app/busybox-layout", "latest")
    image = skopeo_inspect(dist / "app/image", "latest")
    assert image["Layers"][: len(base["Layers"])] == base["Layers"]
    assert len(image["Layers"]) == len(base["Layers"]) + 3

    rootfs = umoci_unpack(dist / "app/image", "latest", tmp_path / "bundle")
    assert sorted(p.name for p in (rootfs / "app").iterdir()) == [
        "bundle.tar", "hello-pex.pex", "hello.sh"
    ]
    # busybox has no Python: run the packaged pex as it landed in the image with this one.
    pex = run([sys.executable, str(rootfs / "app/hello-pex.pex"), "hi"], env={"PATH": "/usr/bin:/bin"})
    assert pex.stdout == "pex says hi\n"
    config = skopeo_inspect(dist / "app/image", "latest", config=True)["config"]
    argv = [*config["Entrypoint"], *config["Cmd"]]
    env = dict(item.split("=", 1) for item in config["Env"])
    result = run_in_rootfs(rootfs, argv, env=env, cwd=config["WorkingDir"])
    assert result.stdout == "hello world from /app as 0\n"

    # The docker-archive tarball is what `docker load`/`podman load` read: skopeo reads it
    # independently; the image it holds has our config and runs the same.
    assert skopeo_inspect_archive(dist / "app/image.tar", config=True)["config"] == config
    run([require("skopeo"), "copy", f"docker-archive:{dist / 'app/image.tar'}",
         f"oci:{tmp_path / 'roundtrip'}:latest"])
    loaded = umoci_unpack(tmp_path / "roundtrip", "latest", tmp_path / "bundle3")
    assert run_in_rootfs(loaded, argv, env=env, cwd="/app").stdout == "hello world from /app as 0\n"

    if os.geteuid() == 0:  # podman here needs root; unprivileged runs are covered by proot
        # `podman load` of our docker-archive, then the image's own entrypoint and cmd.
        loaded = podman_load_and_run(dist / "app/image.tar", [], tmp_path / "podman")
        assert loaded.stdout == "hello world from /app as 0\n"

    # The same image from the base vendored as an oci-archive tarball.
    other = umoci_unpack(dist / "app/from-archive", "latest", tmp_path / "bundle2")
    assert run_in_rootfs(other, ["/bin/sh", "/app/hello.sh", "tar"],
                         env={"GREETING": "hi"}).stdout == "hi tar from / as 0\n"


def test_bad_input_writes_nothing_to_dist(repo: Path) -> None:
    (repo / "bad").mkdir()
    (repo / "bad/hello.sh").write_text(HELLO)
    (repo / "bad/BUILD").write_text(dedent(
        """\
        files(name="script", sources=["hello.sh"])
        files(name="again", sources=["hello.sh"])
        oci_image(name="clash", base="//app:busybox", dependencies=[":script", ":again"])
        """
    ))
    result = run_pants(repo, "package", "bad:clash", check=False)
    assert result.returncode != 0
    assert "both write /bad/hello.sh" in result.stderr
    assert not (repo / "dist/bad").exists()

    (repo / "bad/BUILD").write_text(
        'oci_image(name="bad", base="scratch", exposed_ports=["http"])\n'
    )
    result = run_pants(repo, "package", "bad:bad", check=False)
    assert result.returncode != 0
    assert "The 'exposed_ports' field in target bad:bad: exposed port 'http'" in result.stderr
    assert not (repo / "dist/bad").exists()
