"""RUN in Dockerfile builds (ocibuild.dockerfile.run wiring ocibuild.rootfs into the builder),
on the busybox base of the RUN-step tests (tests/core/rootfs_base.py), served by a real
registry on 127.0.0.1: files made and deleted (whiteouts), modes and owners, USER, WORKDIR,
ARGs and ENV in the step, a failing step's error, COPY --from of a RUN's result, refused
flags, and layer digests equal across builds. (Against docker: tests/e2e/dockerfile_docker_test.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from ocibuild.dockerfile import builder
from ocibuild.errors import OciBuildError
from tests.core.conftest import decompressed, run_ocibuild, tar_members
from tests.core.rootfs_base import busybox_layers, world_dir
from tests.fixtures.registry import start_registry

MECHANISM = "root"
# The exact owners below need real chown: busybox is static, so proot and userns would lose
# its chowns (docs/run-steps.md); those mechanisms are tests/core/rootfs_run_test.py's.
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="these cases pin the root mechanism")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Iterator[str]:
    """busybox (tests/core/rootfs_base.py) pushed by our own `ADD busybox.tar /`."""
    root = tmp_path_factory.mktemp("base")
    ctx = world_dir(str(root / "ctx"))
    busybox_layers(ctx)
    (ctx / "Dockerfile").write_text("FROM scratch\nADD busybox.tar /\nCMD [\"/bin/sh\"]\n")
    with start_registry(root / "registry") as reg:
        proc = run_ocibuild("build", "--context", str(ctx), "--destination",
                            f"{reg.host}/busybox:1", "--insecure", cwd=root)
        assert proc.returncode == 0, proc.stderr
        yield f"{reg.host}/busybox:1"


def _build(tmp_path: Path, base: str, dockerfile: str, name: str = "b",
           **options) -> Tuple[builder.Built, Path]:
    ctx = tmp_path / name / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(dockerfile.replace("BASE", base))
    (ctx / "ctx.txt").write_text("from the context\n")
    work = tmp_path / name / "work"
    work.mkdir()
    registries = builder.Registries(insecure=(base.partition("/")[0],))
    built = builder.build(builder.Options(str(ctx / "Dockerfile"), str(ctx),
                                          registries=registries, **options), str(work))
    return built, work


def _layer(work: Path, built: builder.Built, i: int) -> List[Tuple[str, str, int, int, str]]:
    blob = work / "layers/blobs/sha256" / built.layers[i].digest[7:]
    return [(m.name, oct(m.mode), m.uid, m.gid, (data or b"").decode() or m.linkname)
            for m, data in tar_members(decompressed(blob))]


def _history(built: builder.Built) -> List[Tuple[str, bool]]:
    return [(h["created_by"], h.get("empty_layer", False)) for h in built.config["history"]]


def test_run_makes_deletes_and_sets_modes_and_owners(tmp_path: Path, base: str) -> None:
    built, work = _build(tmp_path, base, """
FROM BASE
RUN mkdir -p /app/sub && echo hi > /app/a && echo x > /app/sub/x && rm /bin/vi
RUN chmod 4755 /app/a && chown 7:8 /app/sub/x && rm -r /app/sub && mkdir /app/sub
""")
    assert [s["mechanism"] for s in built.run_steps] == [MECHANISM, MECHANISM]
    assert built.run_steps[0] == {"at": f"{tmp_path}/b/ctx/Dockerfile:3: RUN",
                                  "mechanism": MECHANISM, "exit_code": 0, "ownership": "real",
                                  "lost": [], "cpus": None}
    assert _layer(work, built, 1) == [
        ("app", "0o755", 0, 0, ""), ("app/a", "0o644", 0, 0, "hi\n"),
        ("app/sub", "0o755", 0, 0, ""), ("app/sub/x", "0o644", 0, 0, "x\n"),
        ("bin", "0o755", 0, 0, ""), ("bin/.wh.vi", "0o644", 0, 0, "")]
    assert _layer(work, built, 2) == [
        ("app", "0o755", 0, 0, ""), ("app/a", "0o4755", 0, 0, "hi\n"),
        ("app/sub", "0o755", 0, 0, ""), ("app/sub/.wh..wh..opq", "0o644", 0, 0, "")]
    assert _history(built)[-2:] == [
        ("RUN /bin/sh -c mkdir -p /app/sub && echo hi > /app/a && echo x > /app/sub/x && "
         "rm /bin/vi", False),
        ("RUN /bin/sh -c chmod 4755 /app/a && chown 7:8 /app/sub/x && rm -r /app/sub && "
         "mkdir /app/sub", False)]
    assert len(built.config["rootfs"]["diff_ids"]) == len(built.layers) == 3


def test_user_workdir_env_and_args_reach_the_step(tmp_path: Path, base: str) -> None:
    built, work = _build(tmp_path, base, """
FROM BASE
ARG V=from-arg
ENV E=from-env
RUN echo app:x:1000:1000::/data:/bin/sh >> /etc/passwd && echo app:x:1000: >> /etc/group && mkdir /data && chown app /data
USER app
WORKDIR /data
RUN id > id.txt && echo "$V $E $(pwd) $HOME" > env.txt && chmod 600 env.txt
RUN true
""")
    layer = _layer(work, built, 2)
    assert [m[:4] for m in layer] == [("data", "0o755", 1000, 0),
                                     ("data/env.txt", "0o600", 1000, 1000),
                                     ("data/id.txt", "0o644", 1000, 1000)]
    files = {p: (m, u, g, c) for p, m, u, g, c in layer}
    assert files["data/env.txt"] == ("0o600", 1000, 1000, "from-arg from-env /data /data\n")
    # No supplementary groups (docker would add those /etc/group lists: groups=1000(app)).
    assert files["data/id.txt"] == ("0o644", 1000, 1000, "uid=1000(app) gid=1000(app)\n")
    assert _history(built)[-5:] == [
        ("RUN |1 V=from-arg /bin/sh -c echo app:x:1000:1000::/data:/bin/sh >> /etc/passwd && "
         "echo app:x:1000: >> /etc/group && mkdir /data && chown app /data", False),
        ("USER app", True), ("WORKDIR /data", True),
        ('RUN |1 V=from-arg /bin/sh -c id > id.txt && echo "$V $E $(pwd) $HOME" > env.txt && '
         "chmod 600 env.txt", False),
        ("RUN |1 V=from-arg /bin/sh -c true", True)]
    assert len(built.layers) == 3  # base, adduser, the files; `true` changed nothing


def test_a_failing_run_names_the_line_and_the_exit_code(tmp_path: Path, base: str,
                                                        capfd) -> None:
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, base, "FROM BASE\nRUN echo fine\nRUN echo oops >&2; exit 3\n")
    assert str(err.value) == (f"{tmp_path}/b/ctx/Dockerfile:3: RUN: the command /bin/sh -c "
                              "echo oops >&2; exit 3 failed with exit code 3 (its output is "
                              "above, on stderr)")
    out, errors = capfd.readouterr()
    assert out == ""
    assert "fine\n" in errors and "oops\n" in errors
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, base, 'FROM BASE\nRUN ["/bin/nope"]\n', name="c")
    assert str(err.value) == (f"{tmp_path}/c/ctx/Dockerfile:2: RUN: cannot start the RUN step "
                              "['/bin/nope']: [Errno 2] No such file or directory: '/bin/nope'")


def test_copy_from_a_stage_takes_what_its_run_made(tmp_path: Path, base: str) -> None:
    built, work = _build(tmp_path, base, """
FROM BASE AS make
COPY ctx.txt /src/
RUN cat /src/ctx.txt > /out.txt && echo made >> /out.txt && chown 5:6 /out.txt
FROM make AS later
RUN grep made /out.txt && test "$(stat -c %u:%g /out.txt)" = 5:6
FROM BASE
COPY --from=later /out.txt /final/
RUN ["/bin/sh", "-c", "cp /final/out.txt /final/again"]
""")
    assert _layer(work, built, 1) == [("final", "0o755", 0, 0, ""),
                                      ("final/out.txt", "0o644", 5, 6,
                                       "from the context\nmade\n")]
    assert _layer(work, built, 2) == [("final", "0o755", 0, 0, ""),
                                      ("final/again", "0o644", 0, 0,
                                       "from the context\nmade\n")]
    assert _history(built)[-1] == ('RUN /bin/sh -c cp /final/out.txt /final/again', False)
    assert [s["at"].rpartition(":")[0][-2:] for s in built.run_steps] == [":4", ":6", ":9"]


def test_run_layers_are_the_same_in_every_build(tmp_path: Path, base: str) -> None:
    dockerfile = """
FROM BASE
RUN mkdir /a && echo 1 > /a/f && ln -s f /a/l && ln /a/f /a/h && rm /bin/ls
COPY ctx.txt /a/
RUN echo 2 >> /a/ctx.txt && touch /a/f
"""
    one, _ = _build(tmp_path, base, dockerfile, name="one")
    two, _ = _build(tmp_path, base, dockerfile, name="two")
    assert [l.digest for l in one.layers] == [l.digest for l in two.layers]
    assert len(one.layers) == 4


@pytest.mark.parametrize("line, message", [
    ("RUN --network=bridge true", "RUN --network=bridge is not one of default, none, host"),
    ("RUN --mount=type=ssh true", "RUN --mount=type=ssh is not supported: this builder "
     "forwards no SSH agent into steps; fetch what needs SSH before the build, or use a "
     "--secret"),
    ("RUN --mount=type=cache true", "--mount=type=cache: needs target=PATH"),
    ("RUN --mount=type=bind,target=/a,colour=red true", "--mount=type=bind,target=/a,colour=red: "
     "unknown key colour (known: destination, dst, env, from, gid, id, mode, readonly, "
     "readwrite, required, ro, rw, sharing, size, source, src, target, type, uid)"),
    ("RUN --mount=type=secret,id=t,env=TOKEN true", "--mount=type=secret,id=t,env=TOKEN: a "
     "secret as an environment variable (env=) is not supported: the step's environment "
     "reaches history through ARGs of the same name; read the secret's file"),
    ("RUN --mount=type=cache,target=/c,sharing=all true", "--mount=type=cache,target=/c,"
     "sharing=all: sharing=all is not one of shared, private, locked"),
    ("RUN --mount=type=cache,target=/c,mode=rwx true", "--mount=type=cache,target=/c,mode=rwx: "
     "mode=rwx is not a mode in octal"),
    ("RUN --mount=type=tmpfs,target=/t,from=x true", "--mount=type=tmpfs,target=/t,from=x: "
     "from= and source= are for bind and cache mounts"),
    ("RUN --mount=type=bind,target=/ true", "--mount=type=bind,target=/: cannot mount over /"),
    ("RUN --mount=type=bind,target=/a,mode=0755 true", "--mount=type=bind,target=/a,mode=0755: "
     "mode is not allowed for type=bind mounts"),
    ("RUN --mount=type=cache,target=/a,required true", "--mount=type=cache,target=/a,required: "
     "required is not allowed for type=cache mounts"),
    ("RUN --mount=type=secret,id=a,sharing=locked true", "--mount=type=secret,id=a,"
     "sharing=locked: sharing is not allowed for type=secret mounts"),
    ("RUN --mount=type=secret,id=a,source=b true", "--mount=type=secret,id=a,source=b: a secret "
     "takes id= or source= (the same thing), not both"),
    ("RUN --mount=type=secret,id=a,from=x true", "--mount=type=secret,id=a,from=x: a secret "
     "mount takes no from="),
    ("RUN --network=none --network=host true", "--network is given twice"),
    ("RUN --mount=type=cache,target=/c,uid=4294967295 true", "--mount=type=cache,target=/c,"
     "uid=4294967295: uid=4294967295 is over 4294967294"),
    ("RUN --mount=type=cache,target=/c,gid=-1 true", "--mount=type=cache,target=/c,gid=-1: "
     "gid=-1 is not a number"),
    ("RUN --security=insecure true", "RUN --security=insecure is not supported: a step never "
     "gets more privilege than the build; only --security=sandbox"),
])
def test_refused_run_flags_name_the_line(tmp_path: Path, base: str, line: str,
                                         message: str) -> None:
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, base, f"FROM BASE\nCOPY ctx.txt /\n{line}\n")
    assert str(err.value) == f"{tmp_path}/b/ctx/Dockerfile:3: RUN: {message}"


def test_the_cli_reports_each_steps_mechanism(tmp_path: Path, base: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN --network=default echo out; touch /x\n")
    proc = run_ocibuild("build", "--context", str(ctx), "--output", str(tmp_path / "out"),
                        "--insecure-pull", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["run_steps"] == [{"at": f"{ctx}/Dockerfile:2: RUN", "mechanism": MECHANISM,
                                    "exit_code": 0, "ownership": "real", "lost": [],
                                    "cpus": None}]
    assert proc.stderr == (f"out\nocibuild: {ctx}/Dockerfile:2: RUN: ran with mechanism "
                           f"{MECHANISM} (ownership real)\n")


def test_cpuset_cpus_chooses_where_steps_run(tmp_path: Path, base: str) -> None:
    """docker build's --cpuset-cpus: the steps see those CPUs (nproc), the report names them;
    a CPU list this build may not use is one error naming the flag, before anything runs."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN nproc > /n\n")
    first = min(os.sched_getaffinity(0))
    proc = run_ocibuild("build", "--context", str(ctx), "--output", str(tmp_path / "out"),
                        "--insecure-pull", "--json", "--cpuset-cpus", str(first), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (step,) = json.loads(proc.stdout)["run_steps"]
    assert step["cpus"] == str(first)
    assert f"(ownership real, on CPU {first})" in proc.stderr
    out = tmp_path / "out"
    (manifest,) = json.loads((out / "index.json").read_text())["manifests"]
    blobs = out / "blobs/sha256"
    layers = json.loads((blobs / manifest["digest"][7:]).read_text())["layers"]
    members = dict(tar_members(decompressed(blobs / layers[-1]["digest"][7:])))
    assert {m.name: data for m, data in members.items()}["n"] == b"1\n"

    bad = run_ocibuild("build", "--context", str(ctx), "--output", str(tmp_path / "bad"),
                       "--insecure-pull", "--cpuset-cpus", "0-x", cwd=tmp_path)
    assert bad.returncode != 0
    assert bad.stderr.strip().endswith("--cpuset-cpus '0-x': not a CPU list (docker's "
                                       "spelling: 0-3, 0,2 or 1,3-5)"), bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_a_working_directory_the_tree_lacks_is_made_as_docker_makes_it(tmp_path: Path,
                                                                       base: str) -> None:
    """docker makes a step's missing working directory before the step starts (0755, root's
    whatever the USER, in the step's layer): a WORKDIR an earlier step removed was "Exception
    occurred in preexec_fn" as root, and under proot the step ran in / without a word."""
    built, work = _build(tmp_path, base, """FROM BASE
WORKDIR /w/sub
RUN cd / && rm -r /w
USER 7:8
RUN test "$(pwd)" = /w/sub
""")
    assert _layer(work, built, 2) == [(".wh.w", "0o644", 0, 0, "")]
    assert _layer(work, built, 3) == [("w", "0o755", 0, 0, ""), ("w/sub", "0o755", 0, 0, "")]
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, base, "FROM BASE\nWORKDIR /w\nRUN cd / && rmdir /w && echo x > /w\n"
                               "RUN true\n", name="file")
    assert str(err.value) == (
        f"{tmp_path}/file/ctx/Dockerfile:4: RUN: RUN step: the working directory /w cannot be "
        "made: /w is not a directory in the image (docker refuses this step too)")


def test_a_step_certain_to_run_takes_its_base_unpacked_ahead(tmp_path: Path, base: str,
                                                             monkeypatch) -> None:
    """No layer cache, or one that never stored a step on the base: the base is unpacked by
    a child while it is modelled (ocibuild.rootfs.unpack_ahead), and the step's layer is the
    one built without that child. A cache that did store a step on the base: no child."""
    from ocibuild.dockerfile import cache as step_cache
    from ocibuild.rootfs import unpack_ahead

    taken: List[bool] = []
    take = unpack_ahead.UnpackAhead.take

    def spy(self, layers):
        ledger = take(self, layers)
        taken.append(ledger is not None)
        return ledger

    monkeypatch.setattr(unpack_ahead.UnpackAhead, "take", spy)
    # Alone, whatever threads other modules' fixtures left (their rule: rootfs_unpack_ahead_test).
    monkeypatch.setattr(unpack_ahead, "_alone", lambda: True)
    dockerfile = "FROM BASE\nCOPY ctx.txt /c/\nRUN echo {} >> /c/ctx.txt && chown 5:6 /c\n"
    ahead, _ = _build(tmp_path, base, dockerfile.format(1), name="ahead")
    assert taken == [True]
    cache = step_cache.Settings(directory=str(tmp_path / "cache"))
    cached, _ = _build(tmp_path, base, dockerfile.format(1), name="cached", cache=cache)
    assert taken == [True, True]  # nothing stored on this base yet
    again, _ = _build(tmp_path, base, dockerfile.format(2), name="again", cache=cache)
    assert taken == [True, True]  # a step on it is stored: no child (this one misses)
    monkeypatch.setattr(unpack_ahead, "_alone", lambda: False)  # another thread: no fork
    here, _ = _build(tmp_path, base, dockerfile.format(1), name="here")
    assert taken == [True, True, False]
    assert [l.digest for l in ahead.layers] == [l.digest for l in here.layers] == \
        [l.digest for l in cached.layers]
    assert ahead.layers[-1].digest != again.layers[-1].digest
    assert sorted(os.listdir(tmp_path / "cache" / "bases")) == [
        built.base.digest.split(":")[1] for built in (ahead,)]
