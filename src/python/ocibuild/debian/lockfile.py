"""The lockfile of a set of Debian packages: what was asked for, and the exact files.

Deterministic JSON (sorted keys, sorted packages). `pants package` downloads only what it
names and checks each file's SHA-256 and size; a lockfile that no longer matches the BUILD
target (other packages, suite, mirror, components or architectures) is refused.
"""

from __future__ import annotations

import json
from typing import Dict, List, Sequence

from ocibuild.debian.resolve import Package
from ocibuild.errors import OciBuildError

VERSION = 1
# Image platform architecture (and variant) -> Debian architecture.
DEBIAN_ARCH = {"amd64": "amd64", "arm64": "arm64", "arm/v7": "armhf", "arm/v6": "armel",
               "386": "i386", "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}


def request_of(*, suite: str, mirror: str, components: Sequence[str],
               architectures: Sequence[str], packages: Sequence[str]) -> dict:
    return {"suite": suite, "mirror": mirror.rstrip("/"), "components": list(components),
            "architectures": sorted(architectures), "packages": sorted(set(packages))}


def document(request: dict, signature: str, resolved: Dict[str, List[Package]]) -> dict:
    return {"version": VERSION, "request": request, "inrelease_signature": signature,
            "packages": {arch: [p.to_lock() for p in sorted(pkgs, key=lambda p: p.name)]
                         for arch, pkgs in sorted(resolved.items())}}


def dumps(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def load(data: bytes, where: str) -> dict:
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise OciBuildError(f"{where} is not JSON ({err}); regenerate it") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise OciBuildError(f"{where} is not a version-{VERSION} Debian lockfile; regenerate it")
    return doc


def check_current(doc: dict, request: dict, where: str, fix: str) -> None:
    locked = doc.get("request")
    if locked != request:
        changed = sorted(k for k in request if (locked or {}).get(k) != request[k])
        raise OciBuildError(f"{where} is stale: {', '.join(changed) or 'its request'} changed in "
                            f"the BUILD file since it was written; run `{fix}`")


def packages_for(doc: dict, arch: str, where: str) -> List[dict]:
    locked = doc.get("packages", {})
    if arch not in locked:
        raise OciBuildError(f"{where} has no packages for the {arch} architecture (it has "
                            f"{', '.join(sorted(locked)) or 'none'}); add it to "
                            "`architectures` and lock again")
    return locked[arch]


def debian_arch(architecture: str, variant: str = "") -> str:
    key = f"{architecture}/{variant}" if architecture == "arm" else architecture
    if key not in DEBIAN_ARCH:
        raise OciBuildError(f"no Debian architecture for the platform architecture {key!r}")
    return DEBIAN_ARCH[key]
