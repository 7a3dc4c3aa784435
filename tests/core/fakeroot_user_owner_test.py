"""What a RUN step under a non-root USER makes is that user's, also when the step chmods it.

faked records an inode it did not know (a file or directory the step just made) as root's
the first time a call reaches it (a chmod, `mkdir -m`, `install -m`): that is its rule for
files outside its table. docker gives them the step's user; a non-root user cannot chown
anything to root there, so a new inode faked calls root's under a non-root USER is the
user's. Found building Dockerfiles in the image of ocibuild (tests/e2e/selfimage_test.py).
"""

from __future__ import annotations

import pytest

from tests.core.rootfs_run_test import _mechanism_ok, entries, full_base, pod, work  # noqa: F401


@pytest.mark.parametrize("where", ["pod", "user", "root"])
def test_a_non_root_steps_chmodded_new_files_stay_its_own(work, full_base, where):  # noqa: F811
    result = pod(work, full_base, [
        {"argv": ["/bin/sh", "-c", "mkdir -m 777 /srv"]},
        {"argv": ["/bin/sh", "-c", "mkdir /srv/d && chmod 700 /srv/d && touch /srv/f && "
                                   "chmod 600 /srv/f && mkdir -m 750 /srv/m && "
                                   "install -m 640 /etc/issue /srv/i && touch /srv/plain"],
         "user": [1000, 1000], "cwd": "/srv"},
        {"argv": ["/bin/sh", "-c", "mkdir /root-made && chmod 700 /root-made"]},
    ], where)
    assert "error" not in result, result["error"]
    _mechanism_ok(where, result)
    assert [s["result"]["exit_code"] for s in result["steps"]] == [0, 0, 0], result["logs"]
    layer = entries(result, 1)
    assert {p: layer[p][:4] for p in layer} == {
        "srv": ("5", "0o777", 0, 0),
        "srv/d": ("5", "0o700", 1000, 1000),
        "srv/f": ("0", "0o600", 1000, 1000),
        "srv/m": ("5", "0o750", 1000, 1000),
        "srv/i": ("0", "0o640", 1000, 1000),
        "srv/plain": ("0", "0o644", 1000, 1000),
    }
    # As root, a chmodded new directory is root's.
    assert entries(result, 2)["root-made"][:4] == ("5", "0o700", 0, 0)
