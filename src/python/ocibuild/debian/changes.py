"""What a new lock changes, and which locked packages have newer versions in the suites.

`pants debian-lock` prints `diff` of the previous and the new lockfile; `--check` prints
`pending` and fails when it is not empty (e.g. a security update waiting in
`trixie-security`).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

from ocibuild.debian.resolve import Index
from ocibuild.debian.version import version_key

Versions = Dict[str, Dict[str, Tuple[str, str]]]  # arch -> name -> (version, suite)


def versions(doc: Optional[Mapping]) -> Versions:
    """Each architecture's locked packages of `doc` (any lockfile version; entries that are
    not well formed are skipped: this only feeds a report)."""
    out: Versions = {}
    packages = doc.get("packages") if isinstance(doc, Mapping) else None
    for arch, entries in (packages.items() if isinstance(packages, Mapping) else ()):
        for e in entries if isinstance(entries, list) else ():
            if isinstance(e, Mapping) and isinstance(e.get("name"), str) \
                    and isinstance(e.get("version"), str):
                suite = e.get("suite") if isinstance(e.get("suite"), str) else ""
                out.setdefault(str(arch), {})[e["name"]] = (e["version"], suite)
    return out


def diff(old: Optional[Mapping], new: Mapping) -> List[str]:
    """One line per added, removed, upgraded or downgraded package and architecture, e.g.
    `amd64: upgraded libssl3t64 3.5.1-1 -> 3.5.1-1+deb13u1 (trixie-security)`."""
    before, after = versions(old), versions(new)
    lines = []
    for arch in sorted(set(before) | set(after)):
        was, now = before.get(arch, {}), after.get(arch, {})
        for name in sorted(set(was) | set(now)):
            if name not in was:
                lines.append(f"{arch}: added {name} {now[name][0]}{_from(now[name][1])}")
            elif name not in now:
                lines.append(f"{arch}: removed {name} {was[name][0]}")
            elif was[name][0] != now[name][0]:
                up = version_key(now[name][0]) > version_key(was[name][0])
                lines.append(f"{arch}: {'upgraded' if up else 'downgraded'} {name} "
                             f"{was[name][0]} -> {now[name][0]}{_from(now[name][1])}")
    return lines


def pending(doc: Mapping, indexes: Mapping[str, Index]) -> List[str]:
    """One line per locked package (and architecture) of which a suite now has a higher
    version than the lockfile's, e.g.
    `amd64: libssl3t64 3.5.1-1 -> 3.5.1-1+deb13u1 (trixie-security)`."""
    lines = []
    for arch, locked in sorted(versions(doc).items()):
        index = indexes.get(arch)
        for name, (version, _) in sorted(locked.items()):
            best = index.by_name.get(name, [None])[0] if index is not None else None
            if best is not None and version_key(best.version) > version_key(version):
                lines.append(f"{arch}: {name} {version} -> {best.version}{_from(best.suite)}")
    return lines


def _from(suite: str) -> str:
    return f" ({suite})" if suite else ""
