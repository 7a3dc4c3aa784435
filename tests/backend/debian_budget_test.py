"""The layer budget of a debian_packages base (`max_layers`): at most max_layers package
layers, and a new lock that updates one package changes one layer digest."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from textwrap import dedent

import pytest
from pants.engine.addresses import Address
from pants.testutil.rule_runner import RuleRunner

from ocibuild.layout import OciLayout, resolve_image
from tests.backend.conftest import build, debian_lock
from tests.fixtures.debian_repo import DebianRepo, make_deb
from tests.fixtures.image_checks import run_in_rootfs, umoci_unpack
from tests.fixtures.tools import require

SMALL = ["libaaa", "libbbb", "libccc", "libddd", "libeee", "libfake"]


@pytest.fixture
def repo(tmp_path: Path):
    busybox = Path(shutil.which("busybox") or require("busybox")).read_bytes()
    repo = DebianRepo(tmp_path / "mirror")
    repo.add(make_deb(tmp_path, "busybox-test", "1.36-1", depends=", ".join(SMALL),
                      files={"bin/busybox": (busybox, 0o755)},
                      symlinks={"bin/sh": "busybox", "bin/ls": "busybox", "bin/cat": "busybox"}))
    for name in SMALL:
        # Unique bytes: no test finds these layers in Pants' store already.
        repo.add(make_deb(tmp_path, name, "2.1", arch="all",
                          files={f"usr/lib/{name}/id": uuid.uuid4().hex.encode()}))
    repo.add(make_deb(tmp_path, "ca-certificates", "20230311", arch="all", files={
        "usr/share/ca-certificates/mozilla/Test_Root.crt": b"-----BEGIN CERTIFICATE-----\nTEST\n"}))
    repo.publish()
    with repo:
        yield repo


def _runner(runner: RuleRunner, repo: DebianRepo, max_layers: str) -> RuleRunner:
    runner.write_files({
        "img/BUILD": dedent(f"""\
            debian_packages(name="base", packages=["busybox-test", "ca-certificates"],
                            suite="testing", mirror="{repo.url}", keyring="archive-keyring.gpg",
                            {max_layers})
            oci_image(name="image", base=":base", entrypoint=["/bin/sh", "-c"], user="nonroot")
            """),
    })
    Path(runner.build_root, "img/archive-keyring.gpg").write_bytes(repo.keyring.read_bytes())
    return runner


def _layers(runner: RuleRunner, keep: Path) -> list:
    """(digest, created_by) of each layer of the built image, kept in `keep`."""
    _, dist = build(runner, Address("img", target_name="image"))
    shutil.move(str(dist), keep)
    image = resolve_image(OciLayout(keep / "img/image"), ref_name="latest")
    return [(layer.digest, h["created_by"]) for layer, h in zip(image.layers,
                                                                image.config["history"])]


def test_max_layers_caps_the_package_layers_and_an_update_changes_one(
        rule_runner: RuleRunner, repo: DebianRepo, tmp_path: Path) -> None:
    runner = _runner(rule_runner, repo, "max_layers=3")
    debian_lock(runner)
    before = _layers(runner, tmp_path / "before")
    # root, at most 3 package layers (8 packages), config; the image adds no layer.
    assert len(before) == 5
    assert before[0][1] == "pants-oci: the merged-/usr root"
    assert before[-1][1] == "pants-oci: /etc/passwd, /etc/group and maintainer-script effects"
    # The two largest alone (busybox-test, then by name among the same size class), the rest
    # in the one shared layer.
    packages = [h[len("pants-oci: "):].split(", ") for _, h in before[1:-1]]
    assert sorted(len(p) for p in packages) == [1, 1, 6]
    assert ["busybox-test 1.36-1"] in packages

    rootfs = umoci_unpack(tmp_path / "before/img/image", "latest", tmp_path / "bundle")
    done = run_in_rootfs(rootfs, ["/bin/sh", "-c", "ls /var/lib/dpkg/status.d"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[::2] == sorted(["busybox-test", "ca-certificates", *SMALL])

    # The mirror moves libccc to 2.2 (same size class): a new lock, one new layer digest.
    repo.add(make_deb(tmp_path, "libccc", "2.2", arch="all",
                      files={"usr/lib/libccc/id": uuid.uuid4().hex.encode()}))
    repo.publish()
    debian_lock(runner)
    after = _layers(runner, tmp_path / "after")
    assert len(after) == len(before)
    new = [h for d, h in after if d not in {d for d, _ in before}]
    assert len(new) == 1 and "libccc 2.2" in new[0]


def test_without_max_layers_the_default_budget_applies(
        rule_runner: RuleRunner, repo: DebianRepo, tmp_path: Path) -> None:
    runner = _runner(rule_runner, repo, "")
    debian_lock(runner)
    # 8 packages, default budget 8: 6 alone, the other 2 in the 2 shared layers (by name hash).
    packages = [h for _, h in _layers(runner, tmp_path / "out")[1:-1]]
    assert 7 <= len(packages) <= 8 and sum(h.count(", ") + 1 for h in packages) == 8
