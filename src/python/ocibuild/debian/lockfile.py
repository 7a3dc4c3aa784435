"""The lockfile of a set of Debian packages: what was asked for, and the exact files.

Deterministic JSON (sorted keys, sorted packages). `pants package` downloads only what it
names and checks each file's SHA-256 and size; a lockfile that no longer matches the BUILD
target (other packages, suite, mirror, components or architectures) is refused.

`inrelease_signature` records how the index was trusted: `verified by gpgv with KEYRING
(key FINGERPRINT)`, or `UNSIGNED` when the target allowed an unverified index; a lockfile
whose index was not verified is refused unless the target still allows that
(`check_signature`). `load` checks every field it hands on, so a hand-edited or corrupt
lockfile is one clear error.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Sequence

from ocibuild.debian.resolve import Package, check_package_fields
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import field, load_json, str_list

VERSION = 1
# The prefix of `inrelease_signature` for an index whose signature gpgv verified. Version-1
# lockfiles written before the keyring became mandatory say the same, so they stay valid.
VERIFIED = "verified by gpgv with "
UNSIGNED = "NOT verified: the target allows an unsigned index (allow_unsigned_index=True)"
MAX_BYTES = 64 << 20  # a lockfile of thousands of packages is a few MiB
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
    """The lockfile `data` (from `where`), every field checked: see `_check_package`."""
    doc: Dict[str, Any] = load_json(data, where, max_bytes=MAX_BYTES)
    if field(doc, "version", int, where) != VERSION:
        raise OciBuildError(f"{where} is not a version-{VERSION} Debian lockfile; regenerate it")
    request = field(doc, "request", dict, where, required=True)
    for key in ("suite", "mirror"):
        field(request, key, str, f"{where}: request", required=True)
    for key in ("components", "architectures", "packages"):
        if str_list(request, key, f"{where}: request") is None:
            raise OciBuildError(f"{where}: request: `{key}` is missing")
    field(doc, "inrelease_signature", str, where, required=True)
    packages = field(doc, "packages", dict, where, required=True)
    for arch, entries in packages.items():
        if not isinstance(entries, list):
            raise OciBuildError(f"{where}: `packages.{arch}` must be a JSON array")
        for entry in entries:
            _check_package(entry, f"{where}: packages.{arch}")
    return doc


def _check_package(entry: object, where: str) -> None:
    if not isinstance(entry, dict):
        raise OciBuildError(f"{where}: an entry is not a JSON object; regenerate the lockfile")
    name = field(entry, "name", str, where, required=True)
    for key in ("version", "architecture"):
        field(entry, key, str, f"{where}: {name}", required=True)
    check_package_fields(name, field(entry, "filename", str, f"{where}: {name}", required=True),
                         field(entry, "size", int, f"{where}: {name}", required=True),
                         field(entry, "sha256", str, f"{where}: {name}", required=True), where)


def check_current(doc: dict, request: dict, where: str, fix: str) -> None:
    locked = doc.get("request")
    if locked != request:
        locked = locked if isinstance(locked, dict) else {}
        changed = sorted(k for k in request if locked.get(k) != request[k])
        raise OciBuildError(f"{where} is stale: {', '.join(changed) or 'its request'} changed in "
                            f"the BUILD file since it was written; run `{fix}`")


def check_signature(doc: dict, allow_unsigned: bool, where: str, fix: str) -> None:
    """Refuse a lockfile whose index was not verified unless the target allows that: the
    lockfile is only as trustworthy as the index it was resolved from."""
    signature = str(doc.get("inrelease_signature", ""))
    if not allow_unsigned and not signature.startswith(VERIFIED):
        raise OciBuildError(
            f"{where} was locked from an index whose signature was not verified "
            f"(inrelease_signature: {signature[:200]!r}), and the target does not set "
            f"`allow_unsigned_index=True`; lock again with a keyring (`{fix}`), or set "
            "`allow_unsigned_index=True` if trusting the mirror and the network is intended")


def packages_for(doc: dict, arch: str, where: str) -> List[dict]:
    """The checked entries (see `load`) of one architecture."""
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
