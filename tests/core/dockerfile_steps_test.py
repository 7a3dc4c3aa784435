"""A Dockerfile built one step at a time (ocibuild.dockerfile.plan + state, what the Pants
target runs): each step in a fresh sandbox holding only what the plan says it reads gives the
image the one-shot builder gives (config, history, layer digests); the plan's context reads
are exact; a step's sandbox without the context refuses to read it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Dict

import pytest
from hypothesis import given, settings, strategies as st

from ocibuild.dockerfile import builder, state as states
from ocibuild.dockerfile.plan import matching_files, plan
from ocibuild.dockerfile.copy import glob, has_wildcard
from ocibuild.dockerfile.fstree import DIR, FILE, Node, Tree
from ocibuild.dockerfile.plan import _GLOB_SPECIAL
from ocibuild.errors import OciBuildError
from ocibuild.protocol.dockerfile import (
    NO_CONTEXT,
    PATTERNS,
    WHOLE_CONTEXT,
    DockerfileImageRequest,
    DockerfilePlanRequest,
    DockerfileStepRequest,
    LocalImage,
)
from tests.fixtures.busybox import make_busybox_layout

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="RUN pins the root mechanism here")

DOCKERFILE = """\
ARG BASE=busybox
FROM $BASE AS build
ARG GREETING=hello
ENV OUT=/out
WORKDIR /src
COPY src/ ./
RUN mkdir -p $OUT && cat a.txt b.txt > $OUT/ab.txt && echo "$GREETING" > $OUT/greet
FROM scratch AS unused
RUN never
FROM busybox
COPY --from=build /out /app
COPY conf/*.conf /etc/app/
RUN ls /app /etc/app > /listing
COPY last.txt /last.txt
USER 1000
CMD ["/bin/sh"]
"""


def _context(root: Path) -> Path:
    ctx = root / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "conf").mkdir()
    (ctx / "src/a.txt").write_text("a\n")
    (ctx / "src/b.txt").write_text("b\n")
    (ctx / "conf/x.conf").write_text("x\n")
    (ctx / "conf/y.txt").write_text("not copied\n")
    (ctx / "last.txt").write_text("last\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def _images(layout: str) -> tuple:
    return (LocalImage("busybox", layout, "latest", "//base:busybox"),)


def _subset(ctx: Path, dest: Path, patterns) -> None:
    """What the Pants rule gives a `patterns` step: the files `matching_files` picks."""
    files = [p.relative_to(ctx).as_posix() for p in ctx.rglob("*") if p.is_file()]
    for rel in matching_files(files, patterns):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ctx / rel, dest / rel)


def run_steps(tmp: Path, ctx: Path, layout: str, build_args=()) -> Dict:
    """The Pants rule's loop, by hand: each step in a new sandbox with only its inputs."""
    df = (ctx / "Dockerfile").read_bytes()
    sandbox = tmp / "plan"
    sandbox.mkdir(parents=True)
    (sandbox / "Dockerfile").write_bytes(df)
    the_plan = plan(DockerfilePlanRequest(str(sandbox / "Dockerfile"), "app/Dockerfile",
                                          tuple(build_args)))
    stage_states: Dict[int, Path] = {}
    runs, contexts = [], []
    for n, step in enumerate(the_plan.steps):
        box = tmp / f"step{n}"
        (box / "stages").mkdir(parents=True)
        (box / "Dockerfile").write_bytes(df[:step.prefix_bytes])
        for index in {step.stage, *step.from_stages}:
            if index in stage_states:
                shutil.copytree(stage_states[index], box / "stages" / str(index))
        context = None
        if step.context != NO_CONTEXT:
            context = box / "context"
            context.mkdir()
            if step.context == WHOLE_CONTEXT:
                shutil.rmtree(context)
                shutil.copytree(ctx, context)
            else:
                _subset(ctx, context, step.patterns)
        contexts.append((step.keyword, step.context, step.patterns,
                         sorted(p.relative_to(context).as_posix() for p in context.rglob("*")
                                if p.is_file()) if context and step.context == PATTERNS
                         else None))
        result = states.step(DockerfileStepRequest(
            str(box / "Dockerfile"), "app/Dockerfile", step, str(box / "stages"),
            str(context) if context else None, _images(layout), tuple(build_args)),
            str(box / "out"))
        runs += [r.at for r in result.runs]
        stage_states[step.stage] = box / "out" / str(step.stage)
    out = tmp / "image"
    result = states.image(DockerfileImageRequest(str(stage_states[the_plan.goal].parent),
                                                 the_plan.goal, _images(layout)), str(out))
    return {"plan": the_plan, "runs": runs, "contexts": contexts, "result": result,
            "state": stage_states[the_plan.goal], "out": out}


def one_shot(tmp: Path, ctx: Path, layout: str, build_args=()) -> builder.Built:
    work = tmp / "oneshot"
    work.mkdir()
    b = builder.Builder(builder.Options(str(ctx / "Dockerfile"), str(ctx),
                                        build_args=tuple(build_args)), str(work))
    b.images = states.LocalImages(_images(layout), b.blobs, str(work))
    return b.run()


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> str:
    return make_busybox_layout(tmp_path_factory.mktemp("busybox") / "layout")["layout"]


def test_steps_give_the_one_shot_image(tmp_path: Path, layout: str) -> None:
    ctx = _context(tmp_path)
    stepped = run_steps(tmp_path / "steps", ctx, layout, [("GREETING", "hi")])
    whole = one_shot(tmp_path, ctx, layout, [("GREETING", "hi")])
    config = json.loads((stepped["state"] / "stage.json").read_text())["config"]
    assert config == whole.config
    assert [x.digest for x in whole.layers] == [x.digest for x in stepped["result"].layers]
    assert stepped["runs"] == ["app/Dockerfile:7: RUN", "app/Dockerfile:13: RUN"]
    image = json.loads((stepped["out"] / "index.json").read_text())["manifests"][0]
    assert image["digest"] == stepped["result"].manifest_digest
    # The stage's own blobs travel in its state, the base's do not.
    assert sorted(p.name for p in (stepped["state"] / "blobs/sha256").iterdir()) == sorted(
        x.digest[7:] for x in stepped["result"].layers if not x.from_base)


def test_the_plan_names_what_each_step_reads(tmp_path: Path, layout: str) -> None:
    ctx = _context(tmp_path)
    stepped = run_steps(tmp_path / "steps", ctx, layout)
    the_plan = stepped["plan"]
    assert [(s.stage, s.first, s.last, s.keyword, s.line) for s in the_plan.steps] == [
        (0, -1, -1, "FROM", 2), (0, 0, 3, "ARG", 3), (0, 4, 4, "RUN", 7),
        (2, -1, -1, "FROM", 10), (2, 0, 1, "COPY", 11), (2, 2, 2, "RUN", 13),
        (2, 3, 5, "COPY", 14)]
    assert stepped["contexts"] == [
        ("FROM", WHOLE_CONTEXT, (), None),  # a FROM image: its ONBUILD triggers may COPY
        ("ARG", PATTERNS, ("src",), ["src/a.txt", "src/b.txt"]),
        ("RUN", NO_CONTEXT, (), None),
        ("FROM", WHOLE_CONTEXT, (), None),
        ("COPY", PATTERNS, ("conf/*.conf",), ["conf/x.conf"]),
        ("RUN", NO_CONTEXT, (), None),
        ("COPY", PATTERNS, ("last.txt",), ["last.txt"]),
    ]
    assert [s.from_stages for s in the_plan.steps] == [(), (), (), (), (0,), (), ()]
    assert the_plan.images == ("busybox",) and the_plan.goal == 2
    assert [s.index for s in the_plan.stages] == [0, 2]  # `unused` is not built
    # Each step's Dockerfile ends with its instruction: a later edit keeps its key.
    df = DOCKERFILE.encode()
    assert df[:the_plan.steps[2].prefix_bytes].decode().endswith("> $OUT/greet\n")


def test_a_step_planned_without_context_cannot_read_it(tmp_path: Path, layout: str) -> None:
    ctx = _context(tmp_path)
    box = tmp_path / "box"
    box.mkdir()
    (box / "Dockerfile").write_text("FROM scratch\nCOPY a.txt /\n")
    the_plan = plan(DockerfilePlanRequest(str(box / "Dockerfile"), "app/Dockerfile"))
    init, copy = the_plan.steps
    states.step(DockerfileStepRequest(str(box / "Dockerfile"), "app/Dockerfile", init,
                                      str(box / "stages")), str(box / "s0"))
    lying = copy.__class__(**{**copy.__dict__, "context": NO_CONTEXT, "patterns": ()})
    with pytest.raises(OciBuildError) as err:
        states.step(DockerfileStepRequest(str(box / "Dockerfile"), "app/Dockerfile", lying,
                                          str(box / "s0"), str(ctx)), str(box / "s1"))
    assert str(err.value) == ("app/Dockerfile:2: COPY: this step was planned to read no "
                              "build context (a bug in the plan)")


@pytest.mark.parametrize("source,expected", [
    ("a.txt", (PATTERNS, ("a.txt",))),
    ("./dir/../b/*.py", (PATTERNS, ("b/*.py",))),
    ("/abs/x", (PATTERNS, ("abs/x",))),
    (".", (WHOLE_CONTEXT, ())),
    ("../../etc", (PATTERNS, ("etc",))),  # ".." stops at the root, as COPY reads it
    ("$SRC", (WHOLE_CONTEXT, ())),
    ("f[ab].txt", (PATTERNS, ("f[ab].txt",))),
    ("a\\*b", (WHOLE_CONTEXT, ())),
])
def test_copy_sources_become_patterns_only_when_globs_agree(tmp_path: Path, source: str,
                                                            expected) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM scratch\nCOPY {source} /d/\n")
    _, copy = plan(DockerfilePlanRequest(str(tmp_path / "Dockerfile"), "Dockerfile")).steps
    assert (copy.context, copy.patterns) == expected


def test_unused_build_args_are_warned_and_declared_ones_listed(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("ARG A\nFROM scratch\nARG B=1\nENV C=$B\n")
    the_plan = plan(DockerfilePlanRequest(str(tmp_path / "Dockerfile"), "Dockerfile",
                                          (("A", "1"), ("Z", "2"), ("HTTP_PROXY", "p"))))
    assert the_plan.declared_args == ("A", "B")
    assert the_plan.warnings == ("build arguments not used by the Dockerfile: Z",)


def test_add_url_and_heredoc_sources_read_no_context(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM scratch\nADD --checksum=sha256:" + "0" * 64 + " https://x.test/a /a\n"
        "COPY <<EOF /b\nhello\nEOF\n")
    _, group = plan(DockerfilePlanRequest(str(tmp_path / "Dockerfile"), "Dockerfile")).steps
    assert (group.first, group.last, group.context) == (0, 1, NO_CONTEXT)


# -- the context a `patterns` step gets holds every file its COPY reads ---------------------

_NAMES = st.sampled_from(["a", "b.txt", ".env", "a.py", "x{y}", "!n", "sub", "c*d", "[k]"])
_PARTS = st.sampled_from(["a", "*", "*.py", "?", "[a-c]*", ".*", "sub", "b.txt", "[!a]*",
                          "x{y}", "!n"])


@settings(max_examples=300, deadline=None)
@given(files=st.sets(st.lists(_NAMES, min_size=1, max_size=3).map("/".join), max_size=12),
       pattern=st.lists(_PARTS, min_size=1, max_size=3).map("/".join))
def test_matching_files_hold_every_file_copy_reads(files, pattern) -> None:
    tree = Tree({"": Node(DIR)})
    for path in sorted(files):
        parts = path.split("/")
        if any(tree.get("/".join(parts[:i])) is not None and
               tree.get("/".join(parts[:i])).kind != DIR for i in range(1, len(parts))):
            continue  # a file where a directory would be: not a possible context
        if tree.get(path) is not None:
            continue
        for i in range(1, len(parts)):
            tree.nodes.setdefault("/".join(parts[:i]), Node(DIR))
        tree.nodes[path] = Node(FILE, 0o644)
    real = [p for p, n in tree.nodes.items() if n.kind == FILE]
    if has_wildcard(pattern):
        roots = glob(tree, pattern, "test")
    else:
        roots = [pattern] if pattern in tree.nodes else []
    read = {f for f in real for r in roots if f == r or f.startswith(r + "/")}
    chosen = matching_files(real, [pattern])
    assert chosen is None or read <= set(chosen)
    assert chosen is None or not (_GLOB_SPECIAL & set("".join(chosen)))


def test_a_state_naming_a_blob_outside_its_directory_is_refused(tmp_path: Path) -> None:
    box = tmp_path / "box"
    (box / "stages/0").mkdir(parents=True)
    (box / "Dockerfile").write_text("FROM scratch\nENV A=1\n")
    (box / "stages/0/stage.json").write_text(json.dumps({
        "config": {}, "platform": "linux/amd64", "args": [], "cmd_set": False, "image": None,
        "layers": [{"media_type": "application/vnd.oci.image.layer.v1.tar", "size": 1,
                    "digest": "sha256:../../../../etc/passwd", "diff_id": None}]}))
    _, env = plan(DockerfilePlanRequest(str(box / "Dockerfile"), "Dockerfile")).steps
    with pytest.raises(OciBuildError) as err:
        states.step(DockerfileStepRequest(str(box / "Dockerfile"), "Dockerfile", env,
                                          str(box / "stages")), str(box / "out"))
    assert str(err.value) == ("digest 'sha256:../../../../etc/passwd' must be 'sha256:' "
                              "followed by 64 lowercase hex digits, e.g. \"sha256:e3b0c44298fc1c"
                              "149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"")


def test_a_runs_mounts_say_what_it_reads(tmp_path: Path) -> None:
    """A bind mount without from= (BuildKit's default type) reads the context; from= names a
    stage to build first or an image; a cache or tmpfs mount reads neither."""
    (tmp_path / "Dockerfile").write_text(
        "FROM scratch AS tools\nFROM busybox\n"
        "RUN --mount=target=/in cat /in/a.txt\n"
        "RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t true\n"
        "RUN --mount=type=bind,from=tools,target=/t --mount=from=alpine:3,target=/a true\n"
        "RUN --mount=type=cache,from=tools,target=/c true\n")
    steps = plan(DockerfilePlanRequest(str(tmp_path / "Dockerfile"), "Dockerfile")).steps
    runs = [(s.context, s.from_stages, s.images) for s in steps if s.keyword == "RUN"]
    assert runs == [(WHOLE_CONTEXT, (), ()), (NO_CONTEXT, (), ()),
                    (NO_CONTEXT, (0,), ("alpine:3",)), (NO_CONTEXT, (0,), ())]


def test_a_bind_mount_of_the_context_steps_to_the_one_shot_image(tmp_path: Path,
                                                                  layout: str) -> None:
    ctx = _context(tmp_path)
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN --mount=type=bind,source=src,target=/in cat /in/a.txt > /seen\n")
    stepped = run_steps(tmp_path / "steps", ctx, layout)
    whole = one_shot(tmp_path, ctx, layout)
    assert [x.digest for x in whole.layers] == [x.digest for x in stepped["result"].layers]
    assert stepped["contexts"][1][:2] == ("RUN", WHOLE_CONTEXT)
