"""`ocibuild lock -f` and `ocibuild build -f` with Debian `contents`, against a real signed
Debian repository on 127.0.0.1 (packages made by dpkg-deb, InRelease signed by gpg): the lock
is verified, the build downloads exactly the locked files into a cache, and a package whose
bytes are not the locked ones, or a lockfile that no longer matches the file, stops the build
with one error and nothing written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.fixtures.debian_repo import DebianRepo, make_deb
from tests.fixtures.image_checks import skopeo_inspect

from .conftest import run_ocibuild, write

SCRIPT = b"#!/bin/sh\necho app\n"


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[DebianRepo]:
    repo = DebianRepo(tmp_path / "mirror")
    repo.add(make_deb(tmp_path / "debs", "app", depends="libfoo",
                      files={"usr/bin/app": (SCRIPT, 0o755)}))
    repo.add(make_deb(tmp_path / "debs", "libfoo", "1.2-3",
                      files={"usr/lib/libfoo.so.1": b"\x7fELF-not-really\n"}))
    repo.publish()
    with repo:
        yield repo


def project(tmp_path: Path, repo: DebianRepo, packages: str = "[app]") -> Path:
    proj = tmp_path / "proj"
    write(proj / "app.txt", b"hello\n")
    shutil.copy(repo.keyring, proj / "archive.gpg")
    write(proj / "image.yaml", f"""\
contents:
  repositories:
    - mirror: {repo.url}
      suite: testing
  keyring: archive.gpg
  packages: {packages}
paths:
  - source: app.txt
    path: /srv/app.txt
entrypoint:
  command: /usr/bin/app
""".encode())
    return proj


def ocibuild(*args: str, cwd: Path) -> dict:
    proc = run_ocibuild(*args, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def files_of(layout: Path) -> set:
    manifest = skopeo_inspect(layout, "latest", raw=True)
    names = set()
    for layer in manifest["layers"]:
        with tarfile.open(layout / "blobs/sha256" / layer["digest"][7:]) as tar:
            names.update(m.name for m in tar.getmembers())
    return names


def test_lock_then_build_from_the_verified_repository(tmp_path: Path, repo: DebianRepo) -> None:
    proj = project(tmp_path, repo)
    cache = tmp_path / "cache"
    locked = ocibuild("lock", "-f", "proj/image.yaml", f"--cache-dir={cache}", cwd=tmp_path)
    assert locked["lockfile"] == str((proj / "image.lock.json").resolve())
    doc = json.loads((proj / "image.lock.json").read_text())
    assert [p["name"] for p in doc["packages"]["amd64"]] == ["app", "libfoo"]
    # The keyring as the image file names it: the lockfile is the same in any checkout.
    assert doc["sources"][0]["inrelease_signature"].startswith(
        "verified by gpgv with archive.gpg (key ")
    assert ocibuild("lock", "-f", "proj/image.yaml", "--check", f"--cache-dir={cache}",
                    cwd=tmp_path) == {"lockfile": locked["lockfile"], "current": True}

    first = ocibuild("build", "-f", "proj/image.yaml", "--output", "a", f"--cache-dir={cache}",
                     cwd=tmp_path)
    names = files_of(tmp_path / "a")
    assert {"usr/bin/app", "usr/lib/libfoo.so.1", "etc/passwd", "srv/app.txt"} <= names
    assert sorted(os.listdir(cache / "debs")) == sorted(
        f"{p['sha256']}.deb" for p in doc["packages"]["amd64"])
    config = skopeo_inspect(tmp_path / "a", "latest", config=True)
    assert config["config"]["Entrypoint"] == ["/usr/bin/app"]
    assert [h["created_by"] for h in config["history"]][-1] == "ocibuild build: /srv/app.txt"

    # A damaged cache entry (same size, other bytes) is fetched again, not used.
    (libfoo_sha,) = [p["sha256"] for p in doc["packages"]["amd64"] if p["name"] == "libfoo"]
    cached = cache / "debs" / f"{libfoo_sha}.deb"
    good = cached.read_bytes()
    cached.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    again = ocibuild("build", "-f", "proj/image.yaml", "--output", "c", f"--cache-dir={cache}",
                     cwd=tmp_path)
    assert again["manifest_digest"] == first["manifest_digest"]
    assert cached.read_bytes() == good

    # From the cache alone (the mirror gone), the same image.
    repo.__exit__(None, None, None)
    second = ocibuild("build", "-f", "proj/image.yaml", "--output", "b", f"--cache-dir={cache}",
                      cwd=tmp_path)
    assert second["manifest_digest"] == first["manifest_digest"]
    repo.__enter__()


def test_a_package_that_is_not_the_locked_one_is_refused(tmp_path: Path,
                                                          repo: DebianRepo) -> None:
    proj = project(tmp_path, repo)
    cache = tmp_path / "cache"
    ocibuild("lock", "-f", "proj/image.yaml", f"--cache-dir={cache}", cwd=tmp_path)
    doc = json.loads((proj / "image.lock.json").read_text())
    locked = {p["name"]: p["sha256"] for p in doc["packages"]["amd64"]}
    pool = repo.root / "debian/pool/main"
    (libfoo,) = pool.glob("libfoo_*.deb")
    libfoo.write_bytes(libfoo.read_bytes()[:-1] + b"!")  # same size, other bytes
    proc = run_ocibuild("build", "-f", "proj/image.yaml", "--output", "out",
                        f"--cache-dir={cache}", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "downloading libfoo 1.2-3 locked in" in proc.stderr
    assert "not the locked" in proc.stderr
    assert not (tmp_path / "out").exists()
    # The cache holds only verified files, named by their SHA-256 (no temp file left).
    cached = os.listdir(cache / "debs")
    assert f"{locked['libfoo']}.deb" not in cached
    assert all(hashlib.sha256((cache / "debs" / n).read_bytes()).hexdigest() + ".deb" == n
               for n in cached)


def test_a_stale_or_missing_lockfile_stops_the_build(tmp_path: Path, repo: DebianRepo) -> None:
    proj = project(tmp_path, repo)
    proc = run_ocibuild("build", "-f", "proj/image.yaml", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 2
    assert f"no lockfile at {proj / 'image.lock.json'}" in proc.stderr
    ocibuild("lock", "-f", "proj/image.yaml", f"--cache-dir={tmp_path / 'c'}", cwd=tmp_path)
    project(tmp_path, repo, packages="[app, libfoo]")
    proc = run_ocibuild("build", "-f", "proj/image.yaml", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "ocibuild lock" in proc.stderr
    assert not (tmp_path / "out").exists()
    check = run_ocibuild("lock", "-f", "proj/image.yaml", "--check",
                         f"--cache-dir={tmp_path / 'c'}", cwd=tmp_path)
    assert check.returncode == 2 and "is not current" in check.stderr


def test_a_newer_version_in_the_suite_fails_the_check(tmp_path: Path, repo: DebianRepo) -> None:
    project(tmp_path, repo)
    cache = f"--cache-dir={tmp_path / 'c'}"
    ocibuild("lock", "-f", "proj/image.yaml", cache, cwd=tmp_path)
    repo.add(make_deb(tmp_path / "debs", "libfoo", "1.2-4",
                      files={"usr/lib/libfoo.so.1": b"\x7fELF-newer\n"}))
    repo.publish()
    check = run_ocibuild("lock", "-f", "proj/image.yaml", "--check", cache, cwd=tmp_path)
    assert check.returncode == 2
    assert "1.2-3" in check.stdout and "1.2-4" in check.stdout
