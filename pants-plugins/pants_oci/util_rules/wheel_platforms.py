"""Whether the wheels a PEX carries can run on an image's platform.

A packed or loose PEX holds its third-party distributions as `.deps/<wheel file name>/`
directories, so the platform tags of every wheel are in the layer's paths. A distribution
with platform-specific wheels only for other machines (numpy built for x86_64 in an arm64
image) would fail at import time in the container; it is refused as the image is built,
naming the wheel, the dependency and the platform. A zipapp PEX (one file) is not looked
into.
"""

from __future__ import annotations

import re
from typing import Iterable

from ocibuild.platform import Platform

_WHEEL_DIR = re.compile(r"(?:^|/)\.deps/([^/]+\.whl)(?:/|$)")
# The machine names wheel platform tags use for each OCI architecture.
_MACHINES = {
    "amd64": ("x86_64",),
    "arm64": ("aarch64",),
    "arm": ("armv7l", "armv6l"),
    "386": ("i686", "i386"),
    "ppc64le": ("ppc64le",),
    "s390x": ("s390x",),
    "riscv64": ("riscv64",),
}
_OS_TAGS = {"linux": ("manylinux", "musllinux", "linux")}


def wheels_in(paths: Iterable[str]) -> set[str]:
    """The wheel file names of the `.deps/` directories among `paths`."""
    return {m.group(1) for path in paths for m in [_WHEEL_DIR.search(path)] if m}


def _serves(tag: str, platform: Platform) -> bool:
    if tag == "any":
        return True
    os_ok = any(tag.startswith(prefix) for prefix in _OS_TAGS.get(platform.os, (platform.os,)))
    machines = _MACHINES.get(platform.architecture, (platform.architecture,))
    return os_ok and any(tag.endswith("_" + m) for m in machines)


def _distribution(wheel: str) -> str:
    return re.sub(r"[-_.]+", "-", wheel.split("-", 1)[0]).lower()


def wheels_for_other_platforms(wheels: Iterable[str], platform: Platform) -> list[str]:
    """The wheels of each distribution none of whose wheels serves `platform`, sorted."""
    by_distribution: dict[str, list[str]] = {}
    for wheel in wheels:
        by_distribution.setdefault(_distribution(wheel), []).append(wheel)
    wrong = []
    for found in by_distribution.values():
        tags = [tag for wheel in found for tag in wheel[: -len(".whl")].split("-")[-1].split(".")]
        if not any(_serves(tag, platform) for tag in tags):
            wrong.extend(found)
    return sorted(wrong)
