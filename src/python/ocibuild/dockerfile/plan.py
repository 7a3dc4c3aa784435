"""The steps of a Dockerfile build, for a caller that runs each as its own cached process
(the Pants target): which stages are needed, and for each an `init` step (the stage made from
its FROM) followed by its instructions, every RUN a step of its own and the others grouped.

Each step says what it reads, so the caller gives it nothing else: the stages it builds on,
the images it names, and of the build context nothing (RUN, ENV, ...), the files its literal
COPY/ADD sources match, or all of it (a `$` in a source, a pattern Pants' globs might read
otherwise than Go's filepath.Match, `COPY . /app`, and a stage FROM an image, whose ONBUILD
triggers may COPY anything). Reading more than needed only costs a cheap re-run: a step's
output is a function of its input, so the RUN after it still finds its cache entry.
"""

from __future__ import annotations

import csv
from typing import Iterable, List, Optional, Set, Tuple

from ocibuild.dockerfile import copy as copies, mounts, stages as stage_graph
from ocibuild.dockerfile.add import is_url
from ocibuild.dockerfile.builder import PROXY_ARGS, automatic_args, DEFAULT_PLATFORM
from ocibuild.dockerfile.fstree import normalize
from ocibuild.dockerfile.images import SCRATCH
from ocibuild.dockerfile.instructions import check
from ocibuild.dockerfile.parser import MAX_BYTES, Dockerfile, Node, parse
from ocibuild.platform import parse_platform
from ocibuild.protocol.dockerfile import (
    NO_CONTEXT,
    PATTERNS,
    WHOLE_CONTEXT,
    DockerfilePlan,
    DockerfilePlanRequest,
    PlanStage,
    PlanStep,
)
from ocibuild.untrusted import read_file


def prefix_sizes(data: bytes) -> List[int]:
    """sizes[n]: how many bytes the Dockerfile's first n lines are, as the parser splits
    lines (str.splitlines, after a UTF-8 BOM), so a prefix parses to the same nodes."""
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    text = data[bom:].decode("utf-8")  # the parser has already refused what is not UTF-8
    sizes = [bom]
    for line in text.splitlines(keepends=True):
        sizes.append(sizes[-1] + len(line.encode("utf-8")))
    return sizes


# Characters a Pants glob reads specially: a context path holding one is never passed to it.
_GLOB_SPECIAL = frozenset("*?[]{}!\\")


def matching_files(files: Iterable[str], patterns: Iterable[str]) -> Optional[List[str]]:
    """The context files a `patterns` step reads: each file a pattern names, or that lies
    under a directory it names, matched component by component as COPY matches them
    (ocibuild.dockerfile.copy: Go's filepath.Match where a component has a wildcard), plus
    the .dockerignore. None when a chosen path could not be named to Pants literally (the
    caller then gives the whole context)."""
    compiled = []
    for pattern in patterns:
        parts = [p for p in normalize(pattern).split("/") if p]
        compiled.append([(copies._component(p, "a COPY source") if copies.has_wildcard(p)
                          else p) for p in parts])
    chosen = []
    for path in files:
        components = path.split("/")
        if path == ".dockerignore" or any(
                len(components) >= len(parts) and all(
                    c == part if isinstance(part, str) else part.match(c)
                    for part, c in zip(parts, components)) for parts in compiled):
            if _GLOB_SPECIAL & set(path):
                return None
            chosen.append(path)
    return sorted(chosen)


def _pattern(source: str, escape: str) -> Optional[str]:
    """The context path a literal COPY source reads, or None when the step must get the whole
    context: a `$` (expanded by the step, not here), the escape character or a backslash
    (what the lexer makes of them is the step's business), or the context's root itself."""
    if "$" in source or escape in source or "\\" in source:
        return None
    path = normalize(source)  # as COPY reads it: ".." stops at the context's root
    return path or None


def _reads(df: Dockerfile, node: Node, args) -> tuple:
    """(context kind, patterns, stage or image named by --from) of one COPY/ADD."""
    source = stage_graph.copy_from(df, node, args) if node.keyword == "COPY" else None
    if source is not None:
        return NO_CONTEXT, (), source
    heredocs = {h.name for h in node.heredocs}
    patterns = []
    for raw in node.args[:-1]:
        if raw.startswith("<<") and raw[2:].lstrip("-").strip("'\"") in heredocs:
            continue
        if node.keyword == "ADD" and is_url(raw) and "$" not in raw:
            continue
        pattern = _pattern(raw, df.escape)
        if pattern is None:
            return WHOLE_CONTEXT, (), None
        patterns.append(pattern)
    return (PATTERNS if patterns else NO_CONTEXT), tuple(patterns), None


def _run_mounts(node: Node) -> List[Tuple[str, bool]]:
    """What a RUN's mounts read: (the stage or image a `from=` names, or "", and whether the
    build context is read: a bind mount without `from=`, BuildKit's default type)."""
    out = []
    for value in mounts.values(node.flags):
        fields = dict((k.strip().lower(), v) for k, _, v in
                      (item.partition("=") for item in next(csv.reader([value]), [])))
        kind = (fields.get("type") or "bind").lower()
        named = fields.get("from") or ""
        if named or kind == "bind":
            out.append((named, kind == "bind" and not named))
    return out


class _Group:
    def __init__(self, stage: int, first: int, node: Node) -> None:
        self.stage, self.first, self.last, self.node = stage, first, first, node
        self.context, self.patterns = NO_CONTEXT, []  # type: str, List[str]
        self.stages: Set[int] = set()
        self.images: Set[str] = set()
        self.end_line = node.end_line

    def add(self, index: int, node: Node, context: str, patterns, stage, image) -> None:
        self.last, self.end_line = index, node.end_line
        if context == WHOLE_CONTEXT or self.context == WHOLE_CONTEXT:
            self.context, self.patterns = WHOLE_CONTEXT, []
        elif context == PATTERNS:
            self.context = PATTERNS
            self.patterns += [p for p in patterns if p not in self.patterns]
        if stage is not None:
            self.stages.add(stage)
        if image is not None:
            self.images.add(image)

    def step(self, sizes: List[int]) -> PlanStep:
        return PlanStep(self.stage, self.first, self.last, self.node.keyword,
                        self.node.start_line, sizes[self.end_line], self.context,
                        tuple(self.patterns), tuple(sorted(self.stages)),
                        tuple(sorted(self.images)))


def plan(request: DockerfilePlanRequest) -> DockerfilePlan:
    data = read_file(request.dockerfile, "the Dockerfile", MAX_BYTES + 1)
    df = parse(data, request.name)
    sizes = prefix_sizes(data)
    build_args = dict(request.build_args)
    platform = parse_platform(request.platform) if request.platform else DEFAULT_PLATFORM
    globals_, global_nodes = stage_graph.global_args(df, build_args, automatic_args(platform))
    all_stages = stage_graph.split(df, globals_)
    goal = stage_graph.target(all_stages, request.target, df.path)
    wanted = stage_graph.needed(df, all_stages, goal, globals_)
    declared = {w.partition("=")[0] for n in global_nodes for w in n.args}
    stages, steps = [], []
    for stage in wanted:
        for node in stage.instructions:  # refuse what cannot be honoured before any work
            check(df, node)
        declared |= {w.partition("=")[0] for n in stage.instructions if n.keyword == "ARG"
                     for w in n.args}
        parent = stage_graph.stage_named(all_stages, stage.base, stage.index)
        image = None if parent is not None or stage.base.lower() == SCRATCH else stage.base
        stages.append(PlanStage(stage.index, stage.base,
                                parent.index if parent is not None else None, image))
        steps.append(PlanStep(stage.index, -1, -1, "FROM", stage.node.start_line,
                              sizes[stage.node.end_line],
                              WHOLE_CONTEXT if image else NO_CONTEXT, (),
                              (parent.index,) if parent is not None else (),
                              (image,) if image else ()))
        steps += _instruction_steps(df, stage, all_stages, globals_, sizes)
    unused = sorted(set(build_args) - declared - set(PROXY_ARGS))
    warnings = (f"build arguments not used by the Dockerfile: {', '.join(unused)}",) \
        if unused else ()
    images = sorted({i for s in steps for i in s.images})
    return DockerfilePlan(goal.index, tuple(stages), tuple(steps), tuple(images),
                          tuple(sorted(declared)), warnings)


def _instruction_steps(df: Dockerfile, stage, all_stages, globals_, sizes) -> List[PlanStep]:
    out: List[PlanStep] = []
    group: Optional[_Group] = None
    for index, node in enumerate(stage.instructions):
        if node.keyword == "RUN":
            if group is not None:
                out.append(group.step(sizes))
                group = None
            run = _Group(stage.index, index, node)
            for named, reads_context in _run_mounts(node):
                found = stage_graph.stage_named(all_stages, named, stage.index) \
                    if named else None
                run.add(index, node, WHOLE_CONTEXT if reads_context else NO_CONTEXT, (),
                        found.index if found is not None else None,
                        named if named and found is None and named.lower() != SCRATCH
                        else None)
            out.append(run.step(sizes))
            continue
        context, patterns, named = NO_CONTEXT, (), None
        if node.keyword in ("COPY", "ADD"):
            context, patterns, named = _reads(df, node, globals_)
        from_stage = from_image = None
        if named is not None:
            found = stage_graph.stage_named(all_stages, named, stage.index)
            if found is not None:
                from_stage = found.index
            elif named.lower() != SCRATCH:
                from_image = named
        if group is None:
            group = _Group(stage.index, index, node)
        group.add(index, node, context, patterns, from_stage, from_image)
    if group is not None:
        out.append(group.step(sizes))
    return out
