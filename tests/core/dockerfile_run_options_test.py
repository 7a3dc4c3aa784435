"""RUN as BuildKit users write it, in Dockerfile builds (root mechanism, busybox base of
tests/core/dockerfile_run_test.py): heredocs with BuildKit's commands and history, --mount of
each type with exact layers (bind, cache, secret and tmpfs contents absent, mount points too),
the cache kept across builds, secrets in no layer nor history nor result, --network=none,
USER's supplementary groups and --run-timeout. The engine under proot and userns:
tests/core/rootfs_run_options_test.py."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socketserver
import threading
from pathlib import Path

import pytest

from ocibuild.dockerfile import mounts
from ocibuild.errors import OciBuildError
from tests.core.conftest import run_ocibuild
from tests.core.dockerfile_run_test import _build, _history, _layer, base  # noqa: F401

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="these cases pin the root mechanism")


def _files(work: Path, built, i: int) -> dict:
    return {name: data for name, _, _, _, data in _layer(work, built, i)}


HEREDOCS = '''
FROM BASE
ARG WHO=world
RUN <<EOF
echo "hello $WHO" > /a
echo two >> /a
EOF
RUN <<EOF sh
echo piped > /b
EOF
RUN cat <<'A' > /c && cat <<B >> /c
$WHO
A
$WHO
B
RUN <<-EOF
\techo tabs > /d
\tEOF
RUN cat > /e <<-"EOF"
\tkept $WHO
\tEOF
RUN <<EOF
#!/bin/sh
echo "script at $0" > /f
EOF
'''


def test_heredoc_runs_as_buildkit_runs_it(tmp_path: Path, base: str) -> None:
    built, work = _build(tmp_path, base, HEREDOCS)
    assert [_files(work, built, i) for i in range(1, 7)] == [
        {"a": "hello world\ntwo\n"}, {"b": "piped\n"}, {"c": "$WHO\nworld\n"},
        {"d": "tabs\n"}, {"e": "kept $WHO\n"}, {"f": "script at /.ocibuild-run/pipes/EOF\n"}]
    assert _history(built)[2:] == [
        ("ARG WHO=world", True),
        ('RUN |1 WHO=world /bin/sh -c echo "hello $WHO" > /a\necho two >> /a\n', False),
        ("RUN |1 WHO=world /bin/sh -c <<EOF sh\necho piped > /b\nEOF", False),
        ("RUN |1 WHO=world /bin/sh -c cat <<'A' > /c && cat <<B >> /c\n$WHO\nA\n$WHO\nB",
         False),
        ("RUN |1 WHO=world /bin/sh -c echo tabs > /d\n", False),
        # BuildKit ends each heredoc with its bare name: the shell's <<- takes either.
        ('RUN |1 WHO=world /bin/sh -c cat > /e <<-"EOF"\n\tkept $WHO\nEOF', False),
        ("RUN |1 WHO=world /bin/sh -c /dev/pipes/EOF", False)]


BINDS = '''
FROM BASE AS tools
RUN mkdir /opt && echo tool > /opt/tool
FROM BASE
RUN --mount=target=/src \\
    --mount=type=bind,from=tools,source=/opt,target=/mnt/tools \\
    --mount=type=tmpfs,target=/scratch \\
    --mount=type=secret,id=token \\
    --mount=type=secret,source=other,target=/etc/other,mode=0440 \\
    --mount=type=secret,id=absent \\
    cat /src/ctx.txt /mnt/tools/tool /run/secrets/token /etc/other > /seen && \\
    stat -c %a /run/secrets/token /etc/other >> /seen && \\
    echo temp > /scratch/t && ls /scratch >> /seen && \\
    (touch /src/new 2>/dev/null && echo rw || echo ro) >> /seen && \\
    test ! -e /run/secrets/absent
'''


def test_bind_tmpfs_and_secret_mounts_stay_out_of_the_layer(tmp_path: Path, base: str,
                                                            monkeypatch) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret-value")
    monkeypatch.setenv("OTHER_SECRET", "from-env")
    built, work = _build(tmp_path, base, BINDS, secrets=(
        mounts.Secret("token", "file", str(secret)), mounts.Secret("other", "env",
                                                                   "OTHER_SECRET")))
    # Only what the step wrote: no /src, /mnt, /scratch, /run/secrets, /etc/other stubs.
    assert _layer(work, built, 1) == [
        ("seen", "0o644", 0, 0, "from the context\ntool\ns3cret-valuefrom-env400\n440\nt\nro\n")]
    text = json.dumps({"config": built.config, "steps": built.run_steps})
    assert "s3cret" not in text and "from-env" not in text
    assert _history(built)[-1] == (
        "RUN /bin/sh -c cat /src/ctx.txt /mnt/tools/tool /run/secrets/token /etc/other > "
        "/seen &&     stat -c %a /run/secrets/token /etc/other >> /seen &&     echo temp > "
        "/scratch/t && ls /scratch >> /seen &&     (touch /src/new 2>/dev/null && echo rw || "
        "echo ro) >> /seen &&     test ! -e /run/secrets/absent", False)


def test_a_required_secret_that_is_missing_names_the_line(tmp_path: Path, base: str) -> None:
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, base, "FROM BASE\nRUN --mount=type=secret,id=x,required true\n")
    assert str(err.value) == (f"{tmp_path}/b/ctx/Dockerfile:2: RUN: the secret x is required "
                              "and was not given: add --secret id=x,src=PATH")


CACHES = '''
FROM BASE
RUN --mount=type=cache,target=/var/cache/app,uid=7,gid=8,mode=0750 \\
    echo x >> /var/cache/app/runs && wc -l < /var/cache/app/runs > /count && \\
    stat -c '%u:%g %a' /var/cache/app >> /count
RUN --mount=type=cache,target=/c,id=shared,sharing=locked echo y >> /c/log
RUN --mount=type=cache,target=/d,id=shared,sharing=private,ro cat /d/log > /private
'''


def test_a_cache_mount_persists_across_builds_and_is_never_layered(tmp_path: Path,
                                                                   base: str) -> None:
    cache = tmp_path / "run-cache"
    one, work1 = _build(tmp_path, base, CACHES, name="one", run_cache_dir=str(cache))
    two, work2 = _build(tmp_path, base, CACHES, name="two", run_cache_dir=str(cache))
    assert _layer(work1, one, 1) == [("count", "0o644", 0, 0, "1\n7:8 750\n")]
    assert _layer(work2, two, 1) == [("count", "0o644", 0, 0, "2\n7:8 750\n")]
    assert len(one.layers) == 3  # the step writing only into its cache made no layer
    assert _layer(work1, one, 2) == [("private", "0o644", 0, 0, "y\n")]
    assert _layer(work2, two, 2) == [("private", "0o644", 0, 0, "y\ny\n")]
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == sorted(
        hashlib.sha256(i.encode()).hexdigest() for i in ("/var/cache/app", "shared"))


def test_a_cache_mount_from_a_stage_is_seeded_once(tmp_path: Path, base: str) -> None:
    cache = tmp_path / "run-cache"
    dockerfile = '''
FROM BASE AS seed
RUN mkdir /s && echo seeded > /s/f
FROM BASE
RUN --mount=type=cache,target=/c,from=seed,source=/s cat /c/f > /got && echo more > /c/f
'''
    one, work1 = _build(tmp_path, base, dockerfile, name="one", run_cache_dir=str(cache))
    two, work2 = _build(tmp_path, base, dockerfile, name="two", run_cache_dir=str(cache))
    assert _files(work1, one, 1) == {"got": "seeded\n"}
    assert _files(work2, two, 1) == {"got": "more\n"}


class _Hello(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"hello\n")


def test_network_none_cuts_the_step_off(tmp_path: Path, base: str) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        built, work = _build(tmp_path, base, f'''
FROM BASE
RUN --network=host nc 127.0.0.1 {port} < /dev/null > /host
RUN --network=none nc 127.0.0.1 {port} < /dev/null > /none || echo cut > /none
''')
    finally:
        server.shutdown()
    assert _files(work, built, 1) == {"host": "hello\n"}
    assert _files(work, built, 2) == {"none": "cut\n"}
    assert _history(built)[-1] == (f"RUN /bin/sh -c nc 127.0.0.1 {port} < /dev/null > /none "
                                   "|| echo cut > /none", False)


GROUPS = '''
FROM BASE
RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && \\
    printf 'app:x:1000:\\nwheel:x:10:root,app\\nstaff:x:50:app\\n' >> /etc/group
USER app
RUN id -G > /tmp/app
USER app:staff
RUN id -G > /tmp/app-staff
USER 1000
RUN id -G > /tmp/uid
USER root
RUN id -G > /tmp/root
'''


def test_user_gets_its_groups_and_user_group_only_that_group(tmp_path: Path, base: str) -> None:
    built, work = _build(tmp_path, base, GROUPS)
    assert [_files(work, built, i)[f"tmp/{n}"] for i, n in
            ((2, "app"), (3, "app-staff"), (4, "uid"), (5, "root"))] == [
        "1000 10 50\n", "50\n", "1000 10 50\n", "0 10\n"]


def test_run_timeout_stops_the_step_and_names_the_line(tmp_path: Path, base: str) -> None:
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, base, "FROM BASE\nRUN sleep 30\n", run_timeout=1.0)
    assert str(err.value) == (f"{tmp_path}/b/ctx/Dockerfile:2: RUN: the RUN step ['/bin/sh', "
                              "'-c', 'sleep 30'] ran longer than 1.0 s and was stopped")


def test_the_cli_takes_secrets_as_buildx_spells_them(tmp_path: Path, base: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (tmp_path / "s.txt").write_text("file-secret")
    (ctx / "Dockerfile").write_text(
        f"FROM {base}\nRUN --mount=type=secret,id=a --mount=type=secret,id=b "
        "cat /run/secrets/a /run/secrets/b > /out\n")
    proc = run_ocibuild("build", "--context", str(ctx), "--output", str(tmp_path / "out"),
                        "--insecure-registry", base.partition("/")[0], "--insecure-pull",
                        "--json", "--secret", f"id=a,src={tmp_path / 's.txt'}",
                        "--secret", "id=b,env=B_SECRET", "--run-timeout", "300",
                        cwd=tmp_path, extra_env={"B_SECRET": "env-secret"})
    assert proc.returncode == 0, proc.stderr
    assert "file-secret" not in proc.stdout + proc.stderr
    blobs = [p.read_bytes() for p in (tmp_path / "out" / "blobs" / "sha256").iterdir()]
    layers = [gzip.decompress(b) for b in blobs if b[:2] == b"\x1f\x8b"]
    assert sum(b"file-secretenv-secret" in layer for layer in layers) == 1  # /out, as written
    assert not any(b"secret" in b.replace(b"type=secret", b"").replace(b"/secrets/", b"")
                   for b in blobs if b[:1] == b"{")


@pytest.mark.parametrize("text, message", [
    ("id=x", "--secret id=x: say where the secret is: id=x,src=PATH or id=x,env=VAR"),
    ("src=/a", "--secret src=/a: write id=NAME,src=PATH or id=NAME,env=VAR"),
    ("id=x,src=/a,env=B", "--secret id=x,src=/a,env=B: write id=NAME,src=PATH or "
     "id=NAME,env=VAR"),
])
def test_bad_secret_flags(text: str, message: str) -> None:
    with pytest.raises(OciBuildError) as err:
        mounts.parse_secret(text)
    assert str(err.value) == message


def test_a_nul_in_a_mount_value_is_refused() -> None:
    with pytest.raises(OciBuildError) as err:
        mounts.parse("type=bind,target=/a\0b", "/", lambda t: t, "D:2: RUN")
    assert str(err.value) == "D:2: RUN: --mount='type=bind,target=/a\\x00b' holds a NUL character"


from hypothesis import given, settings, strategies as st  # noqa: E402

_KEY = st.sampled_from(sorted(mounts._KEYS) + ["TYPE", "Target", "x", ""])
_VALUE = st.text(alphabet=st.sampled_from("/.a:=,\"' \0\n-0789"), max_size=12)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(_KEY, st.booleans(), _VALUE), max_size=6),
       st.sampled_from(["/", "/app", "/a/b/.."]))
def test_any_mount_value_parses_or_is_refused_with_a_message(fields, workdir) -> None:
    """The class: no --mount text makes the parser raise anything but OciBuildError, and what
    it accepts has an absolute, normalized target, never "/" nor with "..", and a known type."""
    spec = ",".join(k + ("=" + v if eq else "") for k, eq, v in fields)
    try:
        parsed = mounts.parse(spec, workdir, lambda t: t, "D:1: RUN")
    except OciBuildError as err:
        assert str(err).startswith("D:1: RUN: ")
        return
    assert parsed.kind in ("bind", "cache", "tmpfs", "secret")
    assert parsed.target.startswith("/") and parsed.target != "/"
    assert ".." not in parsed.target.split("/") and "//" not in parsed.target
    assert "\0" not in parsed.target


def test_one_locked_cache_mounted_twice_in_a_step_does_not_wait_on_itself(
        tmp_path: Path, base: str) -> None:
    built, work = _build(tmp_path, base, "FROM BASE\n"
                         "RUN --mount=type=cache,id=x,target=/a,sharing=locked "
                         "--mount=type=cache,id=x,target=/b,sharing=locked "
                         "echo 1 > /a/f && cat /b/f > /seen\n",
                         run_cache_dir=str(tmp_path / "cache"), run_timeout=60.0)
    assert _files(work, built, 1) == {"seen": "1\n"}


def test_a_tab_before_the_shebang_makes_no_script_file(tmp_path: Path, base: str) -> None:
    """BuildKit tests the heredoc as written for `#!`: with `<<-` and a tab first, the
    stripped content is the shell's script, its first line a comment."""
    built, work = _build(tmp_path, base, "FROM BASE\nRUN <<-EOF\n\t#!/bin/false\n"
                                         "\techo x > /g\n\tEOF\n")
    assert _files(work, built, 1) == {"g": "x\n"}
    assert _history(built)[-1] == ("RUN /bin/sh -c #!/bin/false\necho x > /g\n", False)


def test_a_cache_without_from_starts_empty_even_with_a_source(tmp_path: Path,
                                                              base: str) -> None:
    built, work = _build(tmp_path, base, "FROM BASE\n"
                         "RUN --mount=type=cache,target=/c,source=/ ls -A /c > /seen\n",
                         run_cache_dir=str(tmp_path / "cache"))
    assert _files(work, built, 1) == {"seen": ""}
