"""A Dockerfile built one step at a time (what the Pants target runs): the plan of the steps,
each step from a state directory to the next, and the image of the final state
(`ocibuild.dockerfile.plan` and `ocibuild.dockerfile.state` say what each does).

A step's sandbox holds only what it reads, so its Pants process is keyed by exactly that: the
stages it builds on (their config and layer blobs), the Dockerfile up to its instruction, the
build args the Dockerfile declares, and the context files it reads (none for RUN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ocibuild.protocol.assemble import Pairs
from ocibuild.protocol.document import Document, Part

# What a step reads of the build context.
NO_CONTEXT = "none"
PATTERNS = "patterns"  # only the files its literal source patterns match
WHOLE_CONTEXT = "all"  # a `$` in a source, a pattern Pants' globs may not match alike, ...
CONTEXT_KINDS = (NO_CONTEXT, PATTERNS, WHOLE_CONTEXT)


def _epoch(n: int) -> Optional[str]:
    return None if n >= 0 else "must be a whole number of seconds since 1970-01-01 UTC, e.g. 0"


@dataclass(frozen=True)
class DockerfilePlanRequest(Document):
    KIND = "dockerfile-plan"

    dockerfile: str  # the file in the sandbox
    name: str  # its path as the user knows it, for messages
    build_args: Pairs = ()
    target: Optional[str] = None  # the stage to build (None: the last)
    platform: Optional[str] = None


@dataclass(frozen=True)
class PlanStep(Part):
    """One process: `init` (a stage made from its FROM) or instructions `first..last` of a
    stage (all but RUN grouped; a RUN alone)."""

    stage: int
    first: int  # instruction index in the stage; -1 for `init`
    last: int
    keyword: str  # "FROM" for init, "RUN", or the first instruction's keyword of a group
    line: int  # where it starts in the Dockerfile
    prefix_bytes: int  # the Dockerfile's first bytes the step needs (up to its instruction)
    context: str = field(default=NO_CONTEXT, metadata={
        "check": lambda v: None if v in CONTEXT_KINDS else f"must be one of {CONTEXT_KINDS}"})
    patterns: Tuple[str, ...] = ()  # with `patterns`: context paths, Go-style `*`/`?` globs
    from_stages: Tuple[int, ...] = ()  # stages it reads (COPY --from, FROM a stage)
    images: Tuple[str, ...] = ()  # image references it reads (FROM, COPY --from)


@dataclass(frozen=True)
class PlanStage(Part):
    index: int
    base: str  # expanded: "scratch", an earlier stage's name/index, or an image reference
    parent: Optional[int]  # the stage it is FROM
    image: Optional[str]  # the image it is FROM (None: scratch or a stage)


@dataclass(frozen=True)
class DockerfilePlan(Document):
    KIND = "dockerfile-plan-result"

    goal: int  # the stage whose image is built
    stages: Tuple[PlanStage, ...]  # the needed ones, in order
    steps: Tuple[PlanStep, ...]
    images: Tuple[str, ...]  # every image reference read, once, sorted
    declared_args: Tuple[str, ...]  # every ARG name (global and in the needed stages)
    warnings: Tuple[str, ...] = ()


@dataclass(frozen=True)
class LocalImage(Part):
    """An image a FROM or COPY --from names, as an OCI layout in the sandbox."""

    name: str  # as the Dockerfile names it (expanded)
    layout: str
    ref_name: Optional[str] = None
    spec: Optional[str] = None  # what it is to the user (a Pants address), for annotations


@dataclass(frozen=True)
class DockerfileStepRequest(Document):
    KIND = "dockerfile-step"

    dockerfile: str  # the Dockerfile's first `prefix_bytes`, in the sandbox
    name: str
    step: PlanStep
    stages_dir: str  # `<dir>/<index>/`: the state of each stage the step reads
    # The (part of the) context it reads; `<dockerfile>.dockerignore` is looked up beside
    # the Dockerfile, as BuildKit does.
    context: Optional[str] = None
    images: Tuple[LocalImage, ...] = ()
    build_args: Pairs = ()
    platform: Optional[str] = None
    created_epoch: int = field(default=0, metadata={"check": _epoch})
    compression: str = "gzip"
    # The compressor version the caller keyed its cache on: a different one is refused, so
    # another libdeflate or zlib never reuses (or poisons) a cached layer digest.
    compressor: Optional[str] = None


@dataclass(frozen=True)
class RunReport(Part):
    at: str
    mechanism: str
    ownership: str
    lost: Tuple[str, ...] = ()


@dataclass(frozen=True)
class DockerfileStepResult(Document):
    KIND = "dockerfile-step-result"

    stage: int
    layers: int  # the stage's layers after the step
    runs: Tuple[RunReport, ...] = ()


@dataclass(frozen=True)
class DockerfileImageRequest(Document):
    """The image of a built stage: its config, manifest and index.json are written; the layer
    blobs are the caller's to merge in (the stage's and its base's)."""

    KIND = "dockerfile-image"

    stages_dir: str
    stage: int
    images: Tuple[LocalImage, ...] = ()
    ref_names: Tuple[str, ...] = ("latest",)
    repository: Optional[str] = None
    annotations: Pairs = ()
    created_epoch: int = field(default=0, metadata={"check": _epoch})
