"""How a RUN step's command is run confined to its tree: one module a mechanism.

Each takes a `Step` and returns the command's exit status. They confine paths, for build
fidelity (the command sees the image, not the host); none is a security boundary against a
hostile Dockerfile: the pod or VM the build runs in is (docs/run-steps.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Dict, FrozenSet, Optional, Sequence, Tuple, Union

Output = Union[None, int, IO]


@dataclass(frozen=True)
class Mount:
    """A host file or directory the step sees at `target`, for that step only: the tree never
    holds it (RUN --mount). `target` exists in the tree as a directory or file (step.py makes
    it, and removes it after if it made it)."""

    target: str  # absolute, inside the image, no symlink on the way (step.py checked)
    source: str  # host path, a directory or a regular file
    readonly: bool = True


@dataclass(frozen=True)
class Step:
    root: str
    argv: Sequence[str]
    env: Dict[str, str]  # the command's whole environment, preload variables included
    cwd: str  # inside the image
    user: Tuple[int, int]
    work: str  # a private host directory for the executor's own files
    preload: Optional[str] = None  # host path of libfakeroot, when ownership is faked
    stdout: Output = None
    stderr: Output = None
    timeout: Optional[float] = None
    mounts: Tuple[Mount, ...] = ()
    network: str = "default"  # "none": a network namespace of its own, loopback only
    groups: Tuple[int, ...] = ()  # supplementary group ids, where the mechanism can set them
    cpus: Optional[FrozenSet[int]] = None  # the CPUs its processes run on (rootfs/cpus.py)
