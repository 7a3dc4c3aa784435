"""Pants' remote cache: a second clone with an empty local cache rebuilds nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.e2e.repo import copy_repo, run_pants
from tests.fixtures.remote_cache import start_buildgrid

EXAMPLES = ("examples.static-site/image", "examples.site-with-config/image",
            "examples.python-hello/image", "examples.python-cli/image")


def _counters(stderr: str) -> dict:
    return {k: int(v) for k, v in re.findall(r"^\s+(remote_cache_\w+|local_cache_\w+): (\d+)$",
                                             stderr, re.M)}


def _digests(repo: Path) -> dict:
    return {e: json.loads((repo / f"dist/{e}.json").read_text())["manifest_digest"] for e in EXAMPLES}


def test_second_clone_hits_the_remote_cache_for_every_process(tmp_path: Path) -> None:
    with start_buildgrid(tmp_path / "bgd") as address:
        # A generous RPC timeout: BuildGrid answers slowly when the suite loads both cores.
        flags = ("--remote-cache-read", "--remote-cache-write", f"--remote-store-address={address}",
                 "--remote-cache-rpc-timeout-millis=60000", "--stats-log")
        first = copy_repo(tmp_path / "clone-a")
        a = run_pants(first, *flags, f"--local-store-dir={tmp_path / 'store-a'}", "package", "examples::")
        written = _counters(a.stderr)
        assert written["remote_cache_write_successes"] > 0
        assert written["remote_cache_write_errors"] == 0

        second = copy_repo(tmp_path / "elsewhere" / "clone-b")
        b = run_pants(second, *flags, f"--local-store-dir={tmp_path / 'store-b'}", "package", "examples::")
        read = _counters(b.stderr)
    # Every cacheable process (layers, assembly, archives, PEX builds) was found in the remote
    # cache: no lookup missed, none failed or timed out, and the images are the same. Pants starts
    # a process while its lookup is in flight (`remote_cache_speculation_delay` is 0 by default);
    # a tiny process can win that race on a loaded machine, so a lookup is either a hit or lost
    # the race, never a miss.
    assert read["local_cache_requests_cached"] == 0, read
    assert read["remote_cache_requests"] > 0, read
    assert read.get("remote_cache_requests_uncached", 0) == 0, read
    assert read.get("remote_cache_read_errors", 0) == 0, read
    assert read.get("remote_cache_request_timeouts", 0) == 0, read
    raced = read.get("remote_cache_speculation_local_completed_first", 0)
    assert read["remote_cache_requests_cached"] + raced == read["remote_cache_requests"], read
    assert _digests(first) == _digests(second)
