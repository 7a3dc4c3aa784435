"""Dockerfile builds on scratch, through the builder and the CLI: stages and targets, ARG
scope, COPY semantics, refusals with file and line, and the tricks a hostile context or
Dockerfile could try. (The comparison with docker itself: tests/e2e/dockerfile_docker_test.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from ocibuild.cli_dockerfile import CACHE_NOWHERE
from ocibuild.dockerfile import builder
from ocibuild.errors import OciBuildError
from tests.core.conftest import decompressed, run_ocibuild, tar_members, write
from tests.fixtures.registry import registry  # noqa: F401  (a fixture)


def _ctx(tmp_path: Path, dockerfile: str, files: Dict[str, object] = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    for name, content in (files or {}).items():
        if isinstance(content, tuple):
            write(ctx / name, content[0].encode() if isinstance(content[0], str) else content[0], content[1])
        else:
            write(ctx / name, str(content).encode())
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _build(tmp_path: Path, dockerfile: str, files: Dict[str, object] = None,
           **options) -> builder.Built:
    ctx = _ctx(tmp_path, dockerfile, files)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return builder.build(builder.Options(str(ctx / "Dockerfile"), str(ctx), **options),
                         str(work))


def _layer(tmp_path: Path, built: builder.Built, i: int) -> List[Tuple[str, str, int, int, str]]:
    blob = tmp_path / "work/layers/blobs/sha256" / built.layers[i].digest[7:]
    return [(m.name, oct(m.mode), m.uid, m.gid, (data or b"").decode() or m.linkname)
            for m, data in tar_members(decompressed(blob))]


def test_copy_rules_and_the_config(tmp_path: Path) -> None:
    built = _build(tmp_path, """
FROM scratch
WORKDIR /app
COPY a.txt .
COPY --chmod=600 dir/ conf/
COPY --chown=7:8 a.txt /tmp/
ENV A=1
CMD run it
""", {"a.txt": "a", "dir/x": "x", "dir/s/y": ("y", 0o700)})
    assert _layer(tmp_path, built, 0) == [("app", "0o755", 0, 0, "")]
    assert _layer(tmp_path, built, 1) == [("app", "0o755", 0, 0, ""),
                                          ("app/a.txt", "0o644", 0, 0, "a")]
    assert _layer(tmp_path, built, 2) == [
        ("app", "0o755", 0, 0, ""), ("app/conf", "0o755", 0, 0, ""),
        ("app/conf/s", "0o600", 0, 0, ""), ("app/conf/s/y", "0o600", 0, 0, "y"),
        ("app/conf/x", "0o600", 0, 0, "x")]
    assert _layer(tmp_path, built, 3) == [("tmp", "0o755", 7, 8, ""),
                                          ("tmp/a.txt", "0o644", 7, 8, "a")]
    config = built.config["config"]
    assert config == {"WorkingDir": "/app", "Cmd": ["/bin/sh", "-c", "run it"],
                      "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                              "A=1"]}
    assert [(h["created_by"], h.get("empty_layer", False)) for h in built.config["history"]] == [
        ("WORKDIR /app", False), ("COPY a.txt .", False), ("COPY --chmod=600 dir/ conf/", False),
        ("COPY --chown=7:8 a.txt /tmp/", False), ("ENV A=1", True),
        ('CMD ["/bin/sh" "-c" "run it"]', True)]


def test_only_the_stages_the_target_needs_are_built(tmp_path: Path) -> None:
    dockerfile = """
FROM scratch AS base
COPY a.txt /a
FROM scratch AS broken
RUN --mount=type=cache,target=/c make
FROM base AS final
COPY --from=base /a /b
"""
    built = _build(tmp_path, dockerfile, {"a.txt": "a"})
    assert len(built.layers) == 2
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, dockerfile, target="broken")
    assert str(err.value) == (
        f"{tmp_path}/ctx/Dockerfile:5: RUN: RUN --mount is not supported (no cache, secret or "
        "bind mounts); COPY what the step needs into the stage first")
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, dockerfile, target="nope")
    assert str(err.value) == (f"{tmp_path}/ctx/Dockerfile: --target nope: no stage of that "
                              "name (stages: base, broken, final)")


def test_arg_scope_build_args_and_automatic_args(tmp_path: Path) -> None:
    built = _build(tmp_path, """
ARG GLOBAL=g
ARG HIDDEN=h
FROM scratch
ARG GLOBAL
ARG LOCAL=${GLOBAL}-l
ARG TARGETARCH
ENV G=$GLOBAL H=x${HIDDEN}x L=$LOCAL T=$TARGETARCH O=${OVER:-unset}
ARG OVER=default
ENV O2=$OVER
""", build_args=(("OVER", "given"), ("HTTP_PROXY", "http://proxy"), ("EXTRA", "1")),
        platform="linux/arm64")
    env = built.config["config"]["Env"][1:]
    assert env == ["G=g", "H=xx", "L=g-l", "T=arm64", "O=unset", "O2=given"]
    assert built.warnings == ("build arguments not used by the Dockerfile: EXTRA",)
    assert built.config["architecture"] == "arm64"


def test_copy_from_a_stage_keeps_owners_and_chown_resolves_names(tmp_path: Path) -> None:
    built = _build(tmp_path, """
FROM scratch AS accounts
COPY passwd group /etc/
COPY --chown=app:staff a.txt /home/app/
FROM accounts
COPY --from=accounts /home/app/a.txt /copied
COPY --chown=app a.txt /primary-group
""", {"passwd": "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
      "group": "root:x:0:\nstaff:x:50:\napp:x:1001:\n", "a.txt": "a"})
    assert _layer(tmp_path, built, 1)[-1] == ("home/app/a.txt", "0o644", 1000, 50, "a")
    assert _layer(tmp_path, built, 2) == [("copied", "0o644", 1000, 50, "a")]
    assert _layer(tmp_path, built, 3) == [("primary-group", "0o644", 1000, 1001, "a")]
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, "FROM scratch\nCOPY --chown=ghost a.txt /x\n", {"a.txt": "a"})
    assert str(err.value) == (f"{tmp_path}/ctx/Dockerfile:2: COPY: no user ghost in the image's "
                              "/etc/passwd; add the user first, or give a number")


def test_heredoc_copy_expands_unless_quoted(tmp_path: Path) -> None:
    built = _build(tmp_path, """
FROM scratch
ENV WHO=world
COPY <<EOF <<"RAW" /etc/
hello $WHO "quoted" 'too' \$WHO
EOF
hello $WHO
RAW
""")
    assert _layer(tmp_path, built, 0) == [("etc", "0o755", 0, 0, ""),
                                          ("etc/EOF", "0o644", 0, 0,
                                           "hello world \"quoted\" 'too' $WHO\n"),
                                          ("etc/RAW", "0o644", 0, 0, "hello $WHO\n")]


@pytest.mark.parametrize("dockerfile,message", [
    ("FROM scratch\nCOPY missing /x\n", "2: COPY: missing is not in the build context (or "
     ".dockerignore leaves it out)"),
    ("FROM scratch\nCOPY a.txt b.txt /x\n", "2: COPY: with more than one source the "
     "destination must be a directory ending in /: write /x/"),
    ("FROM scratch\nCOPY --parents a.txt /x/\n", "2: COPY: COPY --parents (BuildKit labs) is "
     "not supported; copy each tree"),
    ("FROM scratch\nCOPY --mode=1 a.txt /x\n", "2: COPY: unknown flag --mode (known: --from, "
     "--chown, --chmod, --link)"),
    ("FROM scratch\nCOPY --chmod=u+x a.txt /x\n", "2: COPY: --chmod=u+x must be an octal mode "
     "from 0 to 7777, e.g. 755 (symbolic modes such as u+x are not supported)"),
    ("FROM scratch\nADD https://example.invalid/a.tgz /x\n", "2: ADD: ADD "
     "https://example.invalid/a.tgz needs --checksum=sha256:<hex of the file>: a URL's bytes "
     "can change between two builds of the same commit, so without it the image is not "
     "reproducible and nothing vouches for what went in. Get the hex with `curl -fsSL "
     "https://example.invalid/a.tgz | sha256sum`"),
    ("FROM scratch\nADD git@github.com:x/y.git /x\n", "2: ADD: ADD of a git repository "
     "(git@github.com:x/y.git) is not supported; clone it beforehand and COPY it"),
    ("FROM scratch\nCOPY a.txt /x\nFROBNICATE now\n", "3: unknown instruction FROBNICATE"),
    ("FROM scratch\nONBUILD FROM x\n", "2: ONBUILD: ONBUILD FROM is not allowed"),
    ("FROM scratch\nEXPOSE 80/tcpx\n", "2: EXPOSE: 80/tcpx is not a port, a range or "
     "PORT/PROTO (tcp, udp, sctp), e.g. 8080 or 53/udp"),
    ("FROM scratch\nSTOPSIGNAL SIGNOPE\n", "2: STOPSIGNAL: SIGNOPE is not a signal (a name "
     "such as SIGTERM, or a number from 1 to 64)"),
    ("FROM scratch\nENV X=${Y\n", "2: ENV: syntax error: missing '}'"),
    ("FROM scratch\nHEALTHCHECK --interval=5 CMD true\n", "2: HEALTHCHECK: --interval=5 is "
     "not a duration, e.g. 30s or 1m30s"),
])
def test_what_cannot_be_honoured_names_file_line_and_instruction(tmp_path: Path,
                                                                 dockerfile: str,
                                                                 message: str) -> None:
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, dockerfile, {"a.txt": "a", "b.txt": "b"})
    assert str(err.value) == f"{tmp_path}/ctx/Dockerfile:{message}"


def test_a_context_symlink_never_reaches_outside_the_context(tmp_path: Path) -> None:
    """`COPY link` follows the link inside the context, chroot-style: /etc/passwd of the
    building machine is never read, whatever the link says."""
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY abs /x\n")
    os.symlink("/etc/passwd", ctx / "abs")
    os.symlink("../../../../etc/passwd", ctx / "rel")
    for name in ("abs", "rel"):
        (ctx / "Dockerfile").write_text(f"FROM scratch\nCOPY {name} /x\n")
        with pytest.raises(OciBuildError) as err:
            builder.build(builder.Options(str(ctx / "Dockerfile"), str(ctx)), str(tmp_path))
        assert str(err.value) == (f"{ctx}/Dockerfile:2: COPY: {name} is a symbolic link to "
                                  "nothing in the build context")
    # Inside a copied directory a link is a link, copied verbatim, never followed.
    (ctx / "d").mkdir()
    os.symlink("/etc/shadow", ctx / "d/s")
    built = _build(tmp_path, "FROM scratch\nCOPY d /d\n")
    assert _layer(tmp_path, built, 0) == [("d", "0o755", 0, 0, ""),
                                          ("d/s", "0o777", 0, 0, "/etc/shadow")]


def test_sources_cannot_climb_out_of_the_context(tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, "FROM scratch\nCOPY ../outside.txt /x\n")
    assert str(err.value) == (f"{tmp_path}/ctx/Dockerfile:2: COPY: ../outside.txt is not in "
                              "the build context (or .dockerignore leaves it out)")


def test_a_whiteout_name_is_refused(tmp_path: Path) -> None:
    """A context file named .wh.passwd copied to /etc would delete /etc/passwd in the image."""
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, "FROM scratch\nCOPY .wh.passwd /etc/\n", {".wh.passwd": ""})
    assert str(err.value) == (f"{tmp_path}/ctx/Dockerfile:2: COPY: /etc/.wh.passwd would be "
                              "read as a whiteout (a deletion) by every image unpacker; "
                              "rename it")


def test_the_cli_writes_a_layout_and_kaniko_files(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a.txt /\nLABEL from=file\n", {"a.txt": "a"})
    proc = run_ocibuild("build", "--dockerfile", "Dockerfile", "--context", f"dir://{ctx}",
                        "--output", str(tmp_path / "out"), "--label", "extra=flag",
                        "--digest-file", str(tmp_path / "digest"), "--reproducible",
                        "--cache=true", "--verbosity", "debug", "--json", cwd=tmp_path,
                        extra_env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (tmp_path / "digest").read_text() == result["manifest_digest"]
    index = json.loads((tmp_path / "out/index.json").read_text())
    assert index["manifests"][0]["digest"] == result["manifest_digest"]
    manifest = json.loads((tmp_path / "out/blobs/sha256" /
                           result["manifest_digest"][7:]).read_text())
    config = json.loads((tmp_path / "out/blobs/sha256" /
                         manifest["config"]["digest"][7:]).read_text())
    assert config["config"]["Labels"] == {"from": "file", "extra": "flag"}
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert proc.stderr == CACHE_NOWHERE + "\n"
    again = run_ocibuild("build", "--dockerfile", "Dockerfile", "--context", str(ctx),
                         "--output", str(tmp_path / "out2"), "--label", "extra=flag",
                         "--json", cwd=tmp_path, extra_env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert json.loads(again.stdout)["manifest_digest"] == result["manifest_digest"]


def test_the_cli_needs_an_output(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a.txt /\n", {"a.txt": "a"})
    proc = run_ocibuild("build", "--context", str(ctx), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == ("ocibuild: error: give where the image goes: --output DIR, "
                           "--push/--destination REGISTRY/REPO[:TAG], --docker-archive/"
                           "--tar-path FILE, or --no-push\n")


def test_symlink_loops_and_climbs_in_an_image_stay_bounded_and_inside() -> None:
    from ocibuild.dockerfile.fstree import DIR, SYMLINK, Node, Tree

    tree = Tree({"": Node(DIR), "a": Node(SYMLINK, link="b"), "b": Node(SYMLINK, link="/a"),
                 "up": Node(SYMLINK, link="../../../../etc"), "etc": Node(DIR)})
    with pytest.raises(OciBuildError) as err:
        tree.resolve("a/x")
    assert str(err.value) == "/a/x: more than 40 symbolic links on the way (a loop?)"
    assert tree.resolve("up/passwd") == "etc/passwd"  # ".." stops at the image root


def test_workdir_under_user_and_an_empty_glob_follow_buildkit(tmp_path: Path) -> None:
    built = _build(tmp_path, """
FROM scratch
COPY passwd group /etc/
USER app
WORKDIR /srv/app
WORKDIR /srv
COPY *.nothing /empty/
""", {"passwd": "app:x:1000:1000::/home/app:/bin/sh\n", "group": "app:x:1000:\n"})
    assert _layer(tmp_path, built, 1) == [("srv", "0o755", 1000, 1000, ""),
                                          ("srv/app", "0o755", 1000, 1000, "")]
    assert len(built.layers) == 3  # WORKDIR /srv exists: no layer; the empty COPY has one
    assert _layer(tmp_path, built, 2) == []
    assert [h["created_by"] for h in built.config["history"]][-2:] == [
        "WORKDIR /srv", "COPY *.nothing /empty/"]


def test_a_base_images_onbuild_triggers_run_first(tmp_path: Path, registry) -> None:
    parent = _ctx(tmp_path / "parent", "FROM scratch\nCOPY a.txt /a\nONBUILD COPY b.txt /b\n"
                  "ONBUILD LABEL from=trigger\n", {"a.txt": "a"})
    proc = run_ocibuild("build", "--context", str(parent), "--destination",
                        f"{registry.host}/parent:1", "--insecure", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    child = _ctx(tmp_path / "child", f"FROM {registry.host}/parent:1\nCOPY c.txt /c\n",
                 {"b.txt": "b", "c.txt": "c"})
    work = tmp_path / "work"
    work.mkdir()
    built = builder.build(builder.Options(
        str(child / "Dockerfile"), str(child),
        registries=builder.Registries(insecure=(registry.host,))), str(work))
    assert [h["created_by"] for h in built.config["history"]][-3:] == [
        "COPY b.txt /b", "LABEL from=trigger", "COPY c.txt /c"]
    assert "OnBuild" not in built.config["config"]
    assert built.config["config"]["Labels"] == {"from": "trigger"}
    assert built.base is not None and built.base.digest.startswith("sha256:")
    (child / "Dockerfile").write_text(f"FROM {registry.host}/parent:2\n")
    (parent / "Dockerfile").write_text("FROM scratch\nONBUILD RUN make\n")
    assert run_ocibuild("build", "--context", str(parent), "--destination",
                        f"{registry.host}/parent:2", "--insecure", cwd=tmp_path).returncode == 0
    with pytest.raises(OciBuildError) as err:
        builder.build(builder.Options(str(child / "Dockerfile"), str(child),
                                      registries=builder.Registries(insecure=(registry.host,))),
                      str(work))
    assert str(err.value) == (f"ONBUILD trigger 1 of the base image {registry.host}/parent:2: "
                              "RUN: cannot start the RUN step ['/bin/sh', '-c', 'make']: "
                              "[Errno 2] No such file or directory: '/bin/sh'")


def test_a_dockerignore_linking_out_of_the_context_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("[not a pattern: this file must never be quoted\n")
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a.txt /\n", {"a.txt": "a"})
    os.symlink(secret, ctx / ".dockerignore")
    with pytest.raises(OciBuildError) as err:
        builder.build(builder.Options(str(ctx / "Dockerfile"), str(ctx)), str(tmp_path))
    assert str(err.value) == (f"'{ctx}/.dockerignore' is a symbolic link to a file outside the "
                              "build context; make it a file")
