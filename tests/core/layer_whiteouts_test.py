"""No layer of inputs holds a whiteout name: it would delete or hide the base's files.

Every route a name takes into a layer is tried (a mapping's destination, a name found in a
mapped directory, a directory on the way, a symlink target, hand-made entries given to the
tar writer, the `ocibuild` commands), with names generated at any depth: refused exactly when
one component starts with `.wh.`.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild.errors import OciBuildError
from ocibuild.layer.entries import DIR, FILE, SYMLINK, LayerEntry, collect_entries
from ocibuild.layer.tar_writer import write_tar
from ocibuild.layer.whiteouts import whiteout_component

from .conftest import decompressed, run_ocibuild, tar_members, write

# Names near the whiteout prefix on both sides: only those starting with ".wh." are whiteouts.
_NAMES = st.sampled_from([".wh.passwd", ".wh..wh..opq", ".wh.", ".wh..wh.plnk", ".wh.a.wh.b",
                          "a.wh.b", "wh.x", ".whx", "..wh.x", ".w.h.x", "x.wh.", "etc", "a b",
                          ".hidden", "WH", ".WH.x", "é.wh.x"])
_PATHS = st.lists(_NAMES, min_size=1, max_size=5).map("/".join)
GENERATED = 120


def _is_whiteout(path: str) -> bool:
    return any(part.startswith(".wh.") for part in path.split("/"))


def _refused(path: str, source: str, what: str = "the path") -> str:
    name = next(p for p in path.split("/") if p.startswith(".wh."))
    return (f"{source!r} would put {what} {path!r} in the layer, and {name!r} is a whiteout "
            "name (.wh.*): unpacking the layer would delete or hide files of the image below "
            "instead of writing this one. Rename it, or leave it out of the layer's inputs")


@settings(max_examples=GENERATED, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dest=_PATHS)
def test_a_destination_naming_a_whiteout_is_refused(dest: str, tmp_path_factory) -> None:
    """A relocated_files `dest`, an oci_layer `destination`, a CLI `--layer SRC:DEST`."""
    source = str(write(tmp_path_factory.mktemp("in") / "conf", b"x"))
    if not _is_whiteout(dest):
        assert [e.path for e in collect_entries([(source, dest)])][-1] == dest
        return
    with pytest.raises(OciBuildError) as err:
        collect_entries([(source, dest)])
    assert str(err.value) == _refused(dest, source)


@settings(max_examples=GENERATED, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inside=_PATHS, kind=st.sampled_from(["file", "dir", "symlink"]))
def test_a_name_found_in_a_mapped_directory_is_refused(inside: str, kind: str,
                                                       tmp_path_factory) -> None:
    """Files, resources, a packaged directory, a site-packages tree, a CLI input directory."""
    root = tmp_path_factory.mktemp("in")
    path = root / inside
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "file":
        path.write_bytes(b"x")
    elif kind == "dir":
        path.mkdir()
    else:
        path.symlink_to("/etc/hostname")
    if not _is_whiteout(inside):
        assert f"app/{inside}" in [e.path for e in collect_entries([(str(root), "app")])]
        return
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(root), "app")])
    # The first name met on the walk: the highest whiteout component of the path.
    parts = inside.split("/")
    depth = next(i for i, p in enumerate(parts) if p.startswith(".wh.")) + 1
    first = "/".join(parts[:depth])
    assert str(err.value) == _refused(f"app/{first}", str(root / first))


@settings(max_examples=GENERATED, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=_PATHS, absolute=st.booleans())
def test_a_symlink_target_naming_a_whiteout_is_refused(target: str, absolute: bool,
                                                       tmp_path_factory) -> None:
    target = ("/" if absolute else "") + target
    link = tmp_path_factory.mktemp("in") / "link"
    link.symlink_to(target)
    if not _is_whiteout(target):
        assert collect_entries([(str(link), "lib/link")])[-1].link_target == target
        return
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(link), "lib/link")])
    assert str(err.value) == _refused(target, str(link), "the symlink target")


@settings(max_examples=GENERATED, deadline=None)
@given(path=_PATHS, kind=st.sampled_from([DIR, SYMLINK]), in_target=st.booleans())
def test_the_tar_writer_refuses_whiteouts_unless_the_layer_is_a_diff(path: str, kind: str,
                                                                     in_target: bool) -> None:
    """Whoever made the entries (a future layer kind, a plugin): one check where bytes are
    written. A diff (a snapshot of a RUN step) says so and keeps its whiteouts."""
    entry = (LayerEntry("usr/link", SYMLINK, mode=0o777, link_target=path) if in_target
             else LayerEntry(path, kind, mode=0o755, link_target="x" if kind == SYMLINK else None))
    out = io.BytesIO()
    if not _is_whiteout(path):
        write_tar([entry], out, mtime=0)
        return
    with pytest.raises(OciBuildError) as err:
        write_tar([entry], io.BytesIO(), mtime=0)
    what = "link target" if in_target else "path"
    assert str(err.value) == (
        f"layer entry {entry.path!r}: its {what} holds the whiteout name "
        f"{whiteout_component(path)!r} (.wh.*), which would delete or hide files of the image "
        "below; only a layer that is a diff may hold whiteouts: rename the input")
    write_tar([entry], out, mtime=0, whiteouts=True)
    assert tar_members(out.getvalue())[0][0].name in (path, "usr/link")


def test_whiteout_component_is_exactly_a_component_prefix() -> None:
    assert [whiteout_component(p) for p in (
        ".wh..wh..opq", "etc/.wh.passwd", "a.wh.b/c", "x/.whx", "usr/.wh./y", "..wh.z")] == [
        ".wh..wh..opq", ".wh.passwd", None, None, ".wh.", None]


@pytest.mark.parametrize("layer_input", ["file", "directory"])
def test_the_cli_refuses_a_whiteout_input(tmp_path: Path, layer_input: str) -> None:
    """`ocibuild layer` and `ocibuild build --layer DIR` take the same route."""
    write(tmp_path / "in/etc/.wh..wh..opq")
    source = "in/etc/.wh..wh..opq" if layer_input == "file" else "in"
    (tmp_path / "s.json").write_text(json.dumps(
        {"mappings": [{"source": source, "dest": "etc/.wh..wh..opq" if layer_input == "file"
                       else "/"}]}))
    proc = run_ocibuild("layer", "--spec", "s.json", "--out-dir", "o", cwd=tmp_path)
    message = _refused("etc/.wh..wh..opq", "in/etc/.wh..wh..opq")
    assert (proc.returncode, json.loads(proc.stdout)["message"]) == (2, message)
    assert proc.stderr == f"ocibuild: error: {message}\n"
    assert not (tmp_path / "o").exists()
    # `--layer FILE` puts it at /<its name>; `--layer DIR:/srv` its contents under /srv.
    flag, dest = ((source, ".wh..wh..opq") if layer_input == "file"
                  else (f"{source}:/srv", "srv/etc/.wh..wh..opq"))
    proc = run_ocibuild("build", "--base", "scratch", "--layer", flag, "--output", "image",
                        cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == "ocibuild: error: " + _refused(
        dest, "in/etc/.wh..wh..opq")
    assert not (tmp_path / "image").exists()
