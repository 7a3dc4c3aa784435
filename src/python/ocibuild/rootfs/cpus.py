"""Which CPUs a RUN step's processes run on.

Under proot every system call of the step stops it twice for proot, its tracer, to look at.
Where the tracer and the step run on different CPUs, each stop wakes the other CPU; in a
virtual machine (every cloud node, so every pod) waking an idle virtual CPU goes through the
hypervisor and costs tens of microseconds. On one CPU the tracer runs as the step stops, with
no wake-up at all: a getppid() under proot took 28.7 us spread and 5.4 us on one CPU, and
bench (b)'s `tar -x` + `compileall` step 15.4-16.4 s against 4.0-4.2 s (docs/performance.md).
So proot steps run on one CPU unless `--cpuset-cpus` says otherwise (docker build's flag):
a step that computes in parallel (`make -j`) is slower there, and sees one CPU in `nproc`.
"""

from __future__ import annotations

import os
import re
from typing import FrozenSet, Optional

from ocibuild.errors import OciBuildError

_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")  # ASCII digits only, as docker's parser


def allowed() -> FrozenSet[int]:
    return frozenset(os.sched_getaffinity(0))


def current() -> int:
    """The CPU this process runs on now (so builds side by side spread as the kernel spread
    them), else the lowest it may run on."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        cpu = int(fields[36])  # field 39 of proc(5), "processor"; fields[0] is field 3
    except (OSError, IndexError, ValueError):
        cpu = -1
    mine = allowed()
    return cpu if cpu in mine else min(mine)


def parse(spec: str, flag: str = "--cpuset-cpus") -> FrozenSet[int]:
    """docker's spelling: `0-3`, `0,2`, `1,3-5`; every CPU one this process may run on."""
    cpus = set()
    for part in spec.split(","):
        match = _RANGE.fullmatch(part.strip())
        if match is None:
            raise OciBuildError(f"{flag} {spec!r}: not a CPU list (docker's spelling: 0-3, "
                                "0,2 or 1,3-5)")
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if last < first or last > 4095:
            raise OciBuildError(f"{flag} {spec!r}: {part.strip()!r} is no CPU range")
        cpus.update(range(first, last + 1))
    outside = sorted(cpus - allowed())
    if outside:
        raise OciBuildError(f"{flag} {spec!r}: this build may not run on CPU "
                            f"{','.join(map(str, outside))} (it may run on "
                            f"{spell(allowed())})")
    return frozenset(cpus)


def spell(cpus: FrozenSet[int]) -> str:
    """`{0, 1, 2, 5}` as `0-2,5`."""
    runs, start, last = [], None, None
    for cpu in sorted(cpus):
        if start is None:
            start = last = cpu
        elif cpu == last + 1:
            last = cpu
        else:
            runs.append((start, last))
            start = last = cpu
    if start is not None:
        runs.append((start, last))
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def for_step(mechanism: str, asked: Optional[FrozenSet[int]]) -> Optional[FrozenSet[int]]:
    """What the step runs on: what was asked; under proot, else, the build's current CPU;
    None (wherever the build may run) otherwise."""
    if asked is not None:
        return asked
    return frozenset({current()}) if mechanism == "proot" else None
