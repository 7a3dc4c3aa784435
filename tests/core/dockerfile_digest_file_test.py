"""kaniko's report files (`--digest-file`, `--image-name-with-digest-file`, ...) where a
Kubernetes Job puts them: `/dev/termination-log`, a file kubelet bind-mounts, which a rename
cannot replace (EBUSY, even as root; EACCES too as a non-root user in /dev). Written in place
then; elsewhere atomically, as before. tests/e2e/selfimage_test.py runs the image with
`-v FILE:/dev/termination-log` as uid 65534."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ocibuild.dockerfile.output import _write_report
from ocibuild.errors import OciBuildError


def test_a_bind_mounted_file_is_written_in_place(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("bind-mounting a file needs root")
    source, target = tmp_path / "host-file", tmp_path / "termination-log"
    source.write_text("")
    target.write_text("old, longer content")
    if subprocess.run(["mount", "--bind", str(source), str(target)]).returncode != 0:
        pytest.skip("mount --bind is refused here")
    try:
        _write_report("--digest-file", str(target), b"sha256:abc")
        assert target.read_bytes() == b"sha256:abc"
        assert source.read_bytes() == b"sha256:abc"  # the mounted file itself, not a new one
        assert sorted(p.name for p in tmp_path.iterdir()) == ["host-file", "termination-log"]
    finally:
        subprocess.run(["umount", str(target)])


def test_an_ordinary_path_is_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "digest"
    target.write_text("old")
    inode = target.stat().st_ino
    _write_report("--digest-file", str(target), b"sha256:abc")
    assert target.read_bytes() == b"sha256:abc"
    assert target.stat().st_ino != inode  # a new file renamed over the old one


def test_a_path_that_cannot_be_written_is_an_error_naming_the_flag(tmp_path: Path) -> None:
    (tmp_path / "names").mkdir()
    path = str(tmp_path / "names")
    with pytest.raises(OciBuildError) as err:
        _write_report("--image-name-with-digest-file", path, b"x")
    assert str(err.value) == (f"--image-name-with-digest-file {path!r}: cannot write it: "
                              "Is a directory; give a path in a writable directory")
