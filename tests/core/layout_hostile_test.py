"""Hostile base layouts: wrongly typed documents, links out of the layout, junk beside blobs.

Each layout here is built by hand, byte by byte, as an attacker (or a broken tool) would."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Callable, Optional

import pytest

from ocibuild import mediatypes
from ocibuild.docker_archive import write_docker_archive
from ocibuild.errors import OciBuildError
from ocibuild.layout import OciLayout, resolve_image

from .conftest import run_ocibuild
from .layouts import assemble_json

Edit = Optional[Callable[[dict], None]]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(members) -> bytes:
    """A tar holding `members`: (name, bytes) files or (name, "->", target) symlinks."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member[0])
            if len(member) == 3:
                info.type, info.linkname = tarfile.SYMTYPE, member[2]
                tar.addfile(info)
            else:
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return out.getvalue()


class Hostile:
    """A one-image layout whose documents can be edited before they are written."""

    def __init__(self, root: Path, *, layer_tar: bytes = b"", edit_config: Edit = None,
                 edit_manifest: Edit = None, edit_index: Edit = None) -> None:
        self.root = root
        tar = layer_tar or tar_of([("etc/marker", b"base")])
        self.layer = self.blob(gzip.compress(tar, mtime=0))
        config = {"os": "linux", "architecture": "amd64",
                  "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": [sha(tar)]},
                  "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "ADD base"}]}
        (edit_config or (lambda c: None))(config)
        self.config = self.blob(json.dumps(config).encode())
        manifest = {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                    "config": self.descriptor(mediatypes.OCI_CONFIG, self.config),
                    "layers": [self.descriptor(mediatypes.OCI_LAYER_GZIP, self.layer)]}
        (edit_manifest or (lambda m: None))(manifest)
        self.manifest = self.blob(json.dumps(manifest).encode())
        entry = self.descriptor(mediatypes.OCI_MANIFEST, self.manifest)
        index = {"schemaVersion": 2, "manifests": [
            {**entry, "platform": {"os": "linux", "architecture": "amd64"},
             "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
        (edit_index or (lambda i: None))(index)
        (root / "index.json").write_text(json.dumps(index))
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def blob(self, data: bytes) -> str:
        path = self.root / "blobs/sha256" / sha(data)[7:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return sha(data)

    def descriptor(self, media_type: str, digest: str) -> dict:
        size = (self.root / "blobs/sha256" / digest[7:]).stat().st_size
        return {"mediaType": media_type, "digest": digest, "size": size}

    def path(self, digest: str) -> Path:
        return self.root / "blobs/sha256" / digest[7:]


def assemble_error(tmp_path: Path, layout: Path) -> str:
    with pytest.raises(OciBuildError) as err:
        assemble_json({"base": {"layout": str(layout), "name": "//:base"}, "layers": []},
                      tmp_path / "out")
    assert not (tmp_path / "out").exists()
    return str(err.value)


def set_in(path: str, value: object) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        *parents, key = path.split(".")
        for parent in parents:
            doc = doc[parent]
        doc[key] = value
    return edit


INDEX_CASES = [
    (set_in("manifests", {"a": 1}),
     "index.json: `manifests` must be a JSON array, not object ({'a': 1})"),
    (set_in("manifests", "x"), "index.json: `manifests` must be a JSON array, not string ('x')"),
    (lambda i: i["manifests"].__setitem__(0, "x"),
     "index.json manifests[0]: 'x' is not a descriptor object"),
    (lambda i: i["manifests"][0].__setitem__("platform", "linux/amd64"),
     "index.json manifests[0]: `platform` must be a JSON object, not string ('linux/amd64')"),
    (lambda i: i["manifests"][0]["platform"].__setitem__("os", ["linux"]),
     "index.json manifests[0] platform: `os` must be a JSON string, not array (['linux'])"),
    (lambda i: i["manifests"][0]["platform"].__setitem__("os.features", "sse4"),
     "index.json manifests[0] platform: `os.features` must be a JSON array, not string "
     "('sse4')"),
    (lambda i: i["manifests"][0].__setitem__("annotations", {"a": 1}),
     "index.json manifests[0]: `annotations` must map names to strings, not {'a': 1}"),
    (lambda i: i["manifests"][0].__setitem__("annotations", ["a"]),
     "index.json manifests[0]: `annotations` must be a JSON object, not array (['a'])"),
    (lambda i: i["manifests"][0].__setitem__("size", True),
     "index.json manifests[0]: size True must be a byte count, e.g. 1024"),
]


@pytest.mark.parametrize("edit,message", INDEX_CASES)
def test_wrongly_typed_index(tmp_path: Path, edit, message: str) -> None:
    layout = tmp_path / "base"
    Hostile(layout, edit_index=edit)
    assert assemble_error(tmp_path, layout) == f"layout {str(layout)!r}: {message}"


@pytest.mark.parametrize("edit,message", [
    (set_in("layers", {"0": {}}),
     "MANIFEST: `layers` must be a JSON array, not object ({'0': {}})"),
    (set_in("layers", [["x"]]), "MANIFEST layers[0]: ['x'] is not a descriptor object"),
    (set_in("config", []), "MANIFEST config: [] is not a descriptor object"),
])
def test_wrongly_typed_manifest(tmp_path: Path, edit, message: str) -> None:
    layout = tmp_path / "base"
    h = Hostile(layout, edit_manifest=edit)
    assert assemble_error(tmp_path, layout) == (
        f"layout {str(layout)!r}: " + message.replace("MANIFEST", f"manifest {h.manifest}"))


CONFIG_CASES = [
    (set_in("config.Env", "PATH=/bin"),
     ", in `config`: `Env` must be a JSON array, not string ('PATH=/bin')"),
    (set_in("config.Env", ["A=1", 2]), ", in `config`: `Env` must be a list of strings, not "
     "['A=1', 2]"),
    (set_in("config.Cmd", "/bin/sh -c x"),
     ", in `config`: `Cmd` must be a JSON array, not string ('/bin/sh -c x')"),
    (set_in("config.Entrypoint", "/entry"),
     ", in `config`: `Entrypoint` must be a JSON array, not string ('/entry')"),
    (set_in("config.Labels", ["a=b"]),
     ", in `config`: `Labels` must be a JSON object, not array (['a=b'])"),
    (set_in("config.Labels", {"a": 1}),
     ", in `config`: `Labels` must map names to strings, not {'a': 1}"),
    (set_in("config.ExposedPorts", ["80/tcp"]),
     ", in `config`: `ExposedPorts` must be a JSON object, not array (['80/tcp'])"),
    (set_in("config.Volumes", "/data"),
     ", in `config`: `Volumes` must be a JSON object, not string ('/data')"),
    (set_in("config.User", 0), ", in `config`: `User` must be a JSON string, not integer (0)"),
    (set_in("config", ["Env"]), ": `config` must be a JSON object, not array (['Env'])"),
    (set_in("rootfs", []), ": `rootfs` must be a JSON object, not array ([])"),
    (set_in("rootfs.diff_ids", "sha256:1"),
     ", in `rootfs`: `diff_ids` must be a JSON array, not string ('sha256:1')"),
    (set_in("rootfs.diff_ids", ["sha256:1"]),
     ": rootfs.diff_ids[0]: digest 'sha256:1' must be 'sha256:' followed by 64 lowercase hex "
     "digits, e.g. \"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\""),
    (set_in("history", {"created_by": "x"}),
     ": `history` must be a JSON array, not object ({'created_by': 'x'})"),
    (set_in("history", ["ADD x"]), ": history[0] 'ADD x' must be a JSON object"),
    (set_in("os", 1), ": `os` must be a JSON string, not integer (1)"),
    (set_in("architecture", {"x": 1}),
     ": `architecture` must be a JSON string, not object ({'x': 1})"),
]


@pytest.mark.parametrize("edit,message", CONFIG_CASES)
def test_wrongly_typed_base_config_is_refused_not_fixed(tmp_path: Path, edit,
                                                        message: str) -> None:
    layout = tmp_path / "base"
    h = Hostile(layout, edit_config=edit)
    where = f"the base '//:base' (layout {str(layout)!r}, config blob {h.config})"
    assert assemble_error(tmp_path, layout) == where + message


def test_a_wrongly_typed_base_through_the_cli_is_exit_2_naming_blob_and_field(
        tmp_path: Path) -> None:
    h = Hostile(tmp_path / "base", edit_config=set_in("config.Env", "PATH=/bin"))
    (tmp_path / "spec.json").write_text(json.dumps(
        {"base": {"layout": "base", "name": "//:base"}, "layers": []}))
    proc = run_ocibuild("assemble", "--spec", "spec.json", "--out-dir", "out", cwd=tmp_path)
    assert (proc.returncode, json.loads(proc.stdout)["error"]) == (2, "bad-input")
    assert proc.stderr == (
        f"ocibuild: error: the base '//:base' (layout 'base', config blob {h.config}), in "
        "`config`: `Env` must be a JSON array, not string ('PATH=/bin')\n")


def test_deeply_nested_json_is_an_error_not_a_recursion_error(tmp_path: Path) -> None:
    layout = tmp_path / "base"
    Hostile(layout)
    (layout / "index.json").write_text('{"manifests": ' + "[" * 200_000 + "]" * 200_000 + "}")
    assert assemble_error(tmp_path, layout) == (
        f"layout {str(layout)!r}: index.json nests deeper than 64 levels: not a document this "
        "tool reads")


def test_a_deeply_nested_config_blob_is_an_error(tmp_path: Path) -> None:
    layout = tmp_path / "base"
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    h = Hostile(layout, edit_manifest=lambda m: m["config"].update(digest=sha(deep),
                                                                   size=len(deep)))
    h.blob(deep)
    assert assemble_error(tmp_path, layout) == (
        f"layout {str(layout)!r}: blob {sha(deep)} nests deeper than 64 levels: not a document "
        "this tool reads")


def test_an_oversized_index_is_refused_unread(tmp_path: Path) -> None:
    layout = tmp_path / "base"
    Hostile(layout)
    (layout / "index.json").write_bytes(b" " * (16 << 20) + b"{}")
    assert assemble_error(tmp_path, layout) == (
        f"the index {str(layout / 'index.json')!r} is over 16777216 bytes; refusing to read it")


# Links leading out of the layout: the blob's bytes are right, so only the link is wrong.

def link_out(tmp_path: Path, inside: Path) -> Path:
    """Moves `inside` out of the layout and leaves a symbolic link to it in its place."""
    outside = tmp_path / "elsewhere" / inside.name
    outside.parent.mkdir(exist_ok=True)
    os.rename(inside, outside)
    os.symlink(outside, inside)
    return outside


def refused_link(layout: Path, relative: str, real: Path) -> str:
    return (f"layout {str(layout)!r}: {relative} is a symbolic link (or lies under one) leading "
            f"outside the layout, to {str(real)!r}; refusing to follow it. A layout holds its "
            "own files: copy it without links, e.g. `cp -rL` or `skopeo copy`")


def test_a_blob_linking_out_of_the_layout_is_refused(tmp_path: Path) -> None:
    layout = tmp_path / "base"
    h = Hostile(layout)
    real = link_out(tmp_path, h.path(h.config))
    assert assemble_error(tmp_path, layout) == refused_link(
        layout, f"blobs/sha256/{h.config[7:]}", real)


def test_an_index_linking_out_of_the_layout_is_refused(tmp_path: Path) -> None:
    layout = tmp_path / "base"
    Hostile(layout)
    real = link_out(tmp_path, layout / "index.json")
    assert assemble_error(tmp_path, layout) == refused_link(layout, "index.json", real)


def test_a_blobs_directory_linking_out_of_the_layout_is_refused(tmp_path: Path) -> None:
    layout = tmp_path / "base"
    h = Hostile(layout)
    real = link_out(tmp_path, layout / "blobs/sha256")
    assert assemble_error(tmp_path, layout) == refused_link(
        layout, f"blobs/sha256/{h.manifest[7:]}", real / h.manifest[7:])


def test_docker_archive_refuses_a_layer_blob_linking_out(tmp_path: Path) -> None:
    layout = tmp_path / "base"
    h = Hostile(layout)
    image = resolve_image(OciLayout(layout))
    real = link_out(tmp_path, h.path(h.layer))
    with pytest.raises(OciBuildError) as err:
        write_docker_archive(OciLayout(layout), image, ["a:1"], str(tmp_path / "a.tar"))
    assert str(err.value) == refused_link(layout, f"blobs/sha256/{h.layer[7:]}", real)
    assert not (tmp_path / "a.tar").exists()


def test_links_inside_the_layout_and_a_linked_root_are_followed(tmp_path: Path) -> None:
    layout = tmp_path / "base"
    h = Hostile(layout)
    os.rename(layout / "index.json", layout / "index-real.json")
    os.symlink("index-real.json", layout / "index.json")
    os.symlink(layout, tmp_path / "alias")
    image = resolve_image(OciLayout(tmp_path / "alias"))
    assert image.manifest_descriptor.digest == h.manifest


def test_stray_partial_files_are_never_read(tmp_path: Path) -> None:
    layout = tmp_path / "base"
    h = Hostile(layout)
    (layout / ".partial-1-2-index").write_text("{")
    (layout / "blobs/sha256" / ".partial-1-2-abc").write_bytes(b"half a blob")
    image = resolve_image(OciLayout(layout))
    assert (image.manifest_descriptor.digest, image.config_descriptor.digest) == (
        h.manifest, h.config)


def test_base_layer_tars_are_copied_as_blobs_never_extracted(tmp_path: Path) -> None:
    """A base layer holding `../` paths and links to host files stays opaque bytes: the
    image carries it verbatim and nothing is written outside the outputs."""
    evil = tar_of([("../../escaped", b"evil"), ("etc/passwd-link", "->", "/etc/passwd"),
                   ("/abs-escaped", b"evil")])
    layout = tmp_path / "base"
    h = Hostile(layout, layer_tar=evil)
    meta = assemble_json({"base": {"layout": str(layout), "name": "//:base"}, "layers": []},
                         tmp_path / "out")
    assert meta["base_blobs"] == [h.layer]
    image = resolve_image(OciLayout(tmp_path / "out"))
    write_docker_archive(OciLayout(layout), resolve_image(OciLayout(layout)), ["a:1"],
                         str(tmp_path / "a.tar"))
    with tarfile.open(tmp_path / "a.tar") as tar:
        carried = tar.extractfile(f"blobs/sha256/{h.layer[7:]}").read()
    assert carried == h.path(h.layer).read_bytes()
    assert [d.digest for d in image.layers] == [h.layer]
    assert not list(tmp_path.rglob("*escaped*"))
    assert not (tmp_path.parent / "escaped").exists() and not Path("/abs-escaped").exists()


def test_a_base_config_holding_nan_is_refused_where_it_is_read(tmp_path: Path) -> None:
    """Python's json reads NaN; canonical JSON cannot write it back, so it would fail later."""
    layout = tmp_path / "base"
    h = Hostile(layout, edit_config=set_in("config.Labels", {"x": "1"}))
    nan_config = h.path(h.config).read_bytes().replace(b'"Labels"', b'"Healthcheck": NaN, "Labels"')
    digest = h.blob(nan_config)
    Hostile(layout, edit_manifest=lambda m: m["config"].update(digest=digest,
                                                               size=len(nan_config)))
    assert assemble_error(tmp_path, layout) == (
        f"layout {str(layout)!r}: blob {digest} is not valid JSON: NaN is not a JSON number")


GO = "but Go readers (containerd, docker, registries) take it for"
FOLDED_CONFIG_CASES = [
    (set_in("Config", {"User": "0"}),
     f": the key 'Config' is not `config`, {GO} `config`; a document read two ways is refused"),
    (set_in("config.user", "0"),
     f", in `config`: the key 'user' is not `User`, {GO} `User`; a document read two ways is "
     "refused"),
    (set_in("config.x-vendor", {}), None),  # a field we do not know: folds onto nothing
    (lambda c: c["config"].update({"x-vendor": 1, "X-Vendor": 2}),
     ", in `config`: the keys 'x-vendor' and 'X-Vendor' differ only in case, and Go "
     "readers take them for one field; a document read two ways is refused"),
    (set_in("rootfs.Diff_IDs", []),
     f", in `rootfs`: the key 'Diff_IDs' is not `diff_ids`, {GO} `diff_ids`; a document read "
     "two ways is refused"),
    (lambda c: c["history"][0].update(Empty_Layer=True),
     f", in `history[0]`: the key 'Empty_Layer' is not `empty_layer`, {GO} `empty_layer`; a "
     "document read two ways is refused"),
]


@pytest.mark.parametrize("edit,message", FOLDED_CONFIG_CASES)
def test_base_config_keys_go_reads_otherwise_are_refused(tmp_path: Path, edit,
                                                         message: Optional[str]) -> None:
    """Go matches keys to fields case-insensitively: a "Config" beside (or instead of) "config"
    would be merged into what a runtime runs, unseen by this tool, and kept in the new image."""
    layout = tmp_path / "base"
    h = Hostile(layout, edit_config=edit)
    if message is None:
        assemble_json({"base": {"layout": str(layout), "name": "//:base"}, "layers": []},
                      tmp_path / "out")
        return
    where = f"the base '//:base' (layout {str(layout)!r}, config blob {h.config})"
    assert assemble_error(tmp_path, layout) == where + message


def test_a_descriptor_size_other_than_the_blob_is_refused(tmp_path: Path) -> None:
    layout = tmp_path / "base"
    h = Hostile(layout, edit_manifest=lambda m: m["config"].update(size=m["config"]["size"] + 1))
    size = h.path(h.config).stat().st_size
    assert assemble_error(tmp_path, layout) == (
        f"layout {str(layout)!r}: manifest {h.manifest} config: the descriptor of {h.config} "
        f"says {size + 1} bytes, the blob has {size}; the layout is corrupt")
