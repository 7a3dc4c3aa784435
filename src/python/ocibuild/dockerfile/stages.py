"""Stages: the global ARGs before the first FROM, each FROM's stage, and which stages a target
needs (only those are built, as BuildKit does).

A FROM or COPY --from names a stage when, expanded with the global ARGs, it equals an earlier
stage's name (case-insensitive) or index; otherwise it is an image reference. The target is
the stage named `--target`, else the last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

from ocibuild.dockerfile import shell
from ocibuild.dockerfile.instructions import flags, where
from ocibuild.dockerfile.parser import Dockerfile, Node
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown


@dataclass(frozen=True)
class Stage:
    index: int
    name: Optional[str]  # lower case
    base: str  # expanded with the global ARGs
    platform: Optional[str]  # expanded --platform
    node: Node  # the FROM
    instructions: Tuple[Node, ...]


def _expand(df: Dockerfile, node: Node, text: str, env: Mapping[str, str]) -> str:
    try:
        return shell.expand(text, env, df.escape)
    except OciBuildError as err:
        raise OciBuildError(f"{where(df, node)}: {err}") from None


def global_args(df: Dockerfile, build_args: Mapping[str, str],
                automatic: Mapping[str, str]) -> Tuple[Dict[str, str], Tuple[Node, ...]]:
    """The values of the ARGs before the first FROM ({name: value}, for FROM lines and for
    `ARG NAME` in a stage), and those nodes."""
    env: Dict[str, str] = dict(automatic)
    nodes = []
    for node in df.nodes:
        if node.keyword == "FROM":
            break
        if node.keyword != "ARG":
            raise OciBuildError(f"{where(df, node)}: only ARG may come before the first FROM")
        nodes.append(node)
        for word in node.args:
            name, sep, default = word.partition("=")
            if name in build_args:
                env[name] = build_args[name]
            elif sep:
                env[name] = _expand(df, node, default, env)
    return env, tuple(nodes)


def split(df: Dockerfile, args: Mapping[str, str]) -> List[Stage]:
    stages: List[Stage] = []
    current: Optional[Tuple[Node, List[Node]]] = None
    names: Dict[str, int] = {}

    def close() -> None:
        if current is None:
            return
        node, body = current
        words = node.args
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
            raise OciBuildError(f"{where(df, node)}: FROM takes IMAGE [AS NAME], not "
                                f"{shown(' '.join(words))}")
        name = words[2].lower() if len(words) == 3 else None
        if name is not None:
            if name in names:
                raise OciBuildError(f"{where(df, node)}: the stage name {shown(name)} is "
                                    "used twice; stage names must be unique")
            names[name] = len(stages)
        platform = flags(df, node).get("platform")
        stages.append(Stage(len(stages), name, _expand(df, node, words[0], args),
                            _expand(df, node, platform, args) if platform else None,
                            node, tuple(body)))

    started = False
    for node in df.nodes:
        if node.keyword == "FROM":
            close()
            current, started = (node, []), True
            continue
        if not started:
            continue
        assert current is not None
        current[1].append(node)
    close()
    if not stages:
        raise OciBuildError(f"{df.path}: no FROM; a Dockerfile builds on FROM IMAGE (or "
                            "FROM scratch)")
    return stages


def stage_named(stages: List[Stage], name: str, before: int) -> Optional[Stage]:
    """The stage `name` (or index) refers to among the first `before` stages."""
    lowered = name.lower()
    for stage in stages[:before]:
        if stage.name == lowered or (lowered.isdigit() and int(lowered) == stage.index):
            return stage
    return None


def copy_from(df: Dockerfile, node: Node, args: Mapping[str, str]) -> Optional[str]:
    value = flags(df, node).get("from")
    return _expand(df, node, value, args) if value else None


def target(stages: List[Stage], name: Optional[str], path: str) -> Stage:
    if name is None:
        return stages[-1]
    found = stage_named(stages, name, len(stages)) if not name.isdigit() else None
    if found is None:
        known = ", ".join(s.name for s in stages if s.name) or "none are named"
        raise OciBuildError(f"{path}: --target {shown(name)}: no stage of that name "
                            f"(stages: {known})")
    return found


def needed(df: Dockerfile, stages: List[Stage], goal: Stage,
           args: Mapping[str, str]) -> List[Stage]:
    """The stages `goal` depends on (FROM a stage, COPY --from or RUN --mount from= a stage),
    and itself, in
    Dockerfile order."""
    want = set()
    todo = [goal]
    while todo:
        stage = todo.pop()
        if stage.index in want:
            continue
        want.add(stage.index)
        parent = stage_named(stages, stage.base, stage.index)
        if parent is not None:
            todo.append(parent)
        for node in stage.instructions:
            if node.keyword == "COPY":
                source = copy_from(df, node, args)
                ref = stage_named(stages, source, stage.index) if source else None
                if ref is not None:
                    todo.append(ref)
            if node.keyword == "RUN":  # RUN --mount=...,from=STAGE
                from ocibuild.dockerfile.mounts import froms

                for source in froms(node.flags):
                    ref = stage_named(stages, _expand(df, node, source, args), stage.index)
                    if ref is not None:
                        todo.append(ref)
    return [s for s in stages if s.index in want]
