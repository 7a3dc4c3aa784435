"""A hostile base's account files against every reader of them in a Dockerfile build: RUN's
USER and HOME (ocibuild.rootfs.users, reading the tree on disk) and COPY --chown / WORKDIR's
owner (ocibuild.dockerfile.users, reading the stage's model) share one reader
(ocibuild.account_files): a result every reader of the image agrees on, or one error."""

from __future__ import annotations

import itertools
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
