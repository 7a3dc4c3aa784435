"""Lock a set of Debian packages: read each suite's verified indexes, resolve, write the lock.

The one place a lockfile is made, for `pants debian-lock` and `ocibuild lock` alike, so the
same request against the same mirror gives the same lockfile whichever tool made it. Each
suite's InRelease is checked with gpgv and its keyring (repository.Mirror), the Packages
indexes against InRelease; the lockfile records how each suite was trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from ocibuild.debian import lockfile
from ocibuild.debian.changes import pending
from ocibuild.debian.repository import Mirror
from ocibuild.debian.resolve import Index, resolve
from ocibuild.errors import OciBuildError


@dataclass(frozen=True)
class Suite:
    suite: str
    mirror: str  # as the user names it: what the lockfile records
    keyring: Optional[str] = None  # the file to verify with; None: the Debian archive keyring
    keyring_name: Optional[str] = None  # how the lockfile names it (default: `keyring`)


@dataclass(frozen=True)
class Resolved:
    request: dict
    sources: tuple  # per suite: the lockfile's `sources` entry
    indexes: Dict[str, Index]  # per architecture, all suites together

    def document(self, where: str) -> dict:
        """The lockfile; `where` names what is locked in errors (a target, a file)."""
        resolved = {arch: resolve(index, self.request["packages"], f"{where} ({arch})")
                    for arch, index in self.indexes.items()}
        return lockfile.document(self.request, self.sources, resolved)

    def pending(self, doc: dict) -> List[str]:
        """Newer versions the suites have of packages `doc` locks."""
        return pending(doc, self.indexes)


def read_suites(request: dict, suites: Sequence[Suite], cache_dir: Optional[str],
                mirror_url: Callable[[str], str] = lambda url: url,
                allow_unsigned: bool = False) -> Resolved:
    """Every suite's verified InRelease and Packages indexes, merged per architecture.
    `mirror_url` maps a mirror as named to where it is read (a local or corporate mirror
    serving the same files); `cache_dir` keeps verified indexes by digest."""
    sources, packages = [], {arch: [] for arch in request["architectures"]}
    for source in suites:
        mirror = Mirror(mirror_url(source.mirror), source.suite, cache_dir, source.keyring,
                        allow_unsigned=allow_unsigned, keyring_name=source.keyring_name,
                        origin=source.mirror)
        try:
            release = mirror.release()
            for arch in request["architectures"]:
                for component in request["components"]:
                    packages[arch] += mirror.packages(release, component, arch)
        except OciBuildError as err:
            raise OciBuildError(f"suite {source.suite}: {err}") from None
        sources.append({"suite": source.suite, "mirror": mirror.origin,
                        "inrelease_signature": release.signature, "date": release.date,
                        "timestamp": release.timestamp})
    return Resolved(request, tuple(sources), {a: Index(p) for a, p in packages.items()})


def check(data: Optional[bytes], resolved: Resolved, path: str, fix: str) -> List[str]:
    """Why the lockfile `data` (None: there is none at `path`) is not current: newer
    versions in the suites, or a missing or stale lockfile; empty when it is current."""
    if data is None:
        return [f"no lockfile at {path}; create it with `{fix}`"]
    try:
        doc = lockfile.load(data, path, fix)
        lockfile.check_current(doc, resolved.request, path, fix)
    except OciBuildError as err:
        return [str(err)]
    return resolved.pending(doc)


def summary(doc: dict) -> str:
    sizes = ", ".join(f"{len(pkgs)} packages for {arch} ({sum(p['size'] for p in pkgs) / 1e6:.1f} MB)"
                      for arch, pkgs in doc["packages"].items())
    signatures = "; ".join(f"{s['suite']}: InRelease signature {s['inrelease_signature']}"
                           for s in doc["sources"])
    return f"{sizes}; {signatures}"
