"""A layer's bytes come from the digest, never from how a sandbox materialised it.

Pants says of each file its content and `is_executable`; the sandbox's modes are not that.
Pants 2.17 hardlinks files of 512 KiB and more from its store, mode 0555 for all of them
(fs/store/src/local.rs, `LARGE_FILE_SIZE_LIMIT`; lib.rs, `materialize_file_maybe_hardlink`),
writes smaller ones 0755/0644, and a remote worker (BuildGrid) writes 0755/0644, or 0644 for
all. Each test here stages one digest the ways a sandbox can hold it and builds the layer the
way the plugin asks for it (a `LayerRequest` with `executables`, in the sandbox's directory).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild.errors import OciBuildError
from ocibuild.layer.request import layer_of
from ocibuild.protocol.layer import LayerMapping, LayerRequest

from .conftest import decompressed, tar_members

LARGE = 512 * 1024  # Pants 2.17's LARGE_FILE_SIZE_LIMIT: from here on files are hardlinked
# path -> (content, is_executable): a packed PEX as Pants' digest holds it.
PACKED_PEX: Dict[str, Tuple[bytes, bool]] = {
    "in/app.pex/.bootstrap": (b"PK\x03\x04" + os.urandom(LARGE + 100), False),
    "in/app.pex/.deps/click-8.1.7-py3-none-any.whl": (b"PK\x03\x04" + bytes(LARGE), False),
    "in/app.pex/__main__.py": (b"#!/usr/bin/env python3\nimport sys\n", True),
    "in/app.pex/PEX-INFO": (b'{"entry_point": "app"}', False),
    "in/app.pex/bin/tool": (b"\x7fELF" + bytes(LARGE + 1), True),
}


def stage_local(root: Path, files: Dict[str, Tuple[bytes, bool]], store: Path) -> None:
    """As Pants materialises a local sandbox: large files hardlinked from a store file of mode
    0555 (one inode for equal contents), small ones 0755/0644, directories as the umask."""
    store.mkdir(exist_ok=True)
    for path, (content, executable) in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if len(content) >= LARGE:
            stored = store / str(abs(hash(content)))
            if not stored.exists():
                stored.write_bytes(content)
                stored.chmod(0o555)
            os.link(stored, target)
        else:
            target.write_bytes(content)
            target.chmod(0o755 if executable else 0o644)


def stage_remote(root: Path, files: Dict[str, Tuple[bytes, bool]], *, all_plain: bool) -> None:
    """As a remote worker does: 0755/0644 from is_executable (or 0644 for every file, as
    some workers do), directories 0777, other mtimes."""
    for path, (content, executable) in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(0o644 if all_plain or not executable else 0o755)
        os.utime(target, (123456789, 123456789))
    for directory in sorted({p for p in root.rglob("*") if p.is_dir()}):
        directory.chmod(0o777)


def request_for(files: Dict[str, Tuple[bytes, bool]], mappings) -> LayerRequest:
    """What the plugin asks: the mappings, and the files Pants calls executable."""
    return LayerRequest(mappings=tuple(LayerMapping(s, d) for s, d in mappings),
                        executables=tuple(sorted(p for p, (_, x) in files.items() if x)))


def build_in(sandbox: Path, request: LayerRequest, monkeypatch) -> Tuple[str, dict]:
    """The layer built in `sandbox` as its working directory, as the layer process runs."""
    monkeypatch.chdir(sandbox)
    descriptor = layer_of(request, "out")
    blob = sandbox / "out/blobs/sha256" / descriptor.digest.split(":")[1]
    modes = {m.name: oct(m.mode) for m, _ in tar_members(decompressed(blob))}
    return descriptor.digest, modes


def test_a_packed_pex_gives_one_layer_local_remote_or_cached(tmp_path: Path, monkeypatch) -> None:
    stage_local(tmp_path / "local", PACKED_PEX, tmp_path / "store")
    stage_remote(tmp_path / "remote", PACKED_PEX, all_plain=False)
    stage_remote(tmp_path / "plain", PACKED_PEX, all_plain=True)
    # The local sandbox really is what made other digests: the 600 KiB zip reads 0555 there.
    assert oct((tmp_path / "local/in/app.pex/.bootstrap").stat().st_mode & 0o777) == "0o555"
    # Asked to take modes from the disk, as before, the two sandboxes give two layers.
    from_disk = LayerRequest(mappings=(LayerMapping("in/app.pex", "app/app.pex"),))
    assert (build_in(tmp_path / "local", from_disk, monkeypatch)[1]["app/app.pex/.bootstrap"],
            build_in(tmp_path / "remote", from_disk, monkeypatch)[1]["app/app.pex/.bootstrap"]
            ) == ("0o755", "0o644")
    request = request_for(PACKED_PEX, [("in/app.pex", "app/app.pex")])
    built = {name: build_in(tmp_path / name, request, monkeypatch)
             for name in ("local", "remote", "plain")}
    assert built["local"] == built["remote"] == built["plain"]
    assert built["local"][1] == {
        "app": "0o755", "app/app.pex": "0o755",
        "app/app.pex/.bootstrap": "0o644",
        "app/app.pex/.deps": "0o755",
        "app/app.pex/.deps/click-8.1.7-py3-none-any.whl": "0o644",
        "app/app.pex/PEX-INFO": "0o644",
        "app/app.pex/__main__.py": "0o755",
        "app/app.pex/bin": "0o755",
        "app/app.pex/bin/tool": "0o755",
    }


def test_a_file_mapping_and_an_explicit_mode_ignore_the_sandbox_too(tmp_path: Path,
                                                                    monkeypatch) -> None:
    files = {"in/dist/big.bin": (bytes(LARGE), False), "in/dist/run": (b"#!/bin/sh\n", True)}
    stage_local(tmp_path / "local", files, tmp_path / "store")
    stage_remote(tmp_path / "remote", files, all_plain=True)
    request = LayerRequest(mappings=(LayerMapping("in/dist/big.bin", "srv/big.bin"),
                                     LayerMapping("./in//dist/run", "bin/run"),
                                     LayerMapping("in/dist/run", "bin/private", 0o700)),
                           executables=("in/dist/run",))
    local, remote = (build_in(tmp_path / n, request, monkeypatch) for n in ("local", "remote"))
    assert local == remote
    assert {k: v for k, v in local[1].items() if k.count("/")} == {
        "srv/big.bin": "0o644", "bin/run": "0o755", "bin/private": "0o700"}


_MODES = st.sampled_from([0o444, 0o555, 0o600, 0o644, 0o700, 0o755, 0o711, 0o4755])
_NAME = st.text("abc.-_", min_size=1, max_size=4).filter(lambda n: n not in (".", ".."))


@st.composite
def sandboxes(draw):
    """A digest (path -> content, is_executable) and two sets of disk modes for its files."""
    paths = draw(st.lists(st.lists(_NAME, min_size=1, max_size=3).map("/".join),
                          min_size=1, max_size=8, unique=True))
    # No path may be a directory of another (a digest cannot hold both).
    paths = [p for p in paths if not any(q.startswith(p + "/") for q in paths)]
    files = {f"in/{p}": (draw(st.binary(max_size=64)), draw(st.booleans())) for p in paths}
    return files, [draw(_MODES) for _ in files], [draw(_MODES) for _ in files]


GENERATED = 150


@settings(max_examples=GENERATED, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=sandboxes())
def test_any_disk_modes_give_the_modes_pants_records(case, tmp_path_factory, monkeypatch) -> None:
    files, first, second = case
    base = tmp_path_factory.mktemp("sandboxes")
    built = []
    for name, modes in (("one", first), ("two", second)):
        for (path, (content, _)), mode in zip(files.items(), modes):
            target = base / name / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(mode)
        built.append(build_in(base / name, request_for(files, [("in", "app")]), monkeypatch))
    assert built[0] == built[1]
    assert {k: v for k, v in built[0][1].items() if f"in/{k[4:]}" in files} == {
        f"app/{p[3:]}": "0o755" if x else "0o644" for p, (_, x) in files.items()}


def test_inputs_are_reached_through_no_symlink(tmp_path: Path, monkeypatch) -> None:
    """The walk never follows a link, but the kernel follows the links of the path it is
    handed: a sandbox directory that is a link would put a host file in the layer."""
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    (host / "etc/shadow").write_text("root:secret\n")
    sandbox = tmp_path / "sandbox"
    (sandbox / "in").mkdir(parents=True)
    (sandbox / "in/dist").symlink_to(host / "etc")
    monkeypatch.chdir(sandbox)
    for source, message in [
        ("in/dist/shadow", "layer input 'in/dist/shadow' is reached through the symlink "
         f"'in/dist' -> '{host / 'etc'}'; a layer input's directories must be directories of "
         "the sandbox, never links out of it"),
        ("in/../../host/etc/shadow", "layer input 'in/../../host/etc/shadow' must be a "
         "relative path inside the sandbox, without '..'"),
        (str(host / "etc/shadow"), f"layer input '{host / 'etc/shadow'}' must be a relative "
         "path inside the sandbox, without '..'"),
    ]:
        with pytest.raises(OciBuildError) as err:
            layer_of(LayerRequest(mappings=(LayerMapping(source, "etc/shadow"),),
                                  executables=()), "out")
        assert str(err.value) == message
    assert not (sandbox / "out").exists()
    # The link itself as an input is a symlink in the layer, never followed.
    descriptor = layer_of(LayerRequest(mappings=(LayerMapping("in/dist", "etc/x"),),
                                       executables=()), "out")
    blob = sandbox / "out/blobs/sha256" / descriptor.digest.split(":")[1]
    assert [(m.name, m.issym(), m.linkname) for m, _ in tar_members(decompressed(blob))] == [
        ("etc", False, ""), ("etc/x", True, str(host / "etc"))]


def test_owners_xattrs_and_hardlinks_of_the_sandbox_never_reach_the_layer(
        tmp_path: Path, monkeypatch) -> None:
    """The host's uid/gid and names, extended attributes, and hard links between inputs (a
    local sandbox links equal large files to one store file) change no byte of the layer."""
    files = {"in/a.bin": (bytes(LARGE), False), "in/b.bin": (bytes(LARGE), False),
             "in/c.txt": (b"c", False)}
    stage_local(tmp_path / "local", files, tmp_path / "store")
    assert (tmp_path / "local/in/a.bin").stat().st_ino == (tmp_path / "local/in/b.bin").stat().st_ino
    stage_remote(tmp_path / "remote", files, all_plain=True)
    try:
        os.setxattr(tmp_path / "remote/in/c.txt", "user.origin", b"host")
    except OSError:
        pass  # a file system without user xattrs: the owner change below still counts
    os.chown(tmp_path / "remote/in/c.txt", 4242, 4343)
    request = request_for(files, [("in", "d")])
    local, remote = (build_in(tmp_path / n, request, monkeypatch) for n in ("local", "remote"))
    assert local == remote
    monkeypatch.chdir(tmp_path / "remote")
    blob = Path("out/blobs/sha256") / local[0].split(":")[1]
    members = tar_members(decompressed(blob))
    assert {(m.uid, m.gid, m.uname, m.gname, m.type, tuple(m.pax_headers)) for m, _ in members} \
        == {(0, 0, "", "", t, ()) for t in {m.type for m, _ in members}}
    assert {m.type for m, _ in members} == {b"0", b"5"}  # files and directories: no hard link
