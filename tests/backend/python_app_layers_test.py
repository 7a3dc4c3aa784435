"""An oci_python_app's third-party layers: bumping one requirement changes only the layer that
holds it. Real wheels (made here, pure Python), a real Pants lockfile of them (file:// URLs,
no network), the real resolve, byte-compile and layer processes."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path
from textwrap import dedent
from typing import Dict, List

import pytest
from pants.backend.python.target_types import (
    PythonRequirementTarget,
    PythonSourcesGeneratorTarget,
    PythonSourceTarget,
)
from pants.core.target_types import LockfilesGeneratorTarget, LockfileTarget
from pants.engine.addresses import Address
from pants.testutil.rule_runner import RuleRunner

from ocibuild.layout import OciLayout, resolve_image

from .conftest import build, configure, make_rule_runner, package_error, reset

# Sizes in bytes of each distribution's module: three size classes above the rest, so with
# max_layers=4 (three layers of their own, one shared) the three largest are alone and the
# two smallest share the fourth.
SIZES = {"alpha": 70_000, "bravo": 33_000, "charlie": 17_000, "delta": 900, "echo": 800}
CONSTRAINTS = "CPython==3.9.*"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(directory: Path, name: str, version: str, size: int,
               tag: str = "py3-none-any") -> Path:
    """A wheel `name-version-TAG.whl` whose module is about `size` bytes (text that depends on
    the version, so a bump changes the installed files)."""
    info = f"{name}-{version}.dist-info"
    line = f"# {name} {version}: filler so the module has the size asked for\n"
    files = {
        f"{name}/__init__.py": (f"VERSION = {version!r}\n" + line * (size // len(line))).encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: "
                         f"{str(tag.endswith('-any')).lower()}\nTag: {tag}\n".encode(),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    wheel = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), data)
    return wheel


def lockfile(wheels: Dict[str, Path], versions: Dict[str, str]) -> str:
    """A Pants lockfile (metadata header + pex lock) of exactly these wheels."""
    requirements = sorted(f"{name}=={version}" for name, version in versions.items())
    metadata = {
        "version": 3, "valid_for_interpreter_constraints": [CONSTRAINTS],
        "generated_with_requirements": requirements, "manylinux": "manylinux2014",
        "requirement_constraints": [], "only_binary": [], "no_binary": [],
    }
    lock = {
        "allow_builds": True, "allow_prereleases": False, "allow_wheels": True,
        "build_isolation": True, "constraints": [], "excluded": [],
        "locked_resolves": [{"locked_requirements": [
            {"artifacts": [{"algorithm": "sha256",
                            "hash": hashlib.sha256(wheels[name].read_bytes()).hexdigest(),
                            "url": wheels[name].as_uri()}],
             "project_name": name, "requires_dists": [], "requires_python": None,
             "version": version}
            for name, version in sorted(versions.items())], "platform_tag": None}],
        "only_builds": [], "only_wheels": [], "overridden": [], "path_mappings": {},
        "pex_version": "2.11.0", "pip_version": "24.1.2", "prefer_older_binary": False,
        "requirements": requirements, "requires_python": ["==3.9.*"],
        "resolver_version": "pip-2020-resolver", "style": "universal",
        "target_systems": ["linux", "mac"], "transitive": True, "use_pep517": None,
    }
    header = "".join(f"// {line}\n" for line in json.dumps(metadata, indent=2).splitlines())
    return ("// --- BEGIN PANTS LOCKFILE METADATA: DO NOT EDIT OR REMOVE ---\n" + header
            + "// --- END PANTS LOCKFILE METADATA ---\n\n" + json.dumps(lock, indent=2) + "\n")


def write_app(runner: RuleRunner, wheels: Dict[str, Path], versions: Dict[str, str],
              image_fields: str = "") -> None:
    """An oci_python_app importing every distribution of `versions`, locked, in an image."""
    runner.write_files({
        "3rdparty/app.lock": lockfile(wheels, versions),
        "app/BUILD": "".join(
            f'python_requirement(name="{n}", requirements=["{n}=={v}"], resolve="app")\n'
            for n, v in sorted(versions.items())) + dedent(f"""\
            python_sources(name="lib", resolve="app",
                           interpreter_constraints=["{CONSTRAINTS}"])
            oci_python_app(name="app", dependencies=[":lib"])
            oci_image(name="image", base="scratch", dependencies=[":app"],
                      entrypoint=["/usr/bin/python3", "-m", "main"]{image_fields})
            """),
        "app/main.py": "".join(f"import {n}\n" for n in sorted(versions)),
    })


def third_party_layers(runner: RuleRunner, wheels: Dict[str, Path],
                       versions: Dict[str, str]) -> Dict[str, List[str]]:
    """Package the image with `versions` locked: {layer digest: the distributions in it}."""
    write_app(runner, wheels, versions)
    _, dist = build(runner, Address("app", target_name="image"))
    layout = OciLayout(str(dist / "app/image"))
    image = resolve_image(layout, ref_name="latest")
    layers = {}
    for descriptor in image.layers:
        with layout.open_blob(descriptor.digest) as blob:
            data = gzip.decompress(blob.read())
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            paths = [m.name.split("/") for m in tar.getmembers()]
        # Only the distributions' own files: nothing pex keeps for itself in an installed
        # wheel (its .layout.json, the same path in every distribution, and .prefix/).
        assert not [p for p in paths if p[:2] == ["app", "site-packages"] and len(p) > 2
                    and p[2] in (".layout.json", ".prefix")], paths
        layers[descriptor.digest] = sorted({p[2] for p in paths if p[:2] == ["app", "site-packages"]
                                            and len(p) > 3 and not p[2].endswith(".dist-info")})
    return layers


APP_RESOLVE = (
    "--python-resolves={'ocibuild': '3rdparty/ocibuild.lock', 'app': '3rdparty/app.lock'}",
    "--python-resolves-to-interpreter-constraints={'ocibuild': ['CPython>=3.9,<3.14'], "
    f"'app': ['{CONSTRAINTS}']}}",
    "--python-infer-use-rust-parser",
)


@pytest.fixture(scope="module")
def shared_rule_runner() -> RuleRunner:
    return make_rule_runner(extra_target_types=(
        PythonRequirementTarget, PythonSourceTarget, PythonSourcesGeneratorTarget,
        LockfileTarget, LockfilesGeneratorTarget))


@pytest.fixture
def rule_runner(shared_rule_runner: RuleRunner) -> RuleRunner:
    return reset(shared_rule_runner)


def test_bumping_one_requirement_changes_only_the_layer_that_holds_it(
        rule_runner: RuleRunner, tmp_path: Path) -> None:
    configure(rule_runner, APP_RESOLVE)
    wheels_dir = tmp_path / "wheels"
    wheels_dir.mkdir()
    versions = {name: "1.0" for name in SIZES}
    wheels = {name: make_wheel(wheels_dir, name, "1.0", size) for name, size in SIZES.items()}
    before = third_party_layers(rule_runner, wheels, versions)
    # Three distributions alone, the two smallest together, and the sources (no site-packages).
    assert sorted(before.values()) == [[], ["alpha"], ["bravo"], ["charlie"], ["delta", "echo"]]

    for bumped, shared_with in (("alpha", []), ("delta", ["echo"])):
        bumped_wheels = {**wheels, bumped: make_wheel(wheels_dir, bumped, "1.1", SIZES[bumped])}
        after = third_party_layers(rule_runner, bumped_wheels, {**versions, bumped: "1.1"})
        changed = {d: names for d, names in after.items() if d not in before}
        gone = {d: names for d, names in before.items() if d not in after}
        assert list(changed.values()) == list(gone.values()) == [sorted([bumped, *shared_with])]


def test_a_wheel_for_another_platform_is_an_error_not_a_broken_image(
        rule_runner: RuleRunner, tmp_path: Path) -> None:
    """The requirements are resolved for the machine that builds: an x86-64 wheel in an arm64
    image would fail only when the container imports it."""
    configure(rule_runner, APP_RESOLVE)
    native = make_wheel(tmp_path, "native", "1.0", 100, "cp39-cp39-manylinux2014_x86_64")
    write_app(rule_runner, {"native": native}, {"native": "1.0"}, ', platform="linux/arm64"')
    assert "holds native-1.0-cp39-cp39-manylinux2014_x86_64.whl, which cannot run on " \
           "linux/arm64. An oci_python_app installs the wheels of the machine that builds it" \
           in package_error(rule_runner, "app:image")
