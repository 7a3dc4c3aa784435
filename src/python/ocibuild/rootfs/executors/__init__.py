"""How a RUN step's command is run confined to its tree: one module a mechanism.

Each takes a `Step` and returns the command's exit status. They confine paths, for build
fidelity (the command sees the image, not the host); none is a security boundary against a
hostile Dockerfile: the pod or VM the build runs in is (docs/run-steps.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Dict, Optional, Sequence, Tuple, Union

Output = Union[None, int, IO]


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
