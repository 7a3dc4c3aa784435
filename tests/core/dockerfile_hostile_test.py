"""A hostile base's account files against every reader of them in a Dockerfile build: RUN's
USER and HOME (ocibuild.rootfs.users, reading the tree on disk) and COPY --chown / WORKDIR's
owner (ocibuild.dockerfile.users, reading the stage's model) share one reader
(ocibuild.account_files): a result every reader of the image agrees on, or one error."""

from __future__ import annotations

import io
import itertools
import tarfile
import os

import pytest

from ocibuild.dockerfile import users as df_users
from ocibuild.dockerfile.fstree import DIR, FILE, Node, Tree
from ocibuild.errors import OciBuildError
from ocibuild.rootfs import users as run_users

IDS = ["1000", "01000", "+1000", " 1000", "1000 ", "-1000", "", "abc", "\u00b2", "\u0661\u0660",
       "4294968296", "4294967295", "4294967294", "99999999999", "10\u00a000", "1000\r"]
BREAKS = ["\n", "\r\n", "\x85", "\u2028", "\x1c", "\x0b", "\x0c"]
NAMES = ["app", " app", "app ", "app\u00a0", "+app"]
DIFFERENT = "readers of the image take this entry differently"


def _plain(text):
    return int(text) if text.isascii() and text.isdigit() and int(text) <= 2**32 - 2 else None


def _expected(name, uid, gid, brk):
    """What every reader agrees on, or the start of the one error."""
    if brk not in ("\n", "\r\n"):
        return "no user"  # the line is not a line: it is the end of root's
    if name in ("+app", "app ", "app\u00a0"):
        return "no user"  # no reader trims a blank inside the line
    if name != "app":
        return DIFFERENT  # Go trims the blank, a C library does not
    if _plain(uid) is None or _plain(gid) is None:
        return DIFFERENT
    return (int(uid), int(gid))


def _cases():
    for uid, brk in itertools.product(IDS, BREAKS):
        yield ("app", uid, "1000", brk)
    for gid, brk in itertools.product(IDS, BREAKS):
        yield ("app", "1000", gid, brk)
    for name in NAMES:
        yield (name, "1000", "1000", "\n")


CASES = list(_cases())


def _passwd(name, uid, gid, brk):
    return (f"root:x:0:0:root:/root:/bin/sh{brk}{name}:x:{uid}:{gid}:app:/home/app:/bin/sh\n"
            ).encode("utf-8")


def _both(tmp_path, data, spec):
    """(RUN's USER, COPY --chown) of `spec` over a base whose /etc/passwd is `data`."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_bytes(data)
    (root / "etc" / "group").write_bytes(b"root:x:0:\n")
    tree = Tree({"": Node(DIR), "etc": Node(DIR),
                 "etc/passwd": Node(FILE, 0o644, size=len(data), content=str(root / "etc/passwd")),
                 "etc/group": Node(FILE, 0o644, size=10, content=str(root / "etc/group"))})
    out = []
    for resolve in (lambda: run_users.resolve_user(str(root), spec),
                    lambda: df_users.resolve(spec, tree, lambda c: open(c, "rb"), "COPY")):
        try:
            out.append(resolve())
        except OciBuildError as err:
            out.append(str(err))
    return out


def test_every_reader_of_a_base_passwd_agrees_or_refuses(tmp_path):
    """Generated: an entry's uid and gid as any of 16 spellings (signs, blanks, non-ASCII
    digits, values past 32 bits) after each of 7 line breaks only some readers split at,
    and names Go trims: 229 bases, each through both readers (458 look-ups). Before: a
    superscript digit was a traceback (int('²')), '١٠' (Arabic-Indic digits) uid 10, a
    '\\x85' split a line no libc splits, 4294968296 a uid past 32 bits."""
    assert len(CASES) == 229
    for name, uid, gid, brk in CASES:
        found = _both(tmp_path, _passwd(name, uid, gid, brk), "app")
        want = _expected(name, uid, gid, brk)
        for got in found:
            if isinstance(want, tuple):
                assert got == want, (name, uid, gid, brk, found)
            else:
                assert isinstance(got, str) and want in got, (name, uid, gid, brk, found)


def test_the_refusal_names_the_file_and_line(tmp_path):
    run, copy = _both(tmp_path, _passwd("app", "+1000", "1000", "\n"), "app")
    line = "line 2 (app:x:+1000:1000:app:/home/app:/bin/sh)"
    assert run == (f"the image's /etc/passwd {line}: {DIFFERENT} (a blank around the name, "
                   "or an id that is not plain decimal digits from 0 to 4294967294); fix the "
                   "image's file")
    assert copy == f"COPY: {run}"


@pytest.mark.parametrize("spec", ["\u00b2", "\u0661\u0660\u0660\u0660", "+0", "4294967295"])
def test_a_user_spec_that_is_no_plain_number_is_a_name(tmp_path, spec):
    """USER ² was int('²'): a traceback; USER ١٠٠٠ was uid 1000 for RUN, a name for COPY."""
    run, copy = _both(tmp_path, b"root:x:0:0:root:/root:/bin/sh\n", spec)
    assert run == f"USER {spec!r}: no user {spec!r} in the image's /etc/passwd; create it " \
        "in an earlier RUN step (useradd) or give a numeric uid"
    assert copy.startswith("COPY: no user ")


def test_home_is_read_by_the_same_rules(tmp_path):
    root = tmp_path / "r"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_bytes(b"a:x:0:0::/evil\x85b:x:7:7::/home/b:/bin/sh\n"
                                          b"c:x:7:7::/home/c:/bin/sh\n")
    assert run_users.home_of(str(root), 7) == "/home/c"  # \x85 ends no line
    (root / "etc" / "passwd").write_bytes(b"a:x:+7:0::/evil:/bin/sh\nc:x:7:7::/home/c:/bin/sh\n")
    with pytest.raises(OciBuildError, match=DIFFERENT):
        run_users.home_of(str(root), 7)


# -- the build context -----------------------------------------------------------------------


def _context(tmp_path, dockerfile="FROM scratch\nCOPY a.txt /\n"):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a")
    if dockerfile is not None:
        (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


@pytest.mark.parametrize("how", ["file", "directory", "chain", "relative"])
def test_a_dockerfile_linking_out_of_the_context_is_not_read(tmp_path, how):
    """A pushed context's Dockerfile linking to a file of the machine: it was read, and its
    first line quoted in the parse error (`unknown instruction: root:$6$...`)."""
    from ocibuild.dockerfile import builder

    secret = tmp_path / "host" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root:$6$secret-hash:19000:0:99999:7:::\n")
    ctx = _context(tmp_path, None)
    if how == "file":
        os.symlink(secret, ctx / "Dockerfile")
    elif how == "directory":  # a directory of the context leading out
        os.symlink(secret.parent, ctx / "sub")
        os.rename(secret, secret.parent / "Dockerfile")
    elif how == "chain":
        os.symlink(secret, ctx / "inner")
        os.symlink("inner", ctx / "Dockerfile")
    else:
        os.symlink("../host/shadow", ctx / "Dockerfile")
    dockerfile = ctx / ("sub/Dockerfile" if how == "directory" else "Dockerfile")
    with pytest.raises(OciBuildError) as err:
        builder.build(builder.Options(str(dockerfile), str(ctx)), str(tmp_path / "work"))
    assert str(err.value) == (f"the Dockerfile '{dockerfile}' is a symbolic link to a file "
                              "outside the build context; make it a file")
    assert "secret-hash" not in str(err.value)


def test_a_dockerfile_linking_inside_the_context_is_read(tmp_path):
    from ocibuild.dockerfile import builder

    ctx = _context(tmp_path, None)
    (ctx / "docker").mkdir()
    (ctx / "docker" / "real").write_text("FROM scratch\nCOPY a.txt /\n")
    os.symlink("docker/real", ctx / "Dockerfile")
    built = builder.build(builder.Options(str(ctx / "Dockerfile"), str(ctx)), str(tmp_path / "w"))
    assert [h["created_by"] for h in built.config["history"]] == ["COPY a.txt /"]


# -- patterns: .dockerignore lines and COPY sources ----------------------------------------

import re  # noqa: E402
import time  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ocibuild.dockerfile import copy as copies, dockerignore  # noqa: E402


def _old_ignore_regex(pattern):
    """The regular expression .dockerignore lines were translated to before (moby's), the
    reference for what a line means."""
    out, i, n = ["^"], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(.*/)?" if i < n else ".*")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "^!" else i + 1)
            body = pattern[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def _old_component(pattern):
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2)
            body = pattern[i + 1:end]
            negate = body.startswith("^")
            body = re.sub(r"\\(.)", r"\1", body[1:] if negate else body)
            out.append("[" + ("^" if negate else "") + "".join(
                c if c == "-" else re.escape(c) for c in body) + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


PATTERN = st.lists(st.sampled_from(["a", "b", "/", "*", "**", "**/", "?", "[ab]", "[!a]", "[^b]",
                                    "\\*", "\\a", "."]), max_size=8).map("".join)
TEXT = st.lists(st.sampled_from(["a", "b", "/", "*", "."]), max_size=10).map("".join)
PATTERN_CASES = {"n": 0}


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(PATTERN, TEXT)
def test_linear_matchers_mean_what_the_regular_expressions_meant(pattern, text):
    """3000 generated (pattern, path) pairs: the linear-time matcher of .dockerignore lines
    and of COPY's per-component wildcards says exactly what the old regular expressions did."""
    PATTERN_CASES["n"] += 1
    try:
        old = _old_ignore_regex(pattern)
    except re.error:
        old = None
    if old is not None:
        try:
            new = dockerignore._regex(pattern, "x")
        except OciBuildError:
            new = None
        if new is not None:
            assert bool(new.match(text)) == bool(old.match(text)), (pattern, text)
    if "/" in pattern or "**" in pattern:
        return
    try:
        old_c = _old_component(pattern)
    except re.error:
        return
    name = text.replace("/", "")
    try:
        assert bool(copies._component(pattern, "x").match(name)) == bool(old_c.match(name))
    except OciBuildError:
        pass


@pytest.mark.parametrize("pattern,path", [
    ("**/" * 12 + "x", "a/" * 25 + "y"),
    ("**" * 30 + "x", "a" * 300),
    ("*a" * 12 + "b", "a" * 40),
    ("a*" * 40 + "b", "a" * 200),
    ("[a]*" * 30 + "b", "a" * 255),
])
def test_no_pattern_makes_matching_hang(pattern, path):
    """One .dockerignore line of 36 characters took longer than 2 minutes against a 25-level
    path (regex backtracking); each of these now takes milliseconds."""
    started = time.monotonic()
    patterns = dockerignore.parse(pattern.encode(), ".dockerignore")
    assert dockerignore.excluded(patterns, path) is False
    if "/" not in pattern and "**" not in pattern:
        assert not copies._component(pattern, "COPY").match(path)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("pattern", ["[z-a]", "[]"])
def test_a_bad_character_class_is_one_error(pattern):
    """`COPY [z-a] /` was a traceback (re.error: bad character range)."""
    with pytest.raises(OciBuildError) as err:
        copies._component(pattern + "x", "Dockerfile:2: COPY")
    assert str(err.value) in (
        f"Dockerfile:2: COPY: the pattern {pattern}x has a character class that is not valid",
        f"Dockerfile:2: COPY: the pattern {pattern}x has a [ without ]")


def test_a_context_of_too_many_paths_is_refused(tmp_path, monkeypatch):
    from ocibuild.dockerfile import builder, context

    monkeypatch.setattr(context, "MAX_PATHS", 50)
    ctx = _context(tmp_path)
    for i in range(60):
        (ctx / f"f{i}").write_text("x")
    with pytest.raises(OciBuildError) as err:
        builder.build(builder.Options(str(ctx / "Dockerfile"), str(ctx)), str(tmp_path / "w"))
    assert str(err.value) == (f"the build context {str(ctx)!r} holds more than 50 paths "
                              ".dockerignore keeps; leave out what the build does not need")
    (ctx / ".dockerignore").write_text("f*\n")
    built = builder.build(builder.Options(str(ctx / "Dockerfile"), str(ctx)), str(tmp_path / "w2"))
    assert len(built.layers) == 1


def test_outputs_replace_a_planted_symlink_never_write_through_it(tmp_path):
    """--digest-file, --image-name-with-digest-file and --tar-path already there as symlinks
    to a file of the machine (planted in a shared workspace): each is replaced whole by a
    file of its own (temp beside, renamed), the file the link named is untouched."""
    from tests.core.conftest import run_ocibuild

    ctx = _context(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    outs = {name: tmp_path / name for name in ("digest", "image.tar")}
    for path in outs.values():
        os.symlink(victim, path)
    proc = run_ocibuild("build", "--context", str(ctx), "--no-push",
                        "--digest-file", str(outs["digest"]),
                        "--tar-path", str(outs["image.tar"]), "--destination", "example.com/a:1",
                        cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious"
    for path in outs.values():
        assert not path.is_symlink() and path.is_file()
    assert outs["digest"].read_text().startswith("sha256:")


def _tar_stream(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            tar.addfile(info)
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r|")


def test_whiteouts_of_a_hostile_base_cost_what_they_delete(monkeypatch):
    """Each whiteout scanned every path of the model: 50,000 naming nothing over 50,000 paths
    held a build for many minutes (a million, days). Now a whiteout of nothing or of a file
    costs one look-up: 5,000 of them over 2,000 paths stay within a budget of 10,000."""
    from ocibuild.dockerfile import fstree

    monkeypatch.setattr(fstree, "MAX_WORK", 10_000)
    tree = fstree.Tree()
    fstree.apply_layer(tree, _tar_stream([(f"d/f{i}", tarfile.REGTYPE) for i in range(2000)]),
                       "sha256:1", "base")
    fstree.apply_layer(tree, _tar_stream([(f"d/.wh.none{i}", tarfile.REGTYPE)
                                          for i in range(4000)]
                                         + [(f"d/.wh.f{i}", tarfile.REGTYPE)
                                            for i in range(0, 2000, 2)]), "sha256:2", "base")
    assert len(tree.nodes) == 1 + 1 + 1000
    assert tree.remove("d/f1") == 1 and tree.remove("nothing") == 1


def test_deleting_directories_over_and_over_is_bounded(monkeypatch):
    from ocibuild.dockerfile import fstree

    monkeypatch.setattr(fstree, "MAX_WORK", 100_000)
    tree = fstree.Tree()
    fstree.apply_layer(tree, _tar_stream([(f"d{i}", tarfile.DIRTYPE) for i in range(2000)]),
                       "sha256:1", "alpine:3")
    with pytest.raises(OciBuildError) as err:
        fstree.apply_layer(tree, _tar_stream([(f".wh.d{i}", tarfile.REGTYPE)
                                              for i in range(2000)]), "sha256:2", "alpine:3")
    assert str(err.value).startswith("alpine:3: its whiteouts and opaque directories delete "
                                     "from a tree of ")
    assert str(err.value).endswith("paths over 100000 times; refused (a layer built to make "
                                   "the build hang)")


# -- what a RUN step leaves in the tree, read by the build --------------------------------


@pytest.fixture(scope="module")
def busybox_base(tmp_path_factory):
    from tests.core.dockerfile_run_test import base as make_base

    yield from make_base.__wrapped__(tmp_path_factory)


@pytest.mark.skipif(os.geteuid() != 0, reason="pins the root mechanism (chroot)")
def test_what_a_step_plants_never_reaches_the_machine(tmp_path, busybox_base):
    """A RUN step plants `/app -> HOST_DIR` (the machine's directory, by its real path), a
    link to a host file, a FIFO and a relative climb; COPY then writes into /app, the next RUN
    reads the tree, the stage's layers are read back. The host directory and file stay as
    they were; the copy lands in the image's own HOST_DIR (a link in the image is the image's,
    followed chroot-style); no layer holds a host file's bytes; nothing waits on the FIFO."""
    from tests.core.dockerfile_run_test import _build, _layer

    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "keep").write_text("host")
    secret = tmp_path / "host-secret"
    secret.write_text("host secret")
    built, work = _build(tmp_path, busybox_base, f"""FROM BASE
RUN ln -s {host} /app && ln -s {secret} /leak && mkfifo /pipe && ln -s ../../../.. /up
COPY ctx.txt /app/
COPY ctx.txt /up/climbed.txt
RUN cat /app/ctx.txt > /seen && ls /app > /listed
""")
    assert sorted(os.listdir(host)) == ["keep"] and (host / "keep").read_text() == "host"
    assert secret.read_text() == "host secret"
    assert not (tmp_path.parent / "climbed.txt").exists()
    layers = [_layer(work, built, i) for i in range(1, len(built.layers))]
    everything = [entry for layer in layers for entry in layer]
    assert all("host secret" not in str(entry) for entry in everything)
    by_name = {name: rest for layer in layers for name, *rest in layer}
    inner = str(host).lstrip("/")
    assert by_name["app"][-1] == str(host) and by_name["leak"][-1] == str(secret)
    assert by_name[f"{inner}/ctx.txt"][-1] == "from the context\n"
    assert by_name["climbed.txt"][-1] == "from the context\n"  # '..' stopped at the root
    assert by_name["seen"][-1] == "from the context\n"
    assert by_name["listed"][-1] == "ctx.txt\n"
    assert "pipe" in by_name


@pytest.mark.skipif(os.geteuid() != 0, reason="pins the root mechanism (chroot)")
def test_a_step_leaving_a_huge_sparse_file_is_bounded(tmp_path, busybox_base, monkeypatch):
    """`truncate -s 16G` costs a step nothing on disk and was 16 GiB of zeros to hash (a
    racy file was read whole) and to layer (a terabyte as easily, where the disk allows).
    Racy files over 256 MiB are not hashed; a step's layer holds at most 64 GiB of files
    (here the bound is lowered to 1 GiB)."""
    from ocibuild.dockerfile import run as runs
    from tests.core.dockerfile_run_test import _build

    monkeypatch.setattr(runs, "MAX_STEP_BYTES", 1 << 30)
    started = time.monotonic()
    with pytest.raises(OciBuildError) as err:
        _build(tmp_path, busybox_base, "FROM BASE\nRUN truncate -s 17179869184 /big\n")
    assert str(err.value).endswith(
        "Dockerfile:2: RUN: the step left 17179869184 bytes of files to put in its layer, "
        "over the 1073741824-byte bound (the largest: /big, 17179869184 bytes); delete "
        "what the image does not need in the same step")
    assert time.monotonic() - started < 60


def test_a_fifo_in_the_context_is_refused_by_name_never_opened(tmp_path):
    """A pushed context holding a FIFO: opened, it would block the build forever."""
    from ocibuild.dockerfile import builder

    ctx = _context(tmp_path, "FROM scratch\nCOPY . /\n")
    os.mkfifo(ctx / "pipe")
    started = time.monotonic()
    with pytest.raises(OciBuildError) as err:
        builder.build(builder.Options(str(ctx / "Dockerfile"), str(ctx)), str(tmp_path / "w"))
    assert str(err.value) == (f"{ctx}/Dockerfile:2: COPY: pipe is a device, FIFO or socket; a "
                              "layer built without privilege cannot hold one: leave it out "
                              "(.dockerignore)")
    assert time.monotonic() - started < 30
    (ctx / ".dockerignore").write_text("pipe\n")
    built = builder.build(builder.Options(str(ctx / "Dockerfile"), str(ctx)), str(tmp_path / "w2"))
    assert len(built.layers) == 1


def test_a_wildcard_over_many_directories_costs_one_pass(monkeypatch):
    """`*/*` over 20,000 directories scanned every path once per directory (4 x 10^8 steps,
    10^10 for a context of 100,000); now the children are indexed once per pattern."""
    from ocibuild.dockerfile.fstree import Tree as T

    nodes = {"": Node(DIR)}
    for i in range(20_000):
        nodes[f"d{i}"] = Node(DIR)
        nodes[f"d{i}/f"] = Node(FILE)
    tree = T(nodes)
    monkeypatch.setattr(T, "children", lambda self, path: pytest.fail("a scan of every path"))
    started = time.monotonic()
    found = copies.glob(tree, "*/f", "COPY")
    assert len(found) == 20_000 and found[0] == "d0/f"
    assert time.monotonic() - started < 10
