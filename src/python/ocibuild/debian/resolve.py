"""Resolve requested packages to their dependency closure in one architecture, across the
suites of the index (e.g. trixie, trixie-updates and trixie-security together).

`Pre-Depends` and `Depends` are followed (not `Recommends`, as distroless images want). For
each dependency group the first alternative that can be satisfied wins, preferring what is
already chosen; virtual packages resolve through `Provides`. A suite carries one version per
package, so there is no backtracking: a constraint the chosen version breaks is an error.
Across suites the highest version of a package wins, as apt does with its default pins (all
sources equal); between equal versions the first suite listed wins.
Essential packages are not added implicitly: the image holds exactly the closure.

Index entries are checked where their fields become paths, URLs and digests
(`check_package_fields`): a package name, a relative pool path, a byte count, a SHA-256.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ocibuild.debian.control import Paragraph, Relation, parse_relations, provides
from ocibuild.debian.version import satisfies, version_key
from ocibuild.errors import OciBuildError

# Debian policy 5.6.1 (which also asks for two characters, not needed for safety); the name
# also becomes a file name in the image (status.d/<name>).
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# A pool path: relative, no `.`/`..` components, no component starting with `-` (it becomes
# a command-line argument) or `.`; what Debian pool file names use (`%3a` for an epoch).
_POOL_COMPONENT = r"[A-Za-z0-9_][A-Za-z0-9_+.~%-]*"
POOL_PATH = re.compile(rf"{_POOL_COMPONENT}(/{_POOL_COMPONENT})*")


def check_package_fields(name: str, filename: str, size: object, sha256: str, where: str
                         ) -> None:
    """The fields of an index entry or lockfile entry that become paths, URLs and digests."""
    if not PACKAGE_NAME.fullmatch(name):
        raise OciBuildError(f"{where}: {name[:80]!r} is not a Debian package name")
    if not POOL_PATH.fullmatch(filename) or ".." in filename.split("/"):
        raise OciBuildError(f"{where}: package {name}: the file name {filename[:120]!r} is not "
                            "a relative pool path (no `..`, no leading `/`, `.` or `-`)")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise OciBuildError(f"{where}: package {name}: the size {size!r} is not a byte count")
    if not SHA256_HEX.fullmatch(sha256):
        raise OciBuildError(f"{where}: package {name}: {sha256[:80]!r} is not a SHA-256 "
                            "(64 lowercase hex digits)")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    architecture: str
    filename: str  # path under the mirror URL
    size: int
    sha256: str
    depends: str = ""
    pre_depends: str = ""
    provides: str = ""
    # Where it comes from: the suite, and its mirror as the BUILD file writes it.
    suite: str = ""
    mirror: str = ""

    @classmethod
    def from_paragraph(cls, p: Paragraph, where: str = "Packages index") -> "Package":
        missing = [k for k in ("Package", "Version", "Architecture", "Filename", "Size",
                               "SHA256") if k not in p]
        if missing:
            raise OciBuildError(f"{where}: the entry {p.get('Package', '?')[:80]!r} lacks "
                                f"{', '.join(missing)}")
        size = p["Size"]
        if not size.isdigit() or not size.isascii():
            raise OciBuildError(f"{where}: package {p['Package'][:80]}: Size {size[:40]!r} is "
                                "not a byte count")
        check_package_fields(p["Package"], p["Filename"], int(size), p["SHA256"], where)
        return cls(p["Package"], p["Version"], p["Architecture"], p["Filename"], int(size),
                   p["SHA256"], p.get("Depends", ""), p.get("Pre-Depends", ""),
                   p.get("Provides", ""))

    def to_lock(self) -> dict:
        return {"name": self.name, "version": self.version, "architecture": self.architecture,
                "filename": self.filename, "size": self.size, "sha256": self.sha256,
                "suite": self.suite, "url": f"{self.mirror}/{self.filename}"}


class Index:
    """The packages of one architecture (plus `all`), by name and by what they provide, from
    one or more suites: each name's versions best first (the highest; a stable sort, so of
    equal versions the one added first)."""

    def __init__(self, packages: Iterable[Package]) -> None:
        self.by_name: Dict[str, List[Package]] = {}
        self.providers: Dict[str, List[Tuple[Package, Optional[str]]]] = {}
        for package in packages:
            self.by_name.setdefault(package.name, []).append(package)
            for name, version in provides(package.provides):
                self.providers.setdefault(name, []).append((package, version))
        for versions in self.by_name.values():
            versions.sort(key=lambda p: version_key(p.version), reverse=True)

    def candidates(self, relation: Relation) -> List[Package]:
        """Packages that satisfy `relation`, best first: real ones, then providers."""
        real = [p for p in self.by_name.get(relation.name, [])
                if relation.op is None or satisfies(p.version, relation.op, relation.version)]
        virtual = sorted(
            (p for p, v in self.providers.get(relation.name, [])
             if relation.op is None or (v is not None and satisfies(v, relation.op, relation.version))),
            key=lambda p: p.name)
        return real + virtual


def _satisfied_by(chosen: Dict[str, Package], relation: Relation) -> Optional[Package]:
    package = chosen.get(relation.name)
    if package is not None and (relation.op is None
                                or satisfies(package.version, relation.op, relation.version)):
        return package
    for package in chosen.values():
        for name, version in provides(package.provides):
            if name == relation.name and (relation.op is None or (
                    version is not None and satisfies(version, relation.op, relation.version))):
                return package
    return None


def resolve(index: Index, requested: Sequence[str], where: str) -> List[Package]:
    missing = sorted(n for n in requested if n not in index.by_name)
    if missing:
        raise OciBuildError(f"{where}: no package named {', '.join(missing)} (check the "
                            "spelling, the suite, the components and the architecture)")
    chosen: Dict[str, Package] = {}
    why: Dict[str, str] = {}
    queue = deque()
    for name in sorted(set(requested)):
        chosen[name] = index.by_name[name][0]
        why[name] = "requested"
        queue.append(chosen[name])
    while queue:
        package = queue.popleft()
        for group in parse_relations(package.pre_depends) + parse_relations(package.depends):
            if any(_satisfied_by(chosen, r) for r in group):
                continue
            pick = next((c for r in group for c in index.candidates(r)
                         if c.name not in chosen), None)
            if pick is None:
                wanted = " | ".join(str(r) for r in group)
                clash = [chosen[r.name] for r in group if r.name in chosen]
                detail = (f"; {clash[0].name} {clash[0].version} is already chosen "
                          f"({why[clash[0].name]})") if clash else ""
                raise OciBuildError(f"{where}: {package.name} {package.version} depends on "
                                    f"{wanted}, which the suite cannot satisfy{detail}")
            chosen[pick.name] = pick
            why[pick.name] = f"needed by {package.name}"
            queue.append(pick)
    return [chosen[n] for n in sorted(chosen)]
