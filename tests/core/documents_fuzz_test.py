"""Property tests: random and mutated documents into every reader of layouts, archives and specs.

The property is the same everywhere: a valid result or an OciBuildError, never another
exception (a traceback) and never a hang. Inputs are random JSON values whose keys are
mostly the fields the readers look at (so type checks are reached, not just "unknown key"),
and byte mutations of valid documents and archives."""

from __future__ import annotations

import argparse
import dataclasses
import atexit
import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ocibuild import canonical_json, mediatypes
from ocibuild.cli import cmd_assemble, cmd_layer
from ocibuild.protocol.assemble import AssembleRequest, AssembleResult, Settings
from ocibuild.protocol.layer import LayerDescriptor, LayerRequest
from ocibuild.digest import EMPTY_DIGEST, hex_of, validate_digest
from ocibuild.docker_archive import write_docker_archive
from ocibuild.errors import OciBuildError
from ocibuild.image import mutate as derive
from ocibuild.image.config import ImageSettings
from ocibuild.image.image import Image
from ocibuild.image.layer import Layer
from ocibuild.image.manifest import Descriptor
from ocibuild.layout import OciLayout, read_ref, resolve_image
from ocibuild.oci_archive import unpack_oci_archive
from ocibuild.platform import Platform, describe, from_config, parse_platform

from .layouts import add_image, assemble_json, named, write_layout

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
KEYS = ("manifests", "mediaType", "digest", "size", "platform", "annotations", "os",
        "architecture", "variant", "os.version", "os.features", "config", "layers", "rootfs",
        "diff_ids", "history", "Env", "Cmd", "Entrypoint", "Labels", "ExposedPorts", "Volumes",
        "WorkingDir", "User", "StopSignal", "schemaVersion", "type",
        "org.opencontainers.image.ref.name")
SCALARS = (st.none() | st.booleans() | st.integers(-2, 2**64)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from(["linux", "amd64", "arm64", "v8", "latest", EMPTY_DIGEST,
                              mediatypes.OCI_MANIFEST, mediatypes.OCI_INDEX,
                              mediatypes.OCI_CONFIG, mediatypes.OCI_LAYER_GZIP, "PATH=/bin"])
           | st.text(max_size=12))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5),
    max_leaves=24)
DOCS = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=6)


def mostly(valid, hostile=JSON):
    """A valid value, or any JSON: for fields whose checks are reached either way."""
    return valid | hostile


def spoiled(valid: st.SearchStrategy, keys) -> st.SearchStrategy:
    """Valid objects, or valid objects with exactly one field made hostile: so the check of
    that one field is reached instead of the first check failing every time."""
    def spoil(doc: dict, key: str, value: object) -> dict:
        return {**doc, key: value}
    return valid | st.builds(spoil, valid, st.sampled_from(keys), JSON)


PLATFORM = spoiled(st.fixed_dictionaries(
    {"os": st.sampled_from(["linux", "unknown"]),
     "architecture": st.sampled_from(["amd64", "arm64"])},
    optional={"variant": st.just("v8"), "os.features": st.lists(st.text(max_size=4), max_size=2)}),
    ["os", "architecture", "variant", "os.version", "os.features"])


def descriptors(digests=st.just(EMPTY_DIGEST)):
    valid = st.fixed_dictionaries(
        {"mediaType": st.sampled_from([mediatypes.OCI_MANIFEST, mediatypes.OCI_INDEX,
                                       mediatypes.OCI_CONFIG]),
         "digest": digests, "size": st.integers(0, 2000)},
        optional={"platform": PLATFORM,
                  "annotations": st.dictionaries(
                      st.sampled_from(["org.opencontainers.image.ref.name", "a"]),
                      st.sampled_from(["latest", "x"]), max_size=2)})
    return spoiled(valid, ["mediaType", "digest", "size", "platform", "annotations"])


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory per example (pytest's tmp_path is one per test, not per example)."""
    path = Path(tempfile.mkdtemp(prefix="ocibuild-fuzz-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def valid_or_user_error(call, *args, **kwargs) -> Optional[object]:
    try:
        result = call(*args, **kwargs)
    except OciBuildError:
        event(f"{call.__name__}: OciBuildError")
        return None
    event(f"{call.__name__}: valid")
    return result


# A valid one-image layout, built once: every example starts from a copy of its documents.
_TEMPLATE_ROOT = tempfile.mkdtemp(prefix="ocibuild-fuzz-template-")
atexit.register(shutil.rmtree, _TEMPLATE_ROOT, ignore_errors=True)
_TEMPLATE = Path(_TEMPLATE_ROOT) / "layout"
write_layout(_TEMPLATE, [named(add_image(_TEMPLATE, "base"), "latest", platform=True)])
_IMAGE = resolve_image(OciLayout(_TEMPLATE))
_DOCS = {"index": (_TEMPLATE / "index.json").read_bytes(),
         "manifest": Path(OciLayout(_TEMPLATE).blob_path(_IMAGE.manifest_descriptor.digest))
         .read_bytes(),
         "config": Path(OciLayout(_TEMPLATE).blob_path(_IMAGE.config_descriptor.digest))
         .read_bytes()}


def layout_with(root: Path, *, index: bytes, manifest: bytes, config: bytes) -> Path:
    """The template's layer blob under documents `index`, `manifest`, `config` as given;
    manifest and config are re-pointed by digest so the digest checks pass and the mutated
    content itself is what gets parsed."""
    layout = root / "layout"
    shutil.copytree(_TEMPLATE / "blobs", layout / "blobs")
    out = OciLayout(layout)
    config_d = out.write_blob_bytes(config, mediatypes.OCI_CONFIG)
    manifest = manifest.replace(_IMAGE.config_descriptor.digest.encode(),
                                config_d.digest.encode())
    manifest = manifest.replace(b'"size":%d' % _IMAGE.config_descriptor.size,
                                b'"size":%d' % config_d.size, 1)
    manifest_d = out.write_blob_bytes(manifest, mediatypes.OCI_MANIFEST)
    index = index.replace(_IMAGE.manifest_descriptor.digest.encode(), manifest_d.digest.encode())
    index = index.replace(b'"size":%d' % _IMAGE.manifest_descriptor.size,
                          b'"size":%d' % manifest_d.size, 1)
    (layout / "index.json").write_bytes(index)
    return layout


def mutate(data: bytes, edits) -> bytes:
    """Apply (position, kind, bytes) edits: overwrite, insert or delete at a position."""
    buf = bytearray(data)
    for position, kind, chunk in edits:
        at = position % (len(buf) + 1)
        if kind == "overwrite":
            buf[at:at + len(chunk)] = chunk
        elif kind == "insert":
            buf[at:at] = chunk
        else:
            del buf[at:at + len(chunk) + 1]
    return bytes(buf)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 16), st.sampled_from(["overwrite", "insert",
                                                                       "delete"]),
                           st.binary(min_size=1, max_size=6)
                           | st.sampled_from([b"[", b"{", b'"', b"NaN", b"1e999", b"\xff",
                                              b"null", b'"x"', b"[]", b"{}", b"-1", b"true"])),
                 min_size=1, max_size=4)
PLATFORMS = st.none() | st.sampled_from(["linux/amd64", "linux/arm64", "linux/arm/v7"])


def assemble(layout: Path, root: Path, platform: Optional[str]) -> Optional[dict]:
    spec = {"base": {"layout": str(layout), "name": "fuzz"}, "layers": [],
            **({"platform": platform} if platform else {})}
    result = valid_or_user_error(assemble_json, spec, root / "out")
    if result is not None:  # a valid result is a readable image
        assert isinstance(resolve_image(OciLayout(root / "out")), Image)
    return result


def _real_digests() -> st.SearchStrategy:
    return st.sampled_from([_IMAGE.manifest_descriptor.digest, _IMAGE.config_descriptor.digest,
                            _IMAGE.layers[0].digest, EMPTY_DIGEST])


@FUZZ
@given(index=spoiled(st.fixed_dictionaries({"manifests": st.lists(
    descriptors(_real_digests()), max_size=3)}), ["manifests"]),
       ref_name=st.none() | st.sampled_from(["latest", "x"]), platform=PLATFORMS)
def test_random_index_json(index, ref_name, platform) -> None:
    with scratch() as root:
        layout = layout_with(root, index=b"{}", manifest=_DOCS["manifest"],
                             config=_DOCS["config"])
        (layout / "index.json").write_text(json.dumps(index))
        valid_or_user_error(resolve_image, OciLayout(layout), ref_name=ref_name,
                            platform=parse_platform(platform) if platform else None)
        valid_or_user_error(read_ref, OciLayout(layout), ref_name)


@settings(FUZZ, max_examples=300)
@given(which=st.sampled_from(["index", "manifest", "config"]), edits=EDITS, platform=PLATFORMS)
def test_mutated_documents_into_resolve_and_assemble(which, edits, platform) -> None:
    docs = dict(_DOCS)
    docs[which] = mutate(docs[which], edits)
    with scratch() as root:
        layout = layout_with(root, **docs)
        assemble(layout, root, platform)


@settings(FUZZ, max_examples=300)
@given(which=st.sampled_from(["manifest", "config"]), doc=DOCS, platform=PLATFORMS)
def test_random_manifest_or_config_documents(which, doc, platform) -> None:
    docs = dict(_DOCS)
    if which == "config":  # keep the fields that make it reach the merge, mostly
        doc = {**json.loads(_DOCS["config"]), **doc}
    docs[which] = json.dumps(doc).encode()
    with scratch() as root:
        assemble(layout_with(root, **docs), root, platform)


@settings(FUZZ, max_examples=500)
@given(raw=descriptors())
def test_descriptor_from_json(raw) -> None:
    descriptor = valid_or_user_error(Descriptor.from_json, raw, where="fuzz")
    if descriptor is not None:
        canonical_json.dumps(descriptor.to_json())
        validate_digest(descriptor.digest)
        describe(descriptor.platform)
        Platform("linux", "amd64").matches(descriptor.platform)


SETTINGS = st.dictionaries(
    st.sampled_from(["entrypoint", "cmd", "env", "workdir", "user", "labels", "exposed_ports",
                     "volumes", "stop_signal"]),
    JSON | st.lists(st.text(max_size=8), max_size=3)
    | st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3),
    max_size=5)


def derive_as_assemble_does(base: object, settings_: ImageSettings) -> Image:
    image = derive.with_platform(Image(canonical_json.dumps(base)), Platform("linux", "amd64"))
    image = derive.with_settings(derive.with_created(image, "1970-01-01T00:00:00Z"), settings_)
    layer = Layer(mediatypes.OCI_LAYER_GZIP, EMPTY_DIGEST, 0, EMPTY_DIGEST, "x")
    return derive.add_layers(image, [layer], created="1970-01-01T00:00:00Z")


@settings(FUZZ, max_examples=400)
@given(base=DOCS | st.fixed_dictionaries({"config": DOCS, "rootfs": DOCS}), raw=SETTINGS)
def test_config_merge_on_a_hostile_base(base, raw) -> None:
    settings_ = valid_or_user_error(ImageSettings.from_json, raw) or ImageSettings()
    image = valid_or_user_error(derive_as_assemble_does, base, settings_)
    if image is not None:
        config = image.config  # the merged config was written, so it is not corrupt JSON
        assert config["rootfs"]["diff_ids"][-1] == EMPTY_DIGEST


@settings(FUZZ, max_examples=500)
@given(text=st.text(max_size=30) | st.builds("/".join, st.lists(
    st.sampled_from(["linux", "amd64", "arm64", "v8", "", "windows", "x"]) | st.text(max_size=4),
    max_size=4)) | JSON, config=DOCS)
def test_platform_parsing(text, config) -> None:
    platform = valid_or_user_error(parse_platform, text)
    if platform is not None:
        assert parse_platform(str(platform)) == platform
    valid_or_user_error(from_config, config, where="fuzz")
    assert isinstance(describe(config), str)
    assert isinstance(Platform("linux", "arm64").matches(config), bool)


@settings(FUZZ, max_examples=500)
@given(value=JSON | st.builds(mutate, st.just(EMPTY_DIGEST.encode()), EDITS).map(
    lambda b: b.decode("utf-8", "replace")))
def test_digest_validation(value) -> None:
    digest = valid_or_user_error(validate_digest, value)
    if digest is not None:
        assert digest == value and len(hex_of(digest)) == 64


def _archive_bytes() -> bytes:
    with scratch() as root:
        write_docker_archive(OciLayout(_TEMPLATE), _IMAGE, ["a:1"], str(root / "a.tar"))
        return (root / "a.tar").read_bytes()


_ARCHIVE = _archive_bytes()


@settings(FUZZ, max_examples=300)
@given(edits=EDITS, cut=st.none() | st.integers(0, len(_ARCHIVE)),
       compression=st.sampled_from([None, "gzip", "bzip2", "xz", "zstd"]))
def test_unpack_mutated_archives(edits, cut, compression) -> None:
    data = mutate(_ARCHIVE, [(p * 7 % len(_ARCHIVE), k, c) for p, k, c in edits])
    if cut is not None:
        data = data[:cut]
    if compression:
        import bz2
        import gzip
        import lzma

        import zstandard

        compress = {"gzip": lambda d: gzip.compress(d, mtime=0), "bzip2": bz2.compress,
                    "xz": lzma.compress, "zstd": zstandard.ZstdCompressor().compress}
        data = mutate(compress[compression](data), edits[:1])
    with scratch() as root:
        (root / "a.tar").write_bytes(data)
        done = valid_or_user_error(unpack_oci_archive, str(root / "a.tar"), str(root / "out"))
        if done is None and not (root / "out").exists():
            assert sorted(p.name for p in root.iterdir()) == ["a.tar"]  # no debris
        else:
            assert (root / "out/index.json").is_file()


MAPPING = st.fixed_dictionaries(
    {"source": st.sampled_from(["in", "in/a.txt", "missing", "link", "in\u0000", "\ud800",
                                "in/a.txt/x"]) | st.text(max_size=6),
     "dest": st.sampled_from(["app", "/", "a/../b", "x\u0000"]) | st.text(max_size=6)},
    optional={"mode": JSON | st.sampled_from(["0755", "0o7", "999"])}) | JSON
LAYER_SPEC = mostly(st.fixed_dictionaries(
    {"mappings": mostly(st.lists(MAPPING, min_size=1, max_size=3))},
    optional={"compression": mostly(st.sampled_from(["gzip", "zstd", "none"])),
              "level": mostly(st.integers(-2, 25)), "mtime": mostly(st.integers(0, 8**12)),
              "owner": mostly(st.lists(st.integers(-1, 2**32), min_size=2, max_size=2)),
              "compressor": JSON}), st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(LayerRequest)]), JSON))


@settings(FUZZ, max_examples=200)
@given(spec=LAYER_SPEC)
def test_layer_spec_through_cmd_layer(spec) -> None:
    with scratch() as root:
        (root / "in").mkdir()
        (root / "in/a.txt").write_text("a")
        os.symlink("in/a.txt", root / "link")
        (root / "spec.json").write_text(json.dumps(spec))
        cwd = os.getcwd()
        os.chdir(root)  # relative sources stay inside the scratch directory
        try:
            result = valid_or_user_error(cmd_layer, argparse.Namespace(
                spec="spec.json", out_dir="out"))
        finally:
            os.chdir(cwd)
        if result is not None:
            assert (root / "out/blobs/sha256" / hex_of(result["digest"])).is_file()
        assert not list(root.rglob(".partial-*"))


def _names(cls) -> list:
    return [f.metadata.get("json", f.name) for f in dataclasses.fields(cls)]


def pairs(keys) -> st.SearchStrategy:
    return st.lists(st.tuples(keys, st.sampled_from(["1", "x", "", "a=b"]) | st.text(max_size=6)),
                    max_size=3)


LAYER_DESCRIPTOR = spoiled(st.fixed_dictionaries(
    {"mediaType": st.sampled_from([mediatypes.OCI_LAYER_GZIP, mediatypes.OCI_LAYER_ZSTD,
                                   mediatypes.OCI_LAYER, mediatypes.DOCKER_LAYER_GZIP,
                                   mediatypes.OCI_CONFIG]),
     "digest": st.sampled_from([EMPTY_DIGEST, _IMAGE.layers[0].digest]),
     "size": st.integers(-1, 2**40), "diffID": st.sampled_from([EMPTY_DIGEST, "sha256:x"])},
    optional={"version": st.sampled_from([1, 2]),
              "kind": st.sampled_from(["layer-descriptor", "layer"])}),
    _names(LayerDescriptor) + ["version", "kind"])
REQUEST_SETTINGS = spoiled(st.fixed_dictionaries({}, optional={
    "entrypoint": st.lists(st.sampled_from(["/app", ""]) | st.text(max_size=4), max_size=2),
    "cmd": st.lists(st.text(max_size=4), max_size=2),
    "env": pairs(st.sampled_from(["PATH", "A", "", "A=B", "1X"]) | st.text(max_size=4)),
    "workdir": st.sampled_from(["/app", "app", "", "/a/../b"]),
    "user": st.sampled_from(["65532", "65532:65532", "root", "", "a:b:c"]),
    "labels": pairs(st.sampled_from(["team", ""]) | st.text(max_size=4)),
    "exposed_ports": st.lists(st.sampled_from(["8080", "53/udp", "0", "x/tcp", "99999"]),
                              max_size=2),
    "volumes": st.lists(st.sampled_from(["/data", "data", ""]), max_size=2),
    "stop_signal": st.sampled_from(["SIGTERM", "term", "9", ""])}), _names(Settings))
ASSEMBLE_REQUEST = spoiled(st.fixed_dictionaries(
    {"layers": st.lists(LAYER_DESCRIPTOR, max_size=3)},
    optional={"version": st.sampled_from([1, 2]),
              "kind": st.sampled_from(["assemble", "layer"]),
              "base": st.none() | spoiled(st.fixed_dictionaries(
                  {"layout": st.sampled_from(["layout", "missing", "/etc", "../x", ""])},
                  optional={"ref_name": st.none() | st.sampled_from(["latest", "x"]),
                            "name": st.none() | st.sampled_from(["fuzz", ""])}),
                  ["layout", "ref_name", "name"]),
              "platform": PLATFORMS | st.sampled_from(["linux", "", "linux/x86_64"]),
              "history": st.none() | st.lists(st.text(max_size=6), max_size=3),
              "settings": REQUEST_SETTINGS,
              "annotations": pairs(st.sampled_from(["org.example.x", "", "a b",
                                                    "org.opencontainers.image.base.name"])),
              "created_epoch": st.integers(-1, 2**40),
              "ref_names": st.lists(st.sampled_from(["latest", "1.0", "", "a/b"]), max_size=2),
              "repository": st.none() | st.text(max_size=6)}),
    _names(AssembleRequest) + ["version", "kind", "ref_name", "metadata_out"])


@settings(FUZZ, max_examples=300)
@given(spec=ASSEMBLE_REQUEST)
def test_assemble_request_through_cmd_assemble(spec) -> None:
    """Random AssembleRequests (most fields valid, one at a time hostile) against the fuzz
    template as the base: a result describing the written image, or a user error and no
    output."""
    with scratch() as root:
        layout_with(root, **_DOCS)
        (root / "spec.json").write_text(json.dumps(spec))
        cwd = os.getcwd()
        os.chdir(root)  # the base layout "layout" is relative
        try:
            result = valid_or_user_error(cmd_assemble, argparse.Namespace(
                spec="spec.json", out_dir="out"))
        finally:
            os.chdir(cwd)
        if result is None:
            assert not (root / "out").exists()
            return
        request = AssembleRequest.from_json(json.loads(json.dumps(spec)), "fuzz")  # as written
        assert AssembleRequest.from_json(request.to_json(), "again") == request
        assert AssembleResult.from_json(result, "result").to_json() == result
        image = resolve_image(OciLayout(root / "out"), ref_name=request.ref_names[0])
        assert image.manifest_descriptor.digest == result["manifest_digest"]
        new = image.layers[len(image.layers) - len(request.layers):]
        assert [d.digest for d in new] == [d.digest for d in request.layers]
        assert not list(root.rglob(".partial-*"))


def test_the_fuzzed_template_is_itself_valid(tmp_path: Path) -> None:
    """The starting point of the mutations assembles and unpacks: the properties above are
    not vacuous."""
    layout = str(layout_with(tmp_path, **_DOCS))
    meta = assemble_json({"base": {"layout": layout, "name": "fuzz"}, "layers": []},
                         tmp_path / "out")
    assert meta["base_blobs"] == [_IMAGE.layers[0].digest]
    (tmp_path / "a.tar").write_bytes(_ARCHIVE)
    unpack_oci_archive(str(tmp_path / "a.tar"), str(tmp_path / "unpacked"))
    unpacked = resolve_image(OciLayout(tmp_path / "unpacked"))
    assert unpacked.manifest_descriptor.digest == _IMAGE.manifest_descriptor.digest
    assert tarfile.is_tarfile(io.BytesIO(_ARCHIVE))
