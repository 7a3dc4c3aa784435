"""The image of ocibuild itself (examples/ocibuild-image), built by `./pants package`, run in
docker.io's daemon as a locked-down pod runs it, building a Dockerfile with RUN steps and
pushing it to a plain-HTTP registry; the result equals `docker build` of the same Dockerfile,
path by path and on the config.

Two runs, each as docs/kubernetes.md's Job would be, in docker flags:
* `--user 65534:65534 --network host`, docker's default seccomp profile, no capability
  added: the profile refuses user namespaces and mount to a user without CAP_SYS_ADMIN, so
  the RUN steps must run through proot (checked: the report says proot, and the container
  itself is refused `unshare(CLONE_NEWUSER)`);
* the Job's securityContext: the same plus `--read-only` (readOnlyRootFilesystem), a tmpfs
  at /tmp (the Job's emptyDir work dir), `--cap-drop ALL`, `--security-opt
  no-new-privileges` (allowPrivilegeEscalation: false), the Dockerfile from a ConfigMap as
  kubelet mounts one (symlinks into `..data`), `--insecure-registry` for the one plain-HTTP
  host and kaniko's `--digest-file=/dev/termination-log` (a file bind-mounted into /dev); it
  gives the same image digest, and writes it there.
And the `:debug` variant runs a GitLab CI job's script (/bin/sh, kaniko's arguments).

The base is Debian trixie with coreutils (tests/core/rootfs_base.py), so the steps' chown
and chmod are dynamically linked and fakeroot records them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from tests.core.rootfs_base import debian_full_layers
from tests.e2e.dockerfile_compare import Docker, dockerd
from tests.e2e.dockerfile_docker_test import _config, _flatten, _same, _write
from tests.e2e.repo import copy_repo, run_pants
from tests.fixtures.registry import start_registry
from tests.fixtures.tools import require, run

IMAGE, DEBUG = "ocibuild-selfimage:test", "ocibuild-selfimage:debug"
DIST = "dist/examples.ocibuild-image"
NOBODY = "65534:65534"
# The Job of docs/kubernetes.md, as docker run flags (its securityContext and volumes).
POD_FLAGS = ("--user", NOBODY, "--network", "host")
JOB_FLAGS = POD_FLAGS + ("--read-only", "--tmpfs", "/tmp:rw,exec,nosuid,nodev,size=1g",
                         "--cap-drop", "ALL", "--security-opt", "no-new-privileges")

DOCKERFILE = """\
FROM BASE_IMAGE
COPY app/ /opt/app/
RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && \\
    echo 'app:x:1000:' >> /etc/group && mkdir -p /home/app /opt/data && \\
    echo data > /opt/data/file && chown -R app:app /home/app /opt/data && \\
    chmod 0750 /opt/data && chown 1000:0 /opt/app/run.sh && chmod 4755 /opt/app/run.sh
RUN rm /opt/app/old.txt /etc/issue.net && rm -r /usr/share/doc/bash && \\
    ln -s /opt/data/file /opt/link && mkdir /opt/gone && touch /opt/gone/x && rm -r /opt/gone
USER app
WORKDIR /home/app
RUN echo mine > mine.txt && id -u > uid.txt && mkdir sub && chmod 700 sub
"""
CONTEXT: Dict[str, object] = {"app/run.sh": (b"#!/bin/sh\necho run\n", 0o755),
                              "app/old.txt": "old\n", "app/keep.txt": "keep\n"}
EXPECT = {
    "opt/app/run.sh": ("file", "0o4755", 1000, 0, ""),
    "opt/app/keep.txt": ("file", "0o644", 0, 0, ""),
    "opt/app/old.txt": ("absent",),
    "opt/data": ("dir", "0o750", 1000, 1000, ""),
    "opt/data/file": ("file", "0o644", 1000, 1000, ""),
    "opt/link": ("symlink", "0o777", 0, 0, "/opt/data/file"),
    "opt/gone": ("absent",),
    "etc/issue.net": ("absent",),
    "usr/share/doc/bash": ("absent",),
    "home/app/mine.txt": ("file", "0o644", 1000, 1000, ""),
    "home/app/sub": ("dir", "0o700", 1000, 1000, ""),
}


@pytest.fixture(scope="module")
def docker(tmp_path_factory) -> Iterator[Docker]:
    with dockerd(tmp_path_factory.mktemp("dockerd")) as client:
        yield client


@pytest.fixture(scope="module")
def images(tmp_path_factory, docker: Docker) -> Tuple[str, str]:
    """`./pants package` of the image and its debug variant in a copy of the repository,
    loaded into the daemon (skopeo: OCI layout -> docker-archive)."""
    repo = copy_repo(tmp_path_factory.mktemp("selfimage") / "repo")
    run_pants(repo, "package", "examples/ocibuild-image:image",
              "examples/ocibuild-image:image-debug")
    for name, tag in (("image", IMAGE), ("image-debug", DEBUG)):
        archive = repo / "dist" / f"{name}.tar"
        run([require("skopeo"), "copy", f"oci:{repo / DIST / name}:latest",
             f"docker-archive:{archive}:{tag}"])
        docker("load", "-i", str(archive))
    return IMAGE, DEBUG


@pytest.fixture(scope="module")
def image(images: Tuple[str, str]) -> str:
    return images[0]


def _layout(layers: List[Tuple[str, str]], dest: Path) -> Path:
    """An OCI layout of uncompressed layers, to push with skopeo."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    descriptors = []
    for path, media_type in layers:
        descriptors.append(blob(Path(path).read_bytes(), media_type))
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]},
              "history": [{"created": "1970-01-01T00:00:00Z"} for _ in descriptors]}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": blob(json.dumps(config).encode(),
                               "application/vnd.oci.image.config.v1+json"),
                "layers": descriptors}
    top = blob(json.dumps(manifest).encode(), manifest["mediaType"])
    top["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return dest


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[Tuple[str, str]]:
    """A plain-HTTP registry on 127.0.0.1 holding the Debian base: (host, base reference)."""
    root = tmp_path_factory.mktemp("registry")
    with start_registry(root / "registry") as reg:
        layers_dir = root / "layers"
        layers_dir.mkdir()
        layout = _layout(debian_full_layers(layers_dir), root / "debian")
        run([require("skopeo"), "copy", "--dest-tls-verify=false", f"oci:{layout}:latest",
             f"docker://{reg.host}/debian:trixie"])
        yield reg.host, f"{reg.host}/debian:trixie"


def _context(dockerfile: str, base: str) -> Path:
    """The build context, readable by uid 65534 (pytest's temp dirs are root's alone)."""
    ctx = Path(tempfile.mkdtemp(prefix="ocibuild-selfimage-ctx-"))
    _write(ctx, CONTEXT)
    (ctx / "Dockerfile").write_text(dockerfile.replace("BASE_IMAGE", base))
    for path in [ctx, *ctx.rglob("*")]:
        path.chmod(path.stat().st_mode | (0o755 if path.is_dir() else 0o444))
    return ctx


def _config_map(dockerfile: str, base: str) -> Path:
    """The Dockerfile as kubelet mounts a ConfigMap key: `Dockerfile -> ..data/Dockerfile`,
    `..data -> ..TIMESTAMP/` (its atomic writer's layout)."""
    mount = Path(tempfile.mkdtemp(prefix="ocibuild-selfimage-cm-"))
    stamp = mount / "..2026_01_01_00_00_00.000000001"
    stamp.mkdir()
    (stamp / "Dockerfile").write_text(dockerfile.replace("BASE_IMAGE", base))
    os.symlink(stamp.name, mount / "..data")
    os.symlink("..data/Dockerfile", mount / "Dockerfile")
    for path in (mount, stamp, stamp / "Dockerfile"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return mount


def _build_in_container(docker: Docker, image: str, ctx: Path, flags: Tuple[str, ...],
                        destination: str, mounts: Tuple[str, ...] = (),
                        args: Tuple[str, ...] = ("--dockerfile=Dockerfile", "--insecure",
                                                 "--insecure-pull")) -> dict:
    done = docker("run", "--rm", *flags, "-v", f"{ctx}:/workspace:ro", *mounts, image,
                  "build", *args, "--context=dir:///workspace",
                  f"--destination={destination}", "--json")
    result = json.loads(done.stdout)
    assert [s["mechanism"] for s in result["run_steps"]] == ["proot"] * 3, done.stderr
    assert {s["ownership"] for s in result["run_steps"]} == {"fakeroot"}
    assert "ran with mechanism proot" in done.stderr
    return result


def test_the_image_builds_a_dockerfile_in_a_locked_down_container_as_docker_does(
        docker: Docker, image: str, registry, tmp_path: Path) -> None:
    host, base = registry
    ctx = _context(DOCKERFILE, base)
    config_map = _config_map(DOCKERFILE, base)
    # kubelet's /dev/termination-log: a file bind-mounted into the container's /dev.
    termination_log = config_map.parent / f"{config_map.name}-termination-log"
    termination_log.write_text("")
    termination_log.chmod(0o666)
    try:
        ours = _build_in_container(docker, image, ctx, POD_FLAGS, f"{host}/built:pod")
        # The Job of docs/kubernetes.md: its Dockerfile from a ConfigMap, the digest as the
        # container's termination message.
        job = _build_in_container(
            docker, image, ctx, JOB_FLAGS, f"{host}/built:job",
            ("-v", f"{config_map}:/config:ro", "-v", f"{termination_log}:/dev/termination-log"),
            ("--dockerfile=/config/Dockerfile", "--digest-file=/dev/termination-log",
             f"--insecure-registry={host}"))
        assert termination_log.read_text() == job["manifest_digest"]
        docker("build", "-q", "--network=none", "-t", "selfimage-case:docker", str(ctx))
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
        shutil.rmtree(config_map, ignore_errors=True)
        termination_log.unlink()
    # The same Dockerfile, context and base give the same image, read-only root or not.
    assert job["manifest_digest"] == ours["manifest_digest"]
    assert ours["refs"] == [f"{host}/built:pod@{ours['manifest_digest']}"]
    pulled = tmp_path / "pulled.tar"
    run([require("skopeo"), "copy", "--src-tls-verify=false", f"docker://{host}/built:pod",
         f"docker-archive:{pulled}:selfimage-case:ours"])
    docker("load", "-i", str(pulled))
    trees, configs = [], []
    for tag in ("docker", "ours"):
        saved = tmp_path / f"{tag}-saved.tar"
        docker("save", "-o", str(saved), f"selfimage-case:{tag}")
        trees.append(_flatten(saved))
        configs.append(_config(docker, f"selfimage-case:{tag}"))
    _same((trees[0], configs[0]), (trees[1], configs[1]), EXPECT)


def test_the_default_seccomp_profile_refuses_user_namespaces_to_the_image_user(
        docker: Docker, image: str) -> None:
    """Why proot: in the Job's container, unshare(CLONE_NEWUSER) is refused (EPERM)."""
    probe = ("import os\ntry:\n    os.unshare(os.CLONE_NEWUSER)\n    print('allowed')\n"
             "except OSError as e:\n    print(e.errno, os.getuid(), os.getgid())")
    done = docker("run", "--rm", *JOB_FLAGS, "--entrypoint", "/usr/bin/python3", image,
                  "-c", probe)
    assert done.stdout.split() == ["1", "65534", "65534"]


def test_the_debug_image_runs_kanikos_ci_script_with_the_same_arguments(
        docker: Docker, images: Tuple[str, str], registry) -> None:
    """docs/kubernetes.md's GitLab CI job: the `:debug` image with `entrypoint: [""]`, its
    script run by /bin/sh in the checkout ($CI_PROJECT_DIR), kaniko's arguments after
    `ocibuild build`, as uid 65534."""
    host, base = registry
    _, debug = images
    ctx = _context("FROM BASE_IMAGE\nCOPY app/ /opt/app/\nRUN chown -R 1000:1000 /opt/app\n", base)
    project = "/builds/group/project"
    script = ('cd "$CI_PROJECT_DIR" && ocibuild build --context "${CI_PROJECT_DIR}" '
              '--dockerfile "${CI_PROJECT_DIR}/Dockerfile" '
              '--destination "${CI_REGISTRY_IMAGE}:${CI_COMMIT_SHORT_SHA}" '
              '--insecure --insecure-pull --digest-file /tmp/digest --json && '
              'cat /tmp/digest >&2')
    try:
        done = docker("run", "--rm", "--user", NOBODY, "--network", "host", "--entrypoint", "",
                      "-v", f"{ctx}:{project}:ro", "-e", f"CI_PROJECT_DIR={project}",
                      "-e", f"CI_REGISTRY_IMAGE={host}/group/project", "-e",
                      "CI_COMMIT_SHORT_SHA=0123abcd", debug, "/bin/sh", "-c", script)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    result = json.loads(done.stdout)
    digest = result["manifest_digest"]
    assert result["refs"] == [f"{host}/group/project:0123abcd@{digest}"]
    assert [s["mechanism"] for s in result["run_steps"]] == ["proot"]
    assert done.stderr.rstrip().endswith(digest)
    inspected = json.loads(run([require("skopeo"), "inspect", "--tls-verify=false",
                                f"docker://{host}/group/project:0123abcd"]).stdout)
    assert inspected["Digest"] == digest
