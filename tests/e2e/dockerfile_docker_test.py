"""The same Dockerfiles built by `docker build` (the docker.io daemon, its classic
builder) and by `ocibuild build --dockerfile`, both loaded into that daemon and saved back, then
compared path by path (kind, mode, owner, link target, content) and on the config (Env,
Entrypoint, Cmd, WorkingDir, User, Labels, ExposedPorts, Volumes, StopSignal, Healthcheck,
OnBuild). The base is the tests' busybox image in a registry on 127.0.0.1. The RUN cases run
their steps as root here (mechanism "root", docs/run-steps.md).

dockerd runs in a temp dir of its own (vfs storage, no iptables, no bridge, its own socket),
as root; the module is skipped, with the reason, only when it cannot start.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from tests.e2e.dockerfile_compare import (
    SOURCE_ROOT, Builder, Docker, config as _config, dockerd, flatten as _flatten,
    require_pod_tools, world_dir)
from tests.fixtures.busybox import make_busybox_layout
from tests.fixtures.registry import start_registry
from tests.fixtures.tools import require, run, tool_env


@pytest.fixture(scope="module")
def docker(tmp_path_factory) -> Iterator[Docker]:
    with dockerd(tmp_path_factory.mktemp("dockerd")) as client:
        yield client


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Iterator[str]:
    """The busybox base in a registry on 127.0.0.1 (docker pulls 127.0.0.0/8 as insecure)."""
    root = tmp_path_factory.mktemp("registry")
    with start_registry(root / "registry") as reg:
        layout = make_busybox_layout(root / "busybox")
        run([require("skopeo"), "copy", "--dest-tls-verify=false",
             f"oci:{layout['layout']}:latest", f"docker://{reg.host}/busybox:latest"])
        yield f"{reg.host}/busybox"


def _write(root: Path, files: Dict[str, object]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:  # a symlink to the file of the same name without "link-to-"
            os.symlink(name.rpartition("link-to-")[2] + ".txt", path)
        elif isinstance(content, tuple):  # (bytes, mode)
            path.write_bytes(content[0])
            path.chmod(content[1])
        else:
            path.write_text(str(content))


def _ocibuild(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**tool_env(), "PYTHONPATH": SOURCE_ROOT}
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


def _both(docker: Docker, base: str, tmp_path: Path, dockerfile: str,
          files: Dict[str, object], build_args: Tuple[str, ...] = ()) -> Tuple[tuple, tuple]:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _write(ctx, files)
    (ctx / "Dockerfile").write_text(dockerfile.replace("BASE_IMAGE", base))
    name = f"dfcase-{tmp_path.name.lower()}"
    # dockerd runs without a bridge: RUN steps get no network (ours get the host's; none
    # of these steps uses it).
    docker("build", "-q", "--network=none", "-t", f"{name}:docker",
           *[f"--build-arg={a}" for a in build_args], str(ctx))
    host = base.split("/")[0]
    _ocibuild("build", "--dockerfile", str(ctx / "Dockerfile"), "--context", str(ctx),
              "--insecure-registry", host, "--tar-path", str(tmp_path / "ours.tar"),
              "--destination", f"{name}:ours", "--no-push",
              *[f"--build-arg={a}" for a in build_args], cwd=tmp_path)
    docker("load", "-i", str(tmp_path / "ours.tar"))
    trees, configs = [], []
    for tag in ("docker", "ours"):
        saved = tmp_path / f"{tag}-saved.tar"
        docker("save", "-o", str(saved), f"{name}:{tag}")
        trees.append(_flatten(saved))
        configs.append(_config(docker, f"{name}:{tag}"))
    return (trees[0], configs[0]), (trees[1], configs[1])


def _same(theirs: tuple, ours: tuple, expect: Dict[str, tuple]) -> None:
    """Equal trees and configs; and `expect`'s paths are as given (so a comparison of two
    empty or unread trees cannot pass)."""
    (tree_d, config_d), (tree_o, config_o) = theirs, ours
    assert {p: tree_o.get(p, ("absent",))[:5] for p in expect} == expect
    differ = {p: (tree_d.get(p), tree_o.get(p)) for p in set(tree_d) | set(tree_o)
              if tree_d.get(p) != tree_o.get(p)}
    assert differ == {}
    assert config_o == config_d


def test_multi_stage_copy_from(docker, base, tmp_path) -> None:
    _same(*_both(docker, base, tmp_path, """
FROM BASE_IMAGE AS build
COPY app/ /out/app/
COPY tool /out/bin/tool
FROM BASE_IMAGE AS unused
COPY nothing-here /x
FROM BASE_IMAGE
COPY --from=build /out/ /opt/
COPY --from=build /out/bin/tool /usr/local/bin/
COPY --from=0 /out/app/main.py /srv/main.py
CMD ["/usr/local/bin/tool"]
""", {"app/main.py": "print('hi')\n", "app/lib/util.py": "x = 1\n",
      "tool": (b"#!/bin/sh\necho tool\n", 0o755), "nothing-here": "n"}),
          {"opt/app/lib/util.py": ("file", "0o644", 0, 0, ""),
           "usr/local/bin/tool": ("file", "0o755", 0, 0, ""),
           "srv/main.py": ("file", "0o644", 0, 0, ""), "x": ("absent",)})


def test_arg_env_label_and_metadata(docker, base, tmp_path) -> None:
    host = base.split("/")[0]
    _same(*_both(docker, base, tmp_path, f"""
ARG REG={host}
ARG TAG=latest
FROM ${{REG}}/busybox:${{TAG}}
ARG VERSION=1.0
ARG FLAVOUR
ARG TAG
ENV APP_VERSION=$VERSION APP_HOME=/opt/app \\
    GREETING="hello world" ESCAPED=\\$HOME
ENV PATH=$APP_HOME/bin:$PATH
ENV FALLBACK=${{FLAVOUR:-plain}} ALT=${{VERSION:+set}} EMPTY=${{NOPE:+x}} FROMTAG=$TAG
LABEL org.opencontainers.image.version=$VERSION "description"="a \\"quoted\\" label" \\
      multi.word="a b"
MAINTAINER Jane Doe <jane@example.com>
EXPOSE 8080 53/udp 9000-9002
VOLUME ["/data", "/logs"]
VOLUME /cache
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=4 CMD ["/bin/true"]
ONBUILD COPY . /onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $GREETING"]
""", {}, build_args=("VERSION=2.5", "UNUSED=1")), {"etc/passwd": ("file", "0o644", 0, 0, "")})


def test_workdir_user_shell(docker, base, tmp_path) -> None:
    _same(*_both(docker, base, tmp_path, """
FROM BASE_IMAGE
WORKDIR /app
WORKDIR src
COPY a.txt .
COPY a.txt ./renamed.txt
COPY a.txt ../up/
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT exec /bin/echo entry
CMD run this
USER nobody:nogroup
""", {"a.txt": "a\n"}), {"app/src/a.txt": ("file", "0o644", 0, 0, ""),
                          "app/src/renamed.txt": ("file", "0o644", 0, 0, ""),
                          "app/up/a.txt": ("file", "0o644", 0, 0, "")})


def test_dockerignore_and_chown(docker, base, tmp_path) -> None:
    _same(*_both(docker, base, tmp_path, """
FROM BASE_IMAGE
COPY --chown=nobody:nogroup . /src/
COPY --chown=1234 keep.log /owned/by-number
COPY --chown=65534:nogroup conf/ /etc/app/
""", {".dockerignore": "# comment\n*.log\n!keep.log\n**/cache\nsecret/\n/top-only.txt\n"
      "docs/**/*.tmp\n",
      "keep.log": "kept\n", "drop.log": "dropped\n", "sub/deep.log": "not matched: *.log "
      "is for the top only\n", "a/cache/x": "gone\n", "a/b/cache/y": "gone\n",
      "secret/key": "k\n", "top-only.txt": "gone\n", "sub/top-only.txt": "kept\n",
      "docs/a/b/c.tmp": "gone\n", "docs/readme.md": "kept\n",
      "run.sh": (b"#!/bin/sh\n", 0o755), "private": (b"p\n", 0o600),
      "conf/app.yaml": "a: 1\n", "conf/group.d/x": "x\n"}),
          {"src/keep.log": ("file", "0o644", 65534, 65534, ""), "src/drop.log": ("absent",),
           "src/sub/deep.log": ("file", "0o644", 65534, 65534, ""),
           "src/a/cache": ("absent",), "src/secret": ("absent",),
           "src/top-only.txt": ("absent",), "src/docs/a/b/c.tmp": ("absent",),
           "src/private": ("file", "0o600", 65534, 65534, ""),
           "owned/by-number": ("file", "0o644", 1234, 1234, ""),
           "etc/app/group.d/x": ("file", "0o644", 65534, 65534, "")})


def test_add_local_tarball(docker, base, tmp_path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, kind, mode, uid in (("pkg", tarfile.DIRTYPE, 0o755, 0),
                                      ("pkg/bin", tarfile.DIRTYPE, 0o750, 1000),
                                      ("pkg/bin/run", tarfile.REGTYPE, 0o755, 1000),
                                      ("pkg/README", tarfile.REGTYPE, 0o644, 0),
                                      ("pkg/current", tarfile.SYMTYPE, 0o777, 0)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = kind, mode, uid, uid
            data = f"content of {name}\n".encode() if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            if kind == tarfile.SYMTYPE:
                info.linkname = "bin/run"
            tar.addfile(info, io.BytesIO(data))
    _same(*_both(docker, base, tmp_path, """
FROM BASE_IMAGE
ADD app.tar.gz /opt/
ADD plain.txt /opt/plain.txt
ADD app.tar.gz /other
""", {"app.tar.gz": (archive.getvalue(), 0o644), "plain.txt": "not an archive\n"}),
          {"opt/pkg/bin": ("dir", "0o750", 1000, 1000, ""),
           "opt/pkg/current": ("symlink", "0o777", 0, 0, "bin/run"),
           "other/pkg/bin/run": ("file", "0o755", 1000, 1000, ""),
           "opt/plain.txt": ("file", "0o644", 0, 0, "")})


def test_globs_and_destination_rules(docker, base, tmp_path) -> None:
    _same(*_both(docker, base, tmp_path, """
FROM BASE_IMAGE
COPY *.txt /txt/
COPY conf/*/app.conf /conf/
COPY [ab]?.md /md/
COPY one.txt /as-file
COPY one.txt /into-dir/
COPY dir /contents-of-dir
COPY dir/ /contents-too/
COPY one.txt /bin
COPY one.txt two.txt /both/
COPY link-to-one /followed
""", {"one.txt": "1\n", "two.txt": "2\n", "conf/x/app.conf": "x\n", "conf/y/app.conf": "y\n",
      "conf/y/other.conf": "no\n", "a1.md": "a1\n", "b2.md": "b2\n", "c3.md": "no\n",
      "ab.md": "no\n", "dir/f": "f\n", "dir/sub/g": (b"g\n", 0o640),
      "link-to-one": None}),
          {"as-file": ("file", "0o644", 0, 0, ""), "into-dir/one.txt": ("file", "0o644", 0, 0, ""),
           "contents-of-dir/sub/g": ("file", "0o640", 0, 0, ""), "bin/one.txt":
           ("file", "0o644", 0, 0, ""), "followed": ("file", "0o644", 0, 0, ""),
           "md/c3.md": ("absent",), "conf/other.conf": ("absent",)})


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_run_files_and_deletions_across_steps(docker, base, tmp_path) -> None:
    _same(*_both(docker, base, tmp_path, """
FROM BASE_IMAGE
RUN mkdir -p /app/data /app/gone && echo one > /app/data/one && echo two > /app/two && \\
    touch /app/gone/x /app/data/kept
RUN rm /app/data/one && echo three >> /app/two && rm -r /app/gone && rm /bin/vi
COPY a.txt /app/
RUN cat /app/a.txt >> /app/two && ln -s two /app/link && ln /app/two /app/hard && \\
    rm -r /app/data && mkdir /app/data && echo new > /app/data/new
""", {"a.txt": "a\\n"}),
          {"app/two": ("file", "0o644", 0, 0, ""), "app/data/one": ("absent",),
           "app/data/kept": ("absent",), "app/data/new": ("file", "0o644", 0, 0, ""),
           "app/gone": ("absent",), "bin/vi": ("absent",),
           "app/link": ("symlink", "0o777", 0, 0, "two"),
           "app/hard": ("file", "0o644", 0, 0, "")})


def test_run_modes_owners_and_users(docker, base, tmp_path) -> None:
    _same(*_both(docker, base, tmp_path, """
FROM BASE_IMAGE
RUN mkdir /srv && echo x > /srv/tool && chmod 755 /srv/tool && chmod u+s /srv/tool
RUN echo data > /srv/owned && chown 1000:1000 /srv/owned && mkdir /srv/d && \\
    chown -R 1000:1000 /srv/d && chmod 2775 /srv/d && touch /srv/d/inherits
# busybox here has no adduser applet: the user as adduser would write it
RUN echo app:x:1234:1234::/home/app:/bin/sh >> /etc/passwd && \
    echo app:x:1234: >> /etc/group && mkdir -p /home/app && chown app:app /home/app
USER app
WORKDIR /home/app
RUN echo mine > mine.txt && mkdir sub && id -u > uid.txt && echo "$HOME" > home.txt
USER root
RUN rm /srv/owned && chmod 700 /home/app/sub && echo "$HOME" > /root-home.txt
""", {}),
          {"srv/tool": ("file", "0o4755", 0, 0, ""),
           "srv/d": ("dir", "0o2775", 1000, 1000, ""),
           "srv/d/inherits": ("file", "0o644", 0, 1000, ""), "srv/owned": ("absent",),
           "home/app/mine.txt": ("file", "0o644", 1234, 1234, ""),
           "home/app/sub": ("dir", "0o700", 1234, 1234, "")})


def test_run_under_the_pod_emulation_equals_docker(docker, base, tmp_path) -> None:
    """The deletions case built as uid 65534 with no capabilities under the seccomp filter of
    tests/core/rootfs_pod.py (user namespaces and mount refused): mechanism proot. The build's
    interpreter, packages and sources are copied where that user can read them."""
    import shutil

    require_pod_tools()
    world = world_dir("ocibuild-pod-")
    try:
        _pod_case(docker, base, tmp_path, world)
    finally:
        shutil.rmtree(world, ignore_errors=True)


def _pod_case(docker, base, tmp_path: Path, world: Path) -> None:
    ctx = world / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a\n")
    dockerfile = """
FROM BASE_IMAGE
RUN mkdir -p /app/data /app/gone && echo one > /app/data/one && echo two > /app/two && \\
    touch /app/gone/x /app/data/kept
RUN rm /app/data/one && echo three >> /app/two && rm -r /app/gone && rm /bin/vi
COPY a.txt /app/
RUN cat /app/a.txt >> /app/two && ln -s two /app/link && rm -r /app/data && mkdir /app/data
"""
    (ctx / "Dockerfile").write_text(dockerfile.replace("BASE_IMAGE", base))
    for path in [ctx, *ctx.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    out = world / "out"
    out.mkdir()
    name = f"dfcase-{tmp_path.name.lower()}"
    docker("build", "-q", "--network=none", "-t", f"{name}:docker", str(ctx))
    result = Builder(world).build("pod", ctx, out, ["--insecure-registry", base.split("/")[0],
                                                    "--destination", f"{name}:ours"])
    steps = result["run_steps"]
    assert [(s["mechanism"], s["exit_code"]) for s in steps] == [("proot", 0)] * 3
    docker("load", "-i", str(out / "ours.tar"))
    theirs, ours = (docker.image(f"{name}:{tag}", tmp_path) for tag in ("docker", "ours"))
    _same(theirs, ours,
          {"app/two": ("file", "0o644", 0, 0, ""), "app/data": ("dir", "0o755", 0, 0, ""),
           "app/data/kept": ("absent",), "app/gone": ("absent",), "bin/vi": ("absent",),
           "app/link": ("symlink", "0o777", 0, 0, "two")})
