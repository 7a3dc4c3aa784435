"""Real-world Dockerfiles on a Debian trixie base, built by `docker build` (its classic
builder, as root) and by `ocibuild build --dockerfile` as each user a build runs as here
("pod": uid 65534 under the seccomp filter of a locked-down pod, mechanism proot; "user":
uid 65534 unconfined, userns; "root": chroot), then compared path by path (kind, mode,
owner, link target, content) and on the config, as tests/e2e/dockerfile_docker_test.py does.

The base is tests/e2e/debian_base_image.py's, in a registry on 127.0.0.1; dockerd stores with
overlay2 (its default; vfs where overlayfs is refused); apt reaches a
signed repository on 127.0.0.1 (docker's step with --network host). One dockerd, one base and
one docker build per Dockerfile for the module.

Content that no two builds share, whoever builds (docker against docker too), is compared
for kind, mode and owner only (`VOLATILE`): apt's and dpkg's logs and apt's binary cache,
which hold the time of the build. Python bytecode is compared without its header's source
mtime (the install's time; tests/e2e/dockerfile_compare.py).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import shutil
import time
import zipfile
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from tests.e2e.debian_base_image import push_debian_base, repo_debs
from tests.e2e.dockerfile_compare import (
    MECHANISMS, Builder, Docker, Tree, differences, dockerd, require_pod_tools, world_dir,
    write_context)
from tests.fixtures.debian_repo import DebianRepo, make_deb
from tests.fixtures.registry import start_registry

WHERE = ["pod", "user", "root"]
VOLATILE = re.compile(r"^(var/log/(apt/(history|term)\.log|apt/eipp\.log\.xz|dpkg\.log|"
                      r"alternatives\.log)|var/cache/apt/(src)?pkgcache\.bin)$")
TIMINGS: Dict[str, float] = {}


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    path = world_dir("ocibuild-dfdebian-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def docker(tmp_path_factory) -> Iterator[Docker]:
    # overlay2, docker's default, where the kernel has overlayfs: vfs would copy the whole
    # Debian tree for every layer of every image (gigabytes, minutes of I/O).
    with dockerd(tmp_path_factory.mktemp("dockerd"), ("overlay2", "vfs")) as client:
        print(f"dockerd storage driver: {client.driver}")
        yield client


@pytest.fixture(scope="module")
def base(world) -> Iterator[str]:
    root = world / "registry"
    root.mkdir()
    with start_registry(root / "data") as reg:
        work = root / "base"
        work.mkdir()
        started = time.monotonic()
        ref = push_debian_base(work, reg.host)
        TIMINGS["base image"] = time.monotonic() - started
        shutil.rmtree(work)
        yield ref


SVC_POSTINST = b"""#!/bin/sh
set -e
if [ "$1" = configure ]; then
    getent group svc >/dev/null || groupadd --system svc
    getent passwd svc >/dev/null || useradd --system --gid svc --home-dir /var/lib/svc \\
        --no-create-home --shell /usr/sbin/nologin svc
    install -d -o svc -g svc -m 2750 /var/lib/svc
    touch /var/lib/svc/state
    chown root:svc /etc/svc/svc.conf
    chmod 640 /etc/svc/svc.conf
    dpkg-statoverride --list /usr/bin/svc-helper >/dev/null || \\
        dpkg-statoverride --update --add root svc 4750 /usr/bin/svc-helper
fi
"""


@pytest.fixture(scope="module")
def apt_repo(world) -> Iterator[DebianRepo]:
    """A signed repository on 127.0.0.1 with Debian's `less` (its postinst registers
    alternatives: absolute symlinks) and `svc-daemon`, made here as daemon packages are: its
    postinst adds a system group and user with shadow's groupadd/useradd, chowns, and sets a
    set-uid override with dpkg-statoverride."""
    root = world / "apt"
    root.mkdir()
    build = root / "build"
    build.mkdir()
    with DebianRepo(root / "repo") as repo:
        for deb in repo_debs():
            repo.add(Path(deb))
        repo.add(make_deb(build, "svc-daemon", arch="all", depends="passwd", files={
            "usr/bin/svc-helper": (b"#!/bin/sh\necho helper\n", 0o755),
            "etc/svc/svc.conf": b"listen = 127.0.0.1\n",
            "usr/share/svc/README": b"svc\n"}, scripts={"postinst": SVC_POSTINST}))
        repo.publish()
        yield repo


@pytest.fixture(scope="module")
def builder(world) -> Builder:
    return Builder(world)


def _wheel() -> bytes:
    """A pure wheel of `hello-pkg` 1.0 with a console script, as setuptools writes one."""
    files = {
        "hello_pkg/__init__.py": b"def main():\n    print('hello from the venv')\n",
        "hello_pkg/data.txt": b"data\n",
        "hello_pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: hello-pkg\n"
                                            b"Version: 1.0\n",
        "hello_pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
                                         b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        "hello_pkg-1.0.dist-info/entry_points.txt": b"[console_scripts]\n"
                                                    b"hello = hello_pkg:main\n",
        "hello_pkg-1.0.dist-info/top_level.txt": b"hello_pkg\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("hello_pkg-1.0.dist-info/RECORD,,")
    files["hello_pkg-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return out.getvalue()


CASES = {
    "apt": ("""
FROM BASE_IMAGE
COPY test-archive.gpg /etc/apt/keyrings/test.gpg
RUN echo "deb [signed-by=/etc/apt/keyrings/test.gpg] REPO_URL testing main" \\
        > /etc/apt/sources.list.d/test.list
RUN apt-get update && apt-get install -y --no-install-recommends less svc-daemon \\
    && rm -rf /var/lib/apt/lists/*
""", "host"),
    "useradd": ("""
FROM BASE_IMAGE
RUN groupadd -g 2000 appgrp && useradd -m -u 2001 -g appgrp -s /bin/bash app \\
    && groupadd --system svc
RUN mkdir -p /srv/app/bin /srv/shared && cp /usr/bin/true /srv/app/bin/tool \\
    && chown -R app:appgrp /srv/app && chmod u+s /srv/app/bin/tool \\
    && chgrp svc /srv/shared && chmod 777 /srv/shared && chmod g+s /srv/shared && touch /srv/shared/inherits \\
    && install -d -o app -g svc -m 2750 /var/lib/app && mkdir /srv/shared/sub \
    && echo old > /home/app/old.txt
USER app
WORKDIR /home/app
RUN echo hi > note && mkdir -p .cache/x && id > id.txt && touch /srv/shared/by-app \
    && rm old.txt && echo x > mine && chmod 600 mine && mkdir -m 700 private
USER root
RUN chown app /srv/shared/inherits && chmod 4711 /srv/app/bin/tool
""", "none"),
    "venv": ("""
FROM BASE_IMAGE
COPY wheels/ /wheels/
RUN python3 -m venv /opt/venv \\
    && /opt/venv/bin/pip install --no-index --find-links /wheels hello-pkg \\
    && /opt/venv/bin/hello > /opt/venv/hello.out
ENV PATH=/opt/venv/bin:$PATH
CMD ["hello"]
""", "none"),
    "deletions": ("""
FROM BASE_IMAGE
RUN mkdir -p /data/dir-to-file/sub /data/again /data/keep /opt/links \\
    && echo deep > /data/dir-to-file/sub/f && echo a > /data/again/old \\
    && echo f > /data/file-to-dir && echo k > /data/keep/orig \\
    && ln -s /usr/bin/python3 /opt/links/abs && ln -s ../../etc/os-release /opt/links/rel \\
    && ln -s /nowhere /opt/links/dangling && ln -s keep /data/link-to-dir
RUN rm -r /data/dir-to-file && echo now-a-file > /data/dir-to-file \\
    && rm /data/file-to-dir && mkdir /data/file-to-dir && echo in > /data/file-to-dir/in \\
    && rm -r /data/again && mkdir /data/again && echo new > /data/again/new \\
    && ln /data/keep/orig /data/keep/hard && rm -r /usr/share/doc/dpkg /etc/debian_version \\
    && rm /opt/links/dangling && ln -sfn /etc /opt/links/rel \\
    && echo one > /data/h1 && ln /data/h1 /data/h2 && ln /data/h1 /opt/h3 \\
    && rm /data/link-to-dir && mkdir /data/link-to-dir
RUN rm /data/keep/orig && mv /data/again /data/moved && ln -s moved /data/again \\
    && rm -r /usr/share/doc/bash && ln -s ../common-licenses /usr/share/doc/bash && echo more >> /data/h2
""", "none"),
}

SVC = 999  # the first system group and user groupadd/useradd --system give (SYS_*_MAX)
# Paths each case must have, as ours gives them (so two empty trees cannot compare equal).
EXPECT = {
    "apt": {"usr/bin/less": ("file", "0o755", 0, 0, ""),
            "etc/alternatives/pager": ("symlink", "0o777", 0, 0, "/usr/bin/less"),
            "var/lib/svc": ("dir", "0o2750", SVC, SVC, ""),
            "etc/svc/svc.conf": ("file", "0o640", 0, SVC, ""),
            "usr/bin/svc-helper": ("file", "0o4750", 0, SVC, ""),
            "var/lib/apt/lists/lock": ("absent",)},
    "useradd": {"home/app": ("dir", "0o700", 2001, 2000, ""),
                "home/app/.bashrc": ("file", "0o644", 2001, 2000, ""),
                "srv/app/bin/tool": ("file", "0o4711", 2001, 2000, ""),
                "srv/shared": ("dir", "0o2777", 0, SVC, ""),
                "srv/shared/sub": ("dir", "0o2755", 0, SVC, ""),
                "srv/shared/inherits": ("file", "0o644", 2001, SVC, ""),
                "srv/shared/by-app": ("file", "0o644", 2001, SVC, ""),
                "var/lib/app": ("dir", "0o2750", 2001, SVC, ""),
                "home/app/note": ("file", "0o644", 2001, 2000, ""),
                "home/app/mine": ("file", "0o600", 2001, 2000, ""),
                "home/app/private": ("dir", "0o700", 2001, 2000, ""),
                "home/app/old.txt": ("absent",),
                "etc/shadow": ("file", "0o640", 0, 42, "")},
    "venv": {"opt/venv/bin/hello": ("file", "0o755", 0, 0, ""),
             "opt/venv/bin/python3": ("symlink", "0o777", 0, 0, "/usr/bin/python3"),
             "opt/venv/lib/python3.13/site-packages/hello_pkg/data.txt":
                 ("file", "0o644", 0, 0, "")},
    "deletions": {"data/dir-to-file": ("file", "0o644", 0, 0, ""),
                  "data/dir-to-file/sub": ("absent",),
                  "data/file-to-dir/in": ("file", "0o644", 0, 0, ""),
                  "data/again": ("symlink", "0o777", 0, 0, "moved"),
                  "data/moved/new": ("file", "0o644", 0, 0, ""),
                  "data/moved/old": ("absent",),
                  "data/keep/orig": ("absent",), "data/keep/hard": ("file", "0o644", 0, 0, ""),
                  "data/link-to-dir": ("dir", "0o755", 0, 0, ""),
                  "opt/links/abs": ("symlink", "0o777", 0, 0, "/usr/bin/python3"),
                  "opt/links/rel": ("symlink", "0o777", 0, 0, "/etc"),
                  "opt/links/dangling": ("absent",), "etc/debian_version": ("absent",),
                  "usr/share/doc/dpkg": ("absent",),
                  "usr/share/doc/bash": ("symlink", "0o777", 0, 0, "../common-licenses"),
                  "opt/h3": ("file", "0o644", 0, 0, "")},
}


def _context(case: str, ctx: Path, base: str, repo: DebianRepo) -> None:
    ctx.mkdir()
    dockerfile, _ = CASES[case]
    files: Dict[str, object] = {"Dockerfile": dockerfile.replace("BASE_IMAGE", base)
                                .replace("REPO_URL", repo.url)}
    if case == "apt":
        files["test-archive.gpg"] = (repo.keyring.read_bytes(), 0o644)
    if case == "venv":
        files["wheels/hello_pkg-1.0-py3-none-any.whl"] = (_wheel(), 0o644)
    write_context(ctx, files)
    for path in [ctx, *ctx.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else path.stat().st_mode & 0o777 | 0o444)


_DOCKER_BUILT: Dict[str, Tuple[Tree, dict]] = {}


def _docker_side(docker: Docker, case: str, base: str, repo: DebianRepo, work: Path):
    if case not in _DOCKER_BUILT:
        ctx = work / f"docker-{case}"
        _context(case, ctx, base, repo)
        started = time.monotonic()
        docker("build", "-q", f"--network={CASES[case][1]}", "-t", f"dfdebian-{case}:docker",
               str(ctx))
        TIMINGS[f"{case} docker"] = time.monotonic() - started
        _DOCKER_BUILT[case] = docker.image(f"dfdebian-{case}:docker", work)
    return _DOCKER_BUILT[case]


def _docker_odd_one_out(docker: Docker, case: str) -> Dict[str, tuple]:
    """Where docker's result is not what the commands did: on overlay2, `echo more >> h2`
    copies h2 alone up to the container's layer, breaking its hard links, so h1 and h3
    keep the old content (overlayfs without its `index` feature). vfs, and ours, keep the
    link: the three names hold "one\\nmore\\n"."""
    if docker.driver != "overlay2" or case != "deletions":
        return {}
    old, new = (hashlib.sha256(t).hexdigest() for t in (b"one\n", b"one\nmore\n"))
    return {p: (("file", "0o644", 0, 0, "", old), ("file", "0o644", 0, 0, "", new))
            for p in ("data/h1", "opt/h3")}


def _masked(tree: Tree) -> Tree:
    return {p: (e[:5] + (None,) if VOLATILE.match(p) else e) for p, e in tree.items()}


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("case", list(CASES))
def test_debian_dockerfile_equals_docker(docker, base, apt_repo, builder, world, tmp_path,
                                         case, where) -> None:
    if where == "pod":
        require_pod_tools()
    theirs, their_config = _docker_side(docker, case, base, apt_repo, tmp_path)
    work = world / f"{case}-{where}"
    work.mkdir()
    _context(case, work / "ctx", base, apt_repo)
    out = work / "out"
    out.mkdir()
    started = time.monotonic()
    result = builder.build(where, work / "ctx", out, ["--insecure-registry", base.split("/")[0],
                                                      "--destination", f"dfdebian-{case}:{where}"])
    TIMINGS[f"{case} {where}"] = time.monotonic() - started
    mechanisms = {s["mechanism"] for s in result["run_steps"]}
    print(f"{case} as {where}: mechanisms {sorted(mechanisms)}, "
          f"{TIMINGS[f'{case} {where}']:.1f} s (docker {TIMINGS.get(f'{case} docker', 0):.1f} s)")
    assert mechanisms <= MECHANISMS[where] and len(mechanisms) == 1, result["run_steps"]
    docker("load", "-i", str(out / "ours.tar"))
    ours, our_config = docker.image(f"dfdebian-{case}:{where}", tmp_path)
    expect = EXPECT[case]
    found = {p: ours.get(p, ("absent",))[:5] for p in expect}
    volatile = sorted(p for p in set(theirs) & set(ours)
                      if VOLATILE.match(p) and theirs[p] != ours[p])
    print(f"{case} as {where}: {len(theirs)} paths, content not compared and differing: "
          f"{len(volatile)} ({', '.join(volatile)})")
    assert (found, differences(_masked(theirs), _masked(ours)), our_config) == \
        (expect, _docker_odd_one_out(docker, case), their_config)
    shutil.rmtree(work, ignore_errors=True)
