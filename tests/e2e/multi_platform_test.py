"""A two-platform image index, end to end: `./pants publish` of the Python example built for
linux/amd64 and linux/arm64 to the real registry; skopeo picks each platform out of it, umoci
unpacks it, and its entrypoint runs: natively on amd64, under proot + qemu-user (no binfmt, no
privilege) on arm64; there, the gzip golden digests come out the same from the pinned deflate's
aarch64 wheel."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import ocibuild
from ocibuild import mediatypes
from tests.core import gzip_golden
from tests.e2e.repo import copy_repo, run_pants
from tests.fixtures.image_checks import run_in_rootfs, umoci_unpack
from tests.fixtures.registry import Registry, registry  # noqa: F401 (fixture)
from tests.fixtures.tools import require, run

IMAGE = "examples/python-hello:image-multiarch"
NAME = "examples/python-hello/image-multiarch"


def _platform_rootfs(reg: Registry, ref: str, arch: str, work: Path) -> Path:
    """skopeo copies the `arch` image out of the index (as a pull on that machine would) into a
    layout; umoci unpacks it."""
    layout = work / f"{arch}-layout"
    run([require("skopeo"), "copy", "--quiet", "--override-arch", arch, "--override-os", "linux",
         *reg.skopeo_src_flags(), f"docker://{ref}", f"oci:{layout}:latest"])
    return umoci_unpack(layout, "latest", work / f"{arch}-bundle")


def test_a_two_platform_index_is_published_and_each_platform_runs(registry: Registry,
                                                                  tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo", pantsd=True)  # two runs share its pantsd
    option = f"--oci-registries={{'local': {{'address': '{registry.host}', 'default': True, " \
             "'insecure': True}}"
    run_pants(repo, option, "publish", IMAGE)
    run_pants(repo, "package", IMAGE)
    meta = json.loads((repo / f"dist/{NAME.replace('/', '.', 1)}.json").read_text())
    assert meta["kind"] == "index-result"
    assert [m["platform"] for m in meta["manifests"]] == ["linux/amd64", "linux/arm64"]

    ref = f"{registry.host}/{NAME}:latest"
    raw = run([require("skopeo"), "inspect", "--raw", *registry.skopeo_src_flags(),
               f"docker://{ref}"]).stdout
    index = json.loads(raw)
    assert index["mediaType"] == mediatypes.OCI_INDEX
    assert [m["digest"] for m in index["manifests"]] == [
        m["manifest_digest"] for m in meta["manifests"]]
    layout_index = json.loads(
        (repo / f"dist/{NAME.replace('/', '.', 1)}/blobs/sha256" /
         meta["manifest_digest"].split(":", 1)[1]).read_text())
    assert layout_index == index  # what was pushed is what package wrote

    env = {"PEX_ROOT": "/tmp/pex", "PATH": "/usr/bin:/bin"}
    amd64 = _platform_rootfs(registry, ref, "amd64", tmp_path)
    done = run_in_rootfs(amd64, ["/usr/bin/python3", "/app/app.pex", "amd64"], env=env)
    assert done.stdout.splitlines()[0] == "hello amd64 from Python 3.13.5 on x86_64 as uid 0"

    arm64 = _platform_rootfs(registry, ref, "arm64", tmp_path)
    # proot runs every exec of the guest through qemu-user (the PEX re-executes python3), with
    # the unpacked image as its root: no binfmt_misc, no privilege.
    (tmp_path / "pex-root").mkdir()
    ran = subprocess.run(
        [require("proot"), "-q", require("qemu-aarch64-static"), "-r", str(arm64), "-0",
         "-b", f"{tmp_path / 'pex-root'}:/pex-root", "-w", "/",
         "/usr/bin/python3", "/app/app.pex", "arm64"],
        env={"PEX_ROOT": "/pex-root", "PATH": "/usr/bin:/bin"}, capture_output=True,
        text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[0] == "hello arm64 from Python 3.13.5 on aarch64 as uid 0", \
        ran.stdout

    _gzip_golden_digests_on_arm64(arm64, tmp_path)


def _gzip_golden_digests_on_arm64(rootfs: Path, tmp_path: Path) -> None:
    """The gzip golden digests (tests/core/gzip_reproducible_test.py) from the pinned deflate's
    linux/aarch64 wheel, run by the image's arm64 python3 under qemu-user: gzip layers have the
    same bytes on an arm64 machine, with libdeflate's CPU-feature dispatch and without it."""
    probe = rootfs / "probe"
    with zipfile.ZipFile("tests.core/deflate-abi3-arm64.pex") as zf:
        members = [n for n in zf.namelist() if n.startswith(".deps/deflate-")]
        (wheel,) = {n.split("/")[1] for n in members}
        assert "-cp311-abi3-manylinux_2_17_aarch64." in wheel, wheel
        zf.extractall(tmp_path / "arm64-pex", members)
    shutil.copytree(tmp_path / "arm64-pex/.deps" / wheel, probe / "deflate")
    shutil.copytree(Path(ocibuild.__file__).parent, probe / "src/ocibuild")
    (probe / "here").mkdir()
    shutil.copy(gzip_golden.__file__, probe / "here/gzip_golden.py")
    (probe / "probe.py").write_text(gzip_golden.PROBE)
    for cpu in ("native", "generic"):
        ran = subprocess.run(
            [require("proot"), "-q", require("qemu-aarch64-static"), "-r", str(rootfs), "-0",
             "/usr/bin/python3", "/probe/probe.py", "/probe/src", cpu, "/probe/here"],
            env={"PYTHONPATH": "/probe/deflate", "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=600)
        assert ran.returncode == 0, ran.stderr
        report = json.loads(ran.stdout)
        assert (report["machine"], report["c_api"]) == ("aarch64", True), report
        if cpu == "generic":  # libdeflate told the CPU has no optional feature
            assert report["features"] == {"libdeflate_arm_cpu_features": 1 << 31}, report
        assert report["digests"] == gzip_golden.GOLDEN, report
