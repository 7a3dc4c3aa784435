"""One digest, one document: a manifest's kind comes from its bytes, never from the outside.

The CVE-2021-41190 class: a document without `mediaType` holding both `manifests` and
`config`/`layers` was an index to one reader and an image to another. Here every combination
of the fields that decide a kind, with every Content-Type a registry could send, has exactly
one interpretation or is refused, and the interpretation never depends on the Content-Type;
the same documents are served by a real (hostile) server on loopback and put in layouts.
And the parser differentials that make one document two: duplicate keys, keys Go folds to a
field name, BOM, trailing bytes, lone surrogates.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Dict, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocibuild import mediatypes
from ocibuild.digest import bytes_digest
from ocibuild.errors import OciBuildError
from ocibuild.image.kind import document_type
from ocibuild.image.manifest import Descriptor
from ocibuild.layout import OciLayout, read_ref, resolve_image
from ocibuild.reference import parse_reference
from ocibuild.registry.pull import fetch_manifest, image_manifest
from ocibuild.registry.transport import Transport
from ocibuild.untrusted import load_json
from tests.fixtures.hostile_registry import HostileRegistry, answer

from .layout_hostile_test import Hostile, sha

DIGEST = "sha256:" + "a" * 64
CONFIG = {"mediaType": mediatypes.OCI_CONFIG, "digest": DIGEST, "size": 2}
CHILD = {"mediaType": mediatypes.OCI_MANIFEST, "digest": DIGEST, "size": 2}
ABSENT = object()
DOCUMENT_TYPES = [mediatypes.OCI_INDEX, mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST_LIST,
                  mediatypes.DOCKER_MANIFEST]
MEDIA_TYPES = [ABSENT, None, 7, mediatypes.OCI_INDEX, mediatypes.OCI_MANIFEST,
               mediatypes.DOCKER_MANIFEST_LIST, mediatypes.DOCKER_MANIFEST,
               mediatypes.OCI_CONFIG, "application/vnd.oci.image.manifest.v1+json; x=1"]
CONTENT_TYPES = [None, "", "application/json", "application/json; charset=utf-8",
                 mediatypes.OCI_INDEX, mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST_LIST,
                 mediatypes.DOCKER_MANIFEST, mediatypes.OCI_CONFIG,
                 mediatypes.OCI_MANIFEST.upper(), mediatypes.OCI_INDEX + "; charset=utf-8"]
SHAPES = {
    "manifests": [ABSENT, [], [CHILD]],
    "config": [ABSENT, CONFIG, {**CONFIG, "mediaType": mediatypes.OCI_INDEX}],
    "layers": [ABSENT, [], [{**CONFIG, "mediaType": mediatypes.OCI_LAYER_GZIP}]],
    "subject": [ABSENT, CHILD],
    "schemaVersion": [ABSENT, 2, 1, True],
}


def documents():
    for media_type, *values in itertools.product(MEDIA_TYPES, *SHAPES.values()):
        doc = {k: v for k, v in zip(SHAPES, values) if v is not ABSENT}
        if media_type is not ABSENT:
            doc["mediaType"] = media_type
        yield doc


def spec_kind(doc: dict) -> Optional[str]:
    """The image spec's answer, written independently of the code: a type, or None (refuse)."""
    version = doc.get("schemaVersion", 2)
    if isinstance(version, bool) or version != 2:  # True == 1, but it is no version
        return None
    if "manifests" in doc and ("config" in doc or "layers" in doc):
        return None
    media_type = doc.get("mediaType")
    if media_type is None:
        media_type = (mediatypes.OCI_INDEX if "manifests" in doc else
                      mediatypes.OCI_MANIFEST if "config" in doc else None)
    if media_type in mediatypes.INDEXES:
        return media_type if "manifests" in doc else None
    if media_type in mediatypes.MANIFESTS and "config" in doc:
        inner = {doc["config"]["mediaType"], *(d["mediaType"] for d in doc.get("layers", []))}
        return None if inner & {*mediatypes.INDEXES, *mediatypes.MANIFESTS} else media_type
    return None


def spec_with_header(kind: Optional[str], content_type: Optional[str]) -> Optional[str]:
    if kind is None or content_type is None:
        return kind
    claim = content_type.split(";")[0].strip().lower()
    return kind if claim in ("", "application/json", kind.lower()) else None


def kind_or_refused(doc: dict, content_type: Optional[str]) -> Optional[str]:
    try:
        return document_type(doc, "doc", claimed=content_type, claimed_by="the Content-Type")
    except OciBuildError:
        return None


def test_every_shape_with_every_content_type_is_one_kind_or_refused() -> None:
    """The generated family: 9 media types x 3 x 3 x 3 x 2 x 4 shapes x 11 headers."""
    cases = 0
    for doc in documents():
        alone = kind_or_refused(doc, None)
        assert alone == spec_kind(doc), doc
        for content_type in CONTENT_TYPES:
            got = kind_or_refused(doc, content_type)
            # The header can only refuse a document, never make it another kind.
            assert got in (alone, None), (doc, content_type)
            assert got == spec_with_header(alone, content_type), (doc, content_type)
            cases += 1
    assert cases == 9 * 3 * 3 * 3 * 2 * 4 * len(CONTENT_TYPES) == 21384


KEYS = st.sampled_from(["mediaType", "manifests", "config", "layers", "subject",
                        "schemaVersion", "annotations", "artifactType", "MediaType", "Config",
                        "MANIFESTS", "\u017fchemaVersion", "x"])
VALUES = st.sampled_from([None, 2, 1, True, "", [], [CHILD], CONFIG, CHILD, {}, "x", *DOCUMENT_TYPES])


@settings(max_examples=2000, deadline=None, database=None)
@given(doc=st.dictionaries(KEYS, VALUES, max_size=6),
       content_type=st.none() | st.sampled_from(CONTENT_TYPES) | st.text(max_size=20))
def test_random_documents_have_one_kind_whatever_the_header(doc: dict,
                                                            content_type: Optional[str]) -> None:
    """Any document: a kind or an OciBuildError (nothing else), and a header never changes it."""
    alone = kind_or_refused(doc, None)
    assert kind_or_refused(doc, content_type) in (alone, None)


AMBIGUOUS = json.dumps({"schemaVersion": 2, "config": CONFIG, "layers": [],
                        "manifests": [CHILD]}).encode()


def _transport(server: HostileRegistry) -> Transport:
    return Transport(server.host, insecure=True, sleep=lambda s: None)


@pytest.mark.parametrize("content_type", [mediatypes.OCI_INDEX, mediatypes.OCI_MANIFEST,
                                          "application/json", None])
def test_a_registry_document_that_is_both_index_and_manifest_is_refused(
        content_type: Optional[str]) -> None:
    digest = bytes_digest(AMBIGUOUS)
    headers = {"Content-Type": content_type} if content_type else {}
    with HostileRegistry() as server:
        server.on("GET", f"/v2/app/manifests/{digest}", answer(200, AMBIGUOUS, headers))
        with pytest.raises(OciBuildError) as err:
            fetch_manifest(_transport(server), parse_reference(f"{server.host}/app"), digest)
    assert str(err.value) == (
        f"{server.host}/app@{digest}: the manifest holds both `manifests` (an index) and "
        "`config`/`layers` (an image manifest): one digest would name two images; refusing "
        "it, as the image spec requires")


INDEX_WITHOUT_TYPE = json.dumps({"schemaVersion": 2, "manifests": [CHILD]}).encode()


@pytest.mark.parametrize("content_type,kind", [
    (mediatypes.OCI_INDEX, mediatypes.OCI_INDEX), ("application/json", mediatypes.OCI_INDEX),
    (mediatypes.OCI_MANIFEST, None), (mediatypes.DOCKER_MANIFEST, None)])
def test_the_content_type_may_agree_but_never_decide(content_type: str,
                                                     kind: Optional[str]) -> None:
    digest = bytes_digest(INDEX_WITHOUT_TYPE)
    with HostileRegistry() as server:
        server.on("GET", f"/v2/app/manifests/{digest}",
                  answer(200, INDEX_WITHOUT_TYPE, {"Content-Type": content_type}))
        ref = parse_reference(f"{server.host}/app")
        if kind is not None:
            assert fetch_manifest(_transport(server), ref, digest).media_type == kind
            return
        with pytest.raises(OciBuildError) as err:
            fetch_manifest(_transport(server), ref, digest)
    assert str(err.value) == (
        f"{server.host}/app@{digest}: the manifest is a {mediatypes.OCI_INDEX} by its own "
        f"bytes, but the registry's Content-Type says {content_type!r}; a digest must name one "
        "document, so neither is believed")


def _pull_through_index(child: bytes, entry: dict):
    """Pull `linux/amd64` of tag 1, an index with the one `entry` naming `child`: the index's
    bytes, the registry's host and the error the pull raised."""
    from ocibuild.platform import parse_platform

    index = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
                        "manifests": [entry]}).encode()
    with HostileRegistry() as server:
        server.on("GET", "/v2/app/manifests/1", answer(200, index))
        server.on("GET", f"/v2/app/manifests/{bytes_digest(child)}", answer(200, child))
        with pytest.raises(OciBuildError) as err:
            image_manifest(_transport(server), parse_reference(f"{server.host}/app"), "1",
                           parse_platform("linux/amd64"))
    return index, server.host, err


def test_an_index_entry_whose_media_type_disagrees_with_the_child_is_refused() -> None:
    """The index names a manifest; the child's bytes are an index (without mediaType)."""
    child = INDEX_WITHOUT_TYPE
    entry = {"mediaType": mediatypes.OCI_MANIFEST, "digest": bytes_digest(child),
             "size": len(child), "platform": {"os": "linux", "architecture": "amd64"}}
    index, host, err = _pull_through_index(child, entry)
    assert str(err.value) == (
        f"{host}/app@{bytes_digest(child)} is a {mediatypes.OCI_INDEX} by its own "
        f"bytes, but the index {bytes_digest(index)} says {mediatypes.OCI_MANIFEST!r}; a digest "
        "must name one document, so neither is believed")


# Layouts: the same decision for index.json and every document a descriptor points at.

def _layout_error(tmp_path: Path, **edits) -> str:
    layout = tmp_path / "base"
    Hostile(layout, **edits)
    with pytest.raises(OciBuildError) as err:
        resolve_image(OciLayout(layout))
    with pytest.raises(OciBuildError) as again:
        read_ref(OciLayout(layout))
    assert str(again.value) == str(err.value)
    return str(err.value).replace(str(layout), "L")


def test_a_layout_manifest_holding_manifests_too_is_refused(tmp_path: Path) -> None:
    def both(manifest: dict) -> None:
        del manifest["mediaType"]
        manifest["manifests"] = [CHILD]
    message = _layout_error(tmp_path, edit_manifest=both)
    assert message.startswith("layout 'L': manifest sha256:")
    assert message.endswith(": holds both `manifests` (an index) and `config`/`layers` (an "
                            "image manifest): one digest would name two images; refusing it, "
                            "as the image spec requires".replace(": holds", " holds"))


def test_a_layout_index_json_with_a_manifest_media_type_is_refused(tmp_path: Path) -> None:
    message = _layout_error(tmp_path, edit_index=lambda i: i.update(
        mediaType=mediatypes.OCI_MANIFEST))
    assert message == (f"layout 'L': index.json is a {mediatypes.OCI_MANIFEST} document; here "
                       f"only {mediatypes.OCI_INDEX} or {mediatypes.DOCKER_MANIFEST_LIST} "
                       "belongs")


def test_a_descriptor_naming_an_index_a_manifest_is_refused(tmp_path: Path) -> None:
    """index.json says the entry is an OCI manifest; its bytes say Docker manifest."""
    message = _layout_error(tmp_path, edit_manifest=lambda m: m.update(
        mediaType=mediatypes.DOCKER_MANIFEST))
    assert message.endswith(
        f" is a {mediatypes.DOCKER_MANIFEST} by its own bytes, but the descriptor pointing at "
        f"it says {mediatypes.OCI_MANIFEST!r}; a digest must name one document, so neither is "
        "believed")


def test_a_config_typed_as_an_index_is_refused(tmp_path: Path) -> None:
    message = _layout_error(tmp_path, edit_manifest=lambda m: m["config"].update(
        mediaType=mediatypes.OCI_INDEX))
    assert message.endswith(f": `config` has the media type {mediatypes.OCI_INDEX!r} of a "
                            "manifest or index; a config or layer is neither")


# Parser differentials: two readers, one document, two meanings.

@pytest.mark.parametrize("text,problem", [
    ('{"mediaType": "A", "mediaType": "B"}',
     "the key 'mediaType' appears twice in one object; a document whose keys repeat means "
     "different things to different readers"),
    ('{"mediaType": "A", "\\u006dediaType": "B"}',
     "the key 'mediaType' appears twice in one object; a document whose keys repeat means "
     "different things to different readers"),
    ('{"a": {"b": 1, "b": 1}}',
     "the key 'b' appears twice in one object; a document whose keys repeat means different "
     "things to different readers"),
    ('{"\\ud800": 1}', "the key '\\ud800' holds a lone UTF-16 surrogate, which is not text"),
    ('\ufeff{"a": 1}', "Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)"),
    ('{"a": 1} {"a": 2}', "Extra data: line 1 column 10 (char 9)"),
    ('{"a": 1}\0', "Extra data: line 1 column 9 (char 8)"),
])
def test_json_that_two_parsers_read_differently_is_refused(text: str, problem: str) -> None:
    with pytest.raises(OciBuildError) as err:
        load_json(text.encode("utf-8", "surrogatepass"), "doc")
    assert str(err.value) == f"doc is not valid JSON: {problem}"


@pytest.mark.parametrize("key,name", [("MediaType", "mediaType"), ("MANIFESTS", "manifests"),
                                      ("\u017fchemaVersion", "schemaVersion"),
                                      ("Config", "config")])
def test_keys_go_would_take_for_a_field_are_refused(key: str, name: str) -> None:
    doc: Dict[str, object] = {"schemaVersion": 2, "manifests": [CHILD], key: "x"}
    if key.casefold() == "schemaversion":
        doc = {"manifests": [CHILD], key: 2}
    with pytest.raises(OciBuildError) as err:
        document_type(doc, "doc")
    assert str(err.value) == (
        f"doc: the key {key!r} is not `{name}`, but Go readers (containerd, docker, "
        f"registries) take it for `{name}`; a document read two ways is refused")


def test_a_descriptor_key_go_would_fold_is_refused(tmp_path: Path) -> None:
    message = _layout_error(tmp_path, edit_index=lambda i: i["manifests"][0].update(
        Digest=sha(b"other")))
    assert message == (
        "layout 'L': index.json manifests[0]: the key 'Digest' is not `digest`, but Go readers "
        "(containerd, docker, registries) take it for `digest`; a document read two ways is "
        "refused")


def test_a_duplicate_key_in_a_layout_manifest_is_refused(tmp_path: Path) -> None:
    layout = tmp_path / "base"
    h = Hostile(layout)
    text = h.path(h.manifest).read_text()
    forged = text.replace('"mediaType": "application/vnd.oci.image.manifest.v1+json"',
                          f'"mediaType": "{mediatypes.OCI_MANIFEST}", '
                          f'"mediaType": "{mediatypes.OCI_INDEX}"', 1).encode()
    digest = h.blob(forged)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0].update(digest=digest, size=len(forged))
    (layout / "index.json").write_text(json.dumps(index))
    with pytest.raises(OciBuildError) as err:
        resolve_image(OciLayout(layout))
    assert str(err.value) == (
        f"layout {str(layout)!r}: blob {digest} is not valid JSON: the key 'mediaType' appears "
        "twice in one object; a document whose keys repeat means different things to "
        "different readers")


@pytest.mark.parametrize("data,message", [
    ("e30=", None),  # "{}": the bytes the digest names
    ("eHg=", "`data` holds 2 bytes of digest sha256:" + hashlib.sha256(b"xx").hexdigest()
     + f", not the 2 bytes of {bytes_digest(b'{}')} the descriptor names; one descriptor "
     "would name two contents"),
    ("not base64!", "`data` is not base64"),
])
def test_embedded_data_must_be_what_the_digest_names(data: str, message: Optional[str]) -> None:
    raw = {"mediaType": mediatypes.OCI_CONFIG, "digest": bytes_digest(b"{}"), "size": 2,
           "data": data}
    if message is None:
        assert Descriptor.from_json(raw, where="d").digest == bytes_digest(b"{}")
        return
    with pytest.raises(OciBuildError) as err:
        Descriptor.from_json(raw, where="d")
    assert str(err.value) == f"d: {message}"


@pytest.mark.parametrize("version", [2.0, True, "2", 1, 3])
def test_schema_version_is_the_integer_2(version: object) -> None:
    with pytest.raises(OciBuildError) as err:
        document_type({"schemaVersion": version, "manifests": []}, "doc")
    assert str(err.value) == (f"doc: `schemaVersion` is {version!r}, not 2: only OCI and Docker "
                              "v2 schema 2 documents are supported")


def test_an_index_entry_whose_size_is_not_the_childs_is_refused() -> None:
    child = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                        "config": CONFIG, "layers": []}).encode()
    entry = {"mediaType": mediatypes.OCI_MANIFEST, "digest": bytes_digest(child),
             "size": len(child) + 7, "platform": {"os": "linux", "architecture": "amd64"}}
    index, host, err = _pull_through_index(child, entry)
    assert str(err.value) == (
        f"{host}/app@{bytes_digest(child)}: the index {bytes_digest(index)} says "
        f"{len(child) + 7} bytes, the manifest has {len(child)}; a registry refuses such an "
        "index, so an image built on it could not be pushed")
