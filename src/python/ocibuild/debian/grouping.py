"""Which packages share a layer: a layer budget that survives updates.

One layer per package is ideal for updates (a new lock re-pushes one small layer) but a
Python base is then 40+ layers, most a few KB; runtimes pay per layer (containerd refuses
more than 127) and registries per blob. `max_layers` caps the *package* layers; the root
layer (merged-/usr symlinks) and the config layer (passwd, group, CA bundle) are not
counted: a base has at most `max_layers + 2` layers.

The rule, a pure function of each package's name and .deb size in the lockfile:

* `buckets = max(1, max_layers // 4)` layers are shared; the other
  `solo = max_layers - buckets` go to the largest packages, one each.
* "Largest" ranks packages by *size class* (the power of two of the .deb's size,
  `size.bit_length()`), largest class first, then by name. Not by exact size: a version
  bump moves a package's size a little and must not reorder the ranking; it only moves a
  package's rank when its size crosses a power of two.
* Every other package goes to bucket `sha256(name) mod buckets`: by its name alone, so a
  package added to or removed from the closure, or updated, changes its own bucket and no
  other. (No packing by size: a best-fit packer balances buckets, but one new package
  reshuffles them all.)
* A layer's packages are sorted by name; layers are ordered by their first package's name.

What survives: a version bump that keeps a package's .deb in the same power of two changes
exactly one layer (its own, or its bucket); so does adding or removing a package that is not
among the `solo` largest. What does not: a package crossing into (or out of) the `solo`
largest by size class, or a new package that does, brings up to three new layers (its own
layer, the bucket it leaves, and the bucket of the package it displaces).

The trade-off: a bucket holds about 1/`buckets` of the small packages, so updating one
small library re-pushes its whole bucket (in the Python example, about 3 MB instead of
100 KB), while the big, often-updated packages (libc6, libssl3, python3.11) keep a layer each.
"""

from __future__ import annotations

import hashlib
from typing import Dict, List, Sequence, Tuple

from ocibuild.errors import OciBuildError

DEFAULT_MAX_LAYERS = 8
MIN_MAX_LAYERS = 2
MAX_MAX_LAYERS = 100


def check_max_layers(value: int, where: str = "max_layers") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or \
            not MIN_MAX_LAYERS <= value <= MAX_MAX_LAYERS:
        raise OciBuildError(f"{where} must be an integer from {MIN_MAX_LAYERS} to "
                            f"{MAX_MAX_LAYERS} (one layer for the largest package and one "
                            f"shared by the rest, at least), not {value!r}")
    return value


def budget(max_layers: int) -> Tuple[int, int]:
    """(solo layers, shared buckets) for a budget of `max_layers` package layers."""
    buckets = max(1, check_max_layers(max_layers) // 4)
    return max_layers - buckets, buckets


def size_class(size: int) -> int:
    return max(0, int(size)).bit_length()


def bucket_of(name: str, buckets: int) -> int:
    # sha256, not hash(): the same bucket on every machine and Python version.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % buckets


def group_packages(sizes: Dict[str, int], max_layers: int) -> List[Tuple[str, ...]]:
    """The package layers for packages `{name: .deb size}`: tuples of names, each sorted,
    ordered by their first name. At most `max_layers` of them, none empty."""
    solo, buckets = budget(max_layers)
    ranked = sorted(sizes, key=lambda name: (-size_class(sizes[name]), name))
    groups: List[Sequence[str]] = [(name,) for name in ranked[:solo]]
    shared: Dict[int, List[str]] = {}
    for name in ranked[solo:]:
        shared.setdefault(bucket_of(name, buckets), []).append(name)
    groups += list(shared.values())
    return sorted((tuple(sorted(g)) for g in groups), key=lambda g: g[0])
