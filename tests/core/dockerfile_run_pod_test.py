"""RUN --mount, heredocs and --network=none in whole Dockerfile builds run without privilege:
as uid 65534 under the pod's seccomp filter (tests/core/rootfs_pod.py: proot) and unconfined
("user": userns when the kernel allows it). The base is busybox ADDed from the context, so no
registry is needed and the system python (which has python3-seccomp) runs the builder. The
root mechanism's cases: tests/core/dockerfile_run_options_test.py."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

# The script below imports these from a copy of the sources: under Pants the copy holds what
# this module depends on, so it names them.
from ocibuild.dockerfile import builder, mounts, run  # noqa: F401
from tests.core.rootfs_base import busybox_layers
from tests.core.rootfs_run_test import NOBODY, POD, _seccomp_available, work  # noqa: F401

SCRIPT = """
import json, os, sys
sys.path.insert(0, {world!r})
if {pod!r}:
    import rootfs_pod
    rootfs_pod.lock_down()
sys.path.insert(0, {src!r})
from ocibuild.dockerfile import builder, mounts, run
from ocibuild.errors import OciBuildError
# The system python has no libdeflate binding: the stdlib's zlib writes the layers here.
for module in (builder, run):
    module.build_layer = (lambda f: lambda *a, **k: f(*a, **{{**k, "engine": "zlib"}}))(
        module.build_layer)
options = builder.Options({dockerfile!r}, {context!r}, run_cache_dir={cache!r},
                          secrets=(mounts.Secret("token", "file", {secret!r}),))
try:
    built = builder.build(options, {out!r})
    print(json.dumps({{"layers": [l.digest for l in built.layers], "steps": built.run_steps,
                      "history": built.config["history"]}}))
except OciBuildError as err:
    print(json.dumps({{"error": str(err)}}))
"""

DOCKERFILE = """
FROM scratch AS tools
ADD busybox.tar /
RUN mkdir /opt && echo tool > /opt/tool && chmod 4755 /opt/tool
FROM scratch
ADD busybox.tar /
RUN --mount=target=/src --mount=type=bind,from=tools,source=/opt,target=/mnt/tools \\
    --mount=type=cache,target=/c --mount=type=secret,id=token --mount=type=tmpfs,target=/t \\
    <<EOF
cat /src/ctx.txt /mnt/tools/tool /run/secrets/token > /seen
echo x >> /c/runs
wc -l < /c/runs >> /seen
stat -c %a /mnt/tools/tool >> /seen
(echo x > /src/ctx.txt) 2>/dev/null && echo rw >> /seen || echo ro >> /seen
touch /t/x
EOF
"""


def _build(work: Path, where: str, dockerfile: str) -> dict:
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("setpriv is needed to run as an unprivileged user")
    if where == "pod" and not _seccomp_available():
        pytest.fail("python3-seccomp is missing: run tests/install-test-tools")
    case = work / f"case-{where}-{len(list(work.iterdir()))}"
    ctx = case / "ctx"
    ctx.mkdir(parents=True)
    busybox_layers(ctx)
    (ctx / "ctx.txt").write_text("from the context\n")
    (ctx / "Dockerfile").write_text(dockerfile)
    (case / "secret").write_text("s3cret\n")
    out = case / "out"
    out.mkdir()
    shutil.copy(POD, work / "rootfs_pod.py")
    script = SCRIPT.format(world=str(work), pod=where == "pod", src=str(work / "src"),
                           dockerfile=str(ctx / "Dockerfile"), context=str(ctx),
                           cache=str(case / "cache"), secret=str(case / "secret"),
                           out=str(out))
    argv = ["/usr/bin/python3", "-c", script]
    if os.geteuid() == 0:
        for path in [case, *case.rglob("*")]:
            os.lchown(path, NOBODY, NOBODY)
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                "--inh-caps=-all"] + argv
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": str(case), "TMPDIR": str(case)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["out"], result["case"], result["stderr"] = out, case, proc.stderr
    return result


def _files(result: dict, i: int) -> dict:
    blob = result["out"] / "layers" / "blobs" / "sha256" / result["layers"][i][7:]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.read_bytes()))) as tar:
        return {m.name: (tar.extractfile(m).read().decode() if m.isfile() else m.type.decode())
                for m in tar}


@pytest.mark.parametrize("where", ["pod", "user"])
def test_mounts_and_heredoc_without_privilege(work, where):
    result = _build(work, where, DOCKERFILE)
    assert "error" not in result, result
    mechanisms = {s["mechanism"] for s in result["steps"]}
    assert mechanisms <= ({"proot"} if where == "pod" else {"userns", "proot"}), mechanisms
    # proot cannot make the bind read-only: the write lands in the step's throw-away copy.
    ro = "rw" if mechanisms == {"proot"} else "ro"
    # The set-uid tool is copied without its bit: nothing set-id of the build user's is left
    # on the host, even while the step runs.
    assert _files(result, 1) == {"seen": f"from the context\ntool\ns3cret\n1\n755\n{ro}\n"}
    assert (result["case"] / "ctx" / "ctx.txt").read_text() == "from the context\n"
    assert "s3cret" not in json.dumps(result["history"])
    again = _build(work, where, DOCKERFILE.replace("/src/ctx.txt /mnt", "/src/ctx.txt  /mnt"))
    assert _files(again, 1)["seen"].endswith(f"\n1\n755\n{ro}\n")  # another case dir: own cache


@pytest.mark.parametrize("where", ["pod", "user"])
def test_network_none_without_privilege(work, where):
    result = _build(work, where, "FROM scratch\nADD busybox.tar /\n"
                                 "RUN --network=none ifconfig lo | grep -c UP > /lo\n")
    mechanisms = {"proot"} if where == "pod" else None
    if where == "pod" or "error" in result:
        assert result["error"] == (
            f"{result['case']}/ctx/Dockerfile:3: RUN: RUN --network=none cannot be honoured by "
            "the RUN mechanism 'proot' (chosen because user namespaces are refused here): it "
            "has no network namespace to cut the step's network; run the build as root or "
            "where user namespaces are allowed, or drop --network=none")
        return
    assert mechanisms is None and _files(result, 1) == {"lo": "1\n"}


@pytest.mark.parametrize("where", ["pod", "user"])
def test_a_missing_working_directory_is_made_without_privilege(work, where):
    """Under proot a step whose working directory an earlier step removed ran in / without a
    word (proot: "can't chdir"); as docker, the directory is made (0755, root's) first."""
    result = _build(work, where, "FROM scratch\nADD busybox.tar /\nWORKDIR /w/sub\n"
                                 "RUN cd / && rm -r /w\nRUN pwd > /pwd\n")
    assert "error" not in result, result
    blob = result["out"] / "layers" / "blobs" / "sha256" / result["layers"][3][7:]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.read_bytes()))) as tar:
        found = [(m.name, oct(m.mode), m.uid, m.gid) for m in tar]
    assert found == [("pwd", "0o644", 0, 0), ("w", "0o755", 0, 0), ("w/sub", "0o755", 0, 0)]
    assert _files(result, 3)["pwd"] == "/w/sub\n"
