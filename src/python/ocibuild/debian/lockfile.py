"""The lockfile of a set of Debian packages: what was asked for, and the exact files.

Deterministic JSON (sorted keys, sorted packages). `pants package` downloads only what it
names and checks each file's SHA-256 and size; a lockfile that no longer matches the BUILD
target (other packages, sources, components or architectures) is refused.

Version 2 (several suites per target):

    {"version": 2,
     "request": {"sources": [{"suite": "trixie", "mirror": "http://deb.debian.org/debian"},
                             ...],
                 "components": [...], "architectures": [...], "packages": [...]},
     "sources": [{"suite": "trixie", "mirror": "...", "inrelease_signature": "...",
                  "date": "Sat, 08 Nov 2025 10:32:11 UTC", "timestamp": "20251108T103211Z"},
                 ...],
     "packages": {"amd64": [{"name", "version", "architecture", "suite", "url", "filename",
                             "size", "sha256"}, ...]}}

Each source's `inrelease_signature` records how its index was trusted: `verified by gpgv
with KEYRING (key FINGERPRINT)`, or `UNSIGNED` when the target allowed an unverified index;
a lockfile with an index that was not verified is refused unless the target still allows
that (`check_signature`). `date` is the InRelease `Date` and `timestamp` the same instant as
snapshot archives name it: fallback mirrors (`{timestamp}`) find the locked files there.
`url` is the file on the suite's mirror as the BUILD file names it (`filename` is the same
path relative to the mirror, for other mirrors). `load` checks every field it hands on, so a
hand-edited or corrupt lockfile is one clear error.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Sequence

from ocibuild.debian.resolve import Package, check_package_fields
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import field, load_json, str_list

VERSION = 2
# The prefix of `inrelease_signature` for an index whose signature gpgv verified.
VERIFIED = "verified by gpgv with "
UNSIGNED = "NOT verified: the target allows an unsigned index (allow_unsigned_index=True)"
MAX_BYTES = 64 << 20  # a lockfile of thousands of packages is a few MiB
# Image platform architecture (and variant) -> Debian architecture.
DEBIAN_ARCH = {"amd64": "amd64", "arm64": "arm64", "arm/v7": "armhf", "arm/v6": "armel",
               "386": "i386", "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}


def request_of(*, sources: Sequence[Dict[str, str]], components: Sequence[str],
               architectures: Sequence[str], packages: Sequence[str]) -> dict:
    """`sources`: each `{"suite": ..., "mirror": ...}`, in the order the target lists them."""
    return {"sources": [{"suite": s["suite"], "mirror": s["mirror"].rstrip("/")}
                        for s in sources],
            "components": list(components), "architectures": sorted(architectures),
            "packages": sorted(set(packages))}


def document(request: dict, sources: Sequence[dict], resolved: Dict[str, List[Package]]) -> dict:
    """`sources`: per suite of the request, in its order, `suite`, `mirror`,
    `inrelease_signature`, `date` and `timestamp`."""
    return {"version": VERSION, "request": request, "sources": list(sources),
            "packages": {arch: [p.to_lock() for p in sorted(pkgs, key=lambda p: p.name)]
                         for arch, pkgs in sorted(resolved.items())}}


def dumps(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def load(data: bytes, where: str, fix: str = "pants debian-lock ADDRESS") -> dict:
    """The lockfile `data` (from `where`), every field checked: see `_check_package`."""
    doc: Dict[str, Any] = load_json(data, where, max_bytes=MAX_BYTES)
    version = field(doc, "version", int, where)
    if version != VERSION:
        old = (f"a version-{version} Debian lockfile" if version is not None
               else "not a versioned Debian lockfile")
        raise OciBuildError(f"{where} is {old}; this pants-oci reads version {VERSION} "
                            f"(several suites, each package's suite and URL): regenerate it "
                            f"with `{fix}`")
    request = field(doc, "request", dict, where, required=True)
    _check_sources(field(request, "sources", list, f"{where}: request", required=True),
                   f"{where}: request.sources", ("suite", "mirror"))
    for key in ("components", "architectures", "packages"):
        if str_list(request, key, f"{where}: request") is None:
            raise OciBuildError(f"{where}: request: `{key}` is missing")
    sources = field(doc, "sources", list, where, required=True)
    _check_sources(sources, f"{where}: sources",
                   ("suite", "mirror", "inrelease_signature", "date", "timestamp"))
    suites = {s["suite"] for s in sources}
    packages = field(doc, "packages", dict, where, required=True)
    for arch, entries in packages.items():
        if not isinstance(entries, list):
            raise OciBuildError(f"{where}: `packages.{arch}` must be a JSON array")
        for entry in entries:
            _check_package(entry, f"{where}: packages.{arch}", suites)
    return doc


def _check_sources(sources: list, where: str, keys: Sequence[str]) -> None:
    if not sources:
        raise OciBuildError(f"{where}: lists no suite; regenerate the lockfile")
    for source in sources:
        if not isinstance(source, dict):
            raise OciBuildError(f"{where}: an entry is not a JSON object; regenerate the "
                                "lockfile")
        for key in keys:
            field(source, key, str, where, required=True)


def _check_package(entry: object, where: str, suites: set) -> None:
    if not isinstance(entry, dict):
        raise OciBuildError(f"{where}: an entry is not a JSON object; regenerate the lockfile")
    name = field(entry, "name", str, where, required=True)
    for key in ("version", "architecture", "url"):
        field(entry, key, str, f"{where}: {name}", required=True)
    if field(entry, "suite", str, f"{where}: {name}", required=True) not in suites:
        raise OciBuildError(f"{where}: {name}: the suite {entry['suite'][:80]!r} is not one of "
                            "the lockfile's `sources`; regenerate the lockfile")
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
    """Refuse a lockfile with an index that was not verified unless the target allows that:
    the lockfile is only as trustworthy as the indexes it was resolved from."""
    if allow_unsigned:
        return
    for source in doc.get("sources", []):
        signature = str(source.get("inrelease_signature", ""))
        if not signature.startswith(VERIFIED):
            raise OciBuildError(
                f"{where} was locked from an index whose signature was not verified "
                f"({source.get('suite')!s:.80}: inrelease_signature: {signature[:200]!r}), and "
                "the target does not set `allow_unsigned_index=True`; lock again with a "
                f"keyring (`{fix}`), or set `allow_unsigned_index=True` if trusting the mirror "
                "and the network is intended")


def source_of(doc: dict, suite: str) -> dict:
    """The lockfile's `sources` entry of `suite` (checked by `load`)."""
    return next(s for s in doc["sources"] if s["suite"] == suite)


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
