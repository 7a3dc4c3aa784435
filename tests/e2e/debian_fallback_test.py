"""The Python example's base builds on a fresh machine after its primary mirror dropped a locked
package: the download falls back to the snapshot archive the BUILD file names (played here by
a loopback server, as every test server is) and is checked against the lockfile."""

from __future__ import annotations

import json
import os
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from tests.e2e.repo import copy_repo, run_pants

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pants-oci-tests/debian"
LOCK = "examples/python-base/python-base.lock.json"
SNAPSHOT = "https://snapshot.debian.org/archive/{archive}/{timestamp}"
DROPPED = "zlib1g"


class _Recording(SimpleHTTPRequestHandler):
    paths: List[str]

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.paths.append(self.path)
        super().do_GET()


def _serve(directory: Path) -> Tuple[str, List[str], ThreadingHTTPServer]:
    paths: List[str] = []
    handler = type("Handler", (_Recording,), {"paths": paths})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", paths, server


@pytest.fixture
def mirrors(tmp_path: Path) -> Iterator[Tuple[dict, str, str, List[str]]]:
    """(lockfile, primary mirror URL, snapshot URL, paths asked of the snapshot)."""
    lock = json.loads(Path(LOCK).read_text())
    primary = tmp_path / "primary"
    snapshot = tmp_path / "snapshot"
    for packages in lock["packages"].values():
        for package in packages:
            source = CACHE / package["filename"]
            target = primary / package["filename"]
            # The primary mirror superseded DROPPED; `all` packages appear once per arch.
            if package["name"] != DROPPED and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source)
    # The snapshot archive keeps every file, under /archive/<archive>/<timestamp>/.
    for source in lock["sources"]:
        archive = source["mirror"].rstrip("/").rsplit("/", 1)[-1]
        where = snapshot / "archive" / archive / source["timestamp"]
        where.parent.mkdir(parents=True, exist_ok=True)
        if not where.exists():
            where.symlink_to(CACHE)
    primary_url, _, primary_server = _serve(primary)
    snapshot_url, asked, snapshot_server = _serve(snapshot)
    yield lock, primary_url, snapshot_url, asked
    primary_server.shutdown()
    snapshot_server.shutdown()


def test_a_dropped_package_comes_from_the_snapshot_archive_on_a_fresh_store(
        tmp_path: Path, mirrors) -> None:
    lock, primary_url, snapshot_url, asked = mirrors
    repo = copy_repo(tmp_path / "repo")
    build = repo / "examples/python-base/BUILD"
    text = build.read_text()
    assert SNAPSHOT in text  # what users get: snapshot.debian.org, here on loopback
    build.write_text(text.replace(SNAPSHOT, f"{snapshot_url}/archive/{{archive}}/{{timestamp}}"))
    (repo / "examples/python-base/BUILD.base-only").write_text(
        'oci_image(name="base-only", base=":python-base")\n')
    env = {
        # A fresh machine: nothing in Pants' store, so every locked file is downloaded.
        "PANTS_LOCAL_STORE_DIR": str(tmp_path / "store"),
        "PANTS_OCI_DEBIAN_MIRRORS": repr({s["mirror"]: primary_url for s in lock["sources"]}),
    }
    run_pants(repo, "package", "examples/python-base:base-only", extra_env=env)

    meta = json.loads((repo / "dist/examples.python-base/base-only.json").read_text())
    assert len(meta["layers"]) == 8 + 2
    # The image is linux/amd64: only that zlib1g was fetched, and from the snapshot, at the
    # timestamp the lock recorded for its suite; nothing else was asked of the snapshot.
    zlib = next(p for p in lock["packages"]["amd64"] if p["name"] == DROPPED)
    timestamp = next(s["timestamp"] for s in lock["sources"] if s["suite"] == zlib["suite"])
    assert asked == [f"/archive/debian/{timestamp}/{zlib['filename']}"]
