"""Hostile signature, attestation and referrer documents served by a registry on 127.0.0.1
(`tests/fixtures/hostile_registry.py`): `verify`, `sign_and_push` and the referrers push of
`publish` give a valid result or one `OciBuildError`, never another exception.

The served world is what publish and sign write for one image (the image manifest, its
`.sig`, its `.att`, its referrers tag index, the artifact manifests and their blobs), each
document at the path a registry serves it. Hypothesis replaces or mutates one document
(arbitrary JSON, one value changed or removed deep inside, random bytes), and, when asked,
re-addresses it: every descriptor of the old digest is given the new digest and size, up
to the tags, so the mutation reaches the parser instead of the digest check. A statement
mutated "with the key" is signed again: what the key holder's own bad document does.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild import attestation, canonical_json, cosign, dsse, mediatypes
from ocibuild.digest import bytes_digest
from ocibuild.errors import OciBuildError
from ocibuild.layout import OciLayout
from ocibuild.protocol.sign import SignRequest, SignResult, VerifyRequest, VerifyResult
from ocibuild.reference import parse_reference
from ocibuild.registry.referrers import layout_referrers, push_referrers
from ocibuild.registry.signatures import sign_and_push, verify
from ocibuild.registry.transport import Transport
from ocibuild.registry.upload import CHUNK_SIZE, PushResult, push_target
from tests.core import attested
from tests.core.attested import attach_documents
from tests.core.layouts import add_image, named, write_layout
from tests.fixtures.hostile_registry import HostileRegistry, answer

from .signature_test import _openssl_key

EXAMPLES = 150
REPO = "/v2/team/app"
KEYS = ["mediaType", "digest", "size", "layers", "manifests", "config", "subject",
        "artifactType", "annotations", "payload", "payloadType", "signatures", "sig", "_type",
        "predicateType", "predicate", "sha256", "spdxVersion", "packages", "checksums",
        "bomFormat", "metadata", "component", "hashes", "buildDefinition", "critical"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False,
                                                                         allow_infinity=False)
    | st.text(st.characters(blacklist_categories=()), max_size=20)  # lone surrogates too
    | st.sampled_from(["sha256:" + "0" * 64, "", "1.0", "../x"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
    max_leaves=20)


class World:
    """The documents a registry holds for one signed, attested image with referrers."""

    def __init__(self, tmp_path: Path, host: str) -> None:
        self.name = f"{host}/team/app"
        layout_dir = tmp_path / "layout"
        image = add_image(layout_dir, "app")
        write_layout(layout_dir, [named(image, "latest")])
        self.digest = image.digest
        self.layout_dir = attach_documents(layout_dir, tmp_path / "attach", image.digest,
                                           attested.documents(image.digest))
        layout = OciLayout(self.layout_dir)
        self.key_file = _openssl_key(tmp_path)
        self.public = str(tmp_path / "key.pub")
        self.key = cosign.load_private_key(self.key_file.read_bytes(), "key")
        self.served: Dict[str, bytes] = {}
        manifest = layout.read_json_blob(image.digest)[0]
        self.served[f"{REPO}/manifests/1.0"] = manifest
        self.served[f"{REPO}/manifests/{image.digest}"] = manifest
        payload = cosign.payload(self.name, image.digest)
        self._cosign_image(cosign.signature_tag(image.digest), [
            (cosign.Signature(payload, cosign.sign(self.key, payload)).layer, payload)])
        referrers = layout_referrers(layout, [image.digest])
        attestations, entries = [], []
        for r in referrers:
            media_type = r.entry["artifactType"]
            data = Path(layout.blob_path(r.blobs[1].digest)).read_bytes()
            self.blob(data)
            self.blob(b"{}")
            self.served[f"{REPO}/manifests/{r.entry['digest']}"] = r.content
            entries.append(r.entry)
            predicate_type, predicate = attestation.predicate_of(media_type, data, "doc")
            envelope = dsse.envelope(self.key, attestation.statement(
                predicate_type, predicate, image.digest, self.name))
            # Spelled out (not `cosign.attestation_layer`): cosign's static.NewAttestation.
            attestations.append(({
                "mediaType": "application/vnd.dsse.envelope.v1+json",
                "digest": bytes_digest(envelope), "size": len(envelope),
                "annotations": {"dev.cosignproject.cosign/signature": "",
                                "predicateType": predicate_type}}, envelope))
        self.att_path = f"{REPO}/manifests/sha256-{image.digest[7:]}.att"
        self._cosign_image(self.att_path.rsplit("/", 1)[1], attestations)
        self.index_path = f"{REPO}/manifests/sha256-{image.digest[7:]}"
        self.served[self.index_path] = canonical_json.dumps(
            {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": entries})

    def blob(self, data: bytes) -> str:
        digest = bytes_digest(data)
        self.served[f"{REPO}/blobs/{digest}"] = data
        return digest

    def _cosign_image(self, tag: str, layers: List[Tuple[dict, bytes]]) -> None:
        for _, data in layers:
            self.blob(data)
        config, manifest = cosign.signature_image([layer for layer, _ in layers])
        self.blob(config)
        self.served[f"{REPO}/manifests/{tag}"] = manifest

    def mutable(self) -> List[str]:
        return sorted(p for p in self.served if p != f"{REPO}/manifests/1.0"
                      and not p.endswith(self.digest))

    def replace(self, path: str, data: bytes, readdress: bool) -> None:
        """`path` serves `data`; with `readdress`, what pointed to it points to it again."""
        old = path.rsplit("/", 1)[1]
        if not readdress or not old.startswith("sha256:"):
            self.served[path] = data
            return
        del self.served[path]
        new = bytes_digest(data)
        self.served[path.rsplit("/", 1)[0] + "/" + new] = data
        for other, content in list(self.served.items()):
            if old.encode() not in content or other.endswith(new):
                continue
            try:
                doc = json.loads(content)
            except ValueError:
                continue
            if _repoint(doc, old, new, len(data)):
                self.replace(other, json.dumps(doc).encode(), True)

    def envelopes(self) -> List[str]:
        att = json.loads(self.served[self.att_path])
        return [f"{REPO}/blobs/{layer['digest']}" for layer in att["layers"]]

    def responder(self, handler) -> None:
        path = handler.path.split("?")[0]
        if handler.command == "PUT" and "/manifests/" in path:
            return answer(201)(handler)
        if handler.command == "HEAD" and "/blobs/" in path:
            return answer(200)(handler)  # every blob is there: a push uploads nothing
        if path in self.served:
            body = self.served[path]
            kind = "application/json"
            if "/manifests/" in path:
                try:
                    kind = json.loads(body).get("mediaType") or mediatypes.OCI_MANIFEST
                except (ValueError, AttributeError):
                    kind = mediatypes.OCI_MANIFEST
            return answer(200, body, {"Content-Type": str(kind)})(handler)
        return answer(404, b'{"errors":[{"code":"NOT_FOUND","message":"no"}]}',
                      {"Content-Type": "application/json"})(handler)


def _repoint(doc, old: str, new: str, size: int) -> bool:
    changed = False
    if isinstance(doc, dict):
        if doc.get("digest") == old:
            doc["digest"], doc["size"] = new, size
            changed = True
        for value in doc.values():
            changed = _repoint(value, old, new, size) or changed
    elif isinstance(doc, list):
        for value in doc:
            changed = _repoint(value, old, new, size) or changed
    return changed


def _mutate(data: bytes, draw) -> bytes:
    """`data` with one value somewhere inside changed or removed (or replaced whole)."""
    how = draw(st.sampled_from(["json", "deep", "deep", "deep", "bytes", "truncate"]))
    if how == "bytes":
        return draw(st.binary(max_size=64))
    if how == "truncate":
        return data[:draw(st.integers(0, max(0, len(data) - 1)))]
    if how == "json":
        return json.dumps(draw(JSON)).encode()
    doc = json.loads(data)
    holder, key = doc, None
    while isinstance(holder, (dict, list)) and holder:
        key = draw(st.sampled_from(sorted(holder) if isinstance(holder, dict)
                                   else list(range(len(holder)))))
        if not isinstance(holder[key], (dict, list)) or not holder[key] \
                or draw(st.booleans()):
            break
        holder = holder[key]
    if key is None:
        return json.dumps(draw(JSON)).encode()
    if isinstance(holder, dict) and draw(st.booleans()):
        del holder[key]
    else:
        holder[key] = draw(JSON)
    return json.dumps(doc).encode()


@pytest.fixture
def world(tmp_path_factory):
    server = HostileRegistry()
    with server:
        w = World(tmp_path_factory.mktemp("world"), server.host)
        server.on("GET", "/v2/", w.responder).on("HEAD", "/v2/", w.responder) \
            .on("PUT", "/v2/", w.responder)
        w.transport = Transport(server.host, insecure=True)
        w.pristine = dict(w.served)
        yield w


@st.composite
def hostile_world(draw, w: World) -> str:
    """Mutate one document of `w` (reset first); say what was done."""
    w.served = dict(w.pristine)
    target = draw(st.sampled_from([*w.mutable(), "statement"]))
    readdress = draw(st.booleans())
    if target == "statement":  # the key holder signs a bad statement
        path = draw(st.sampled_from(w.envelopes()))
        envelope = json.loads(w.served[path])
        body = _mutate(base64.b64decode(envelope["payload"]), draw)
        w.replace(path, dsse.envelope(w.key, body), True)
        return f"statement in {path}: {body[:200]!r}"
    data = _mutate(w.served[target], draw)
    w.replace(target, data, readdress)
    return f"{target} (readdressed: {readdress}): {data[:200]!r}"


def test_the_pristine_world_verifies(world: World) -> None:
    result = verify(VerifyRequest(f"{world.name}:1.0", world.public, insecure=True),
                    world.transport)
    assert (result.signatures, len(result.attestations), len(result.referrers)) == (1, 3, 3)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_verify_of_hostile_documents_is_a_result_or_one_error(world: World, data) -> None:
    what = data.draw(hostile_world(world))
    try:
        result = verify(VerifyRequest(f"{world.name}:1.0", world.public, insecure=True),
                        world.transport)
    except OciBuildError as err:
        assert "Traceback" not in str(err) and len(str(err)) < 4000, what
        return
    assert isinstance(result, VerifyResult), what
    # What verified is only ever what the key signed about this image.
    assert {a.subject for a in result.attestations} <= {world.digest}, what
    assert len(result.referrers) <= len(result.attestations), what


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_sign_over_hostile_signature_manifests_is_a_result_or_one_error(world: World,
                                                                        data) -> None:
    world.served = dict(world.pristine)
    path = data.draw(st.sampled_from([f"{REPO}/manifests/{cosign.signature_tag(world.digest)}",
                                      world.att_path]))
    world.served[path] = _mutate(world.served[path], data.draw)
    try:
        result = sign_and_push(SignRequest(world.name, world.digest, str(world.key_file),
                                           insecure=True, layout=str(world.layout_dir)),
                               world.transport, str(Path(world.public).parent / "sign"))
    except OciBuildError as err:
        assert "Traceback" not in str(err)
        return
    assert isinstance(result, SignResult)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_publish_over_a_poisoned_referrers_index_is_a_result_or_one_error(world: World,
                                                                         data) -> None:
    world.served = dict(world.pristine)
    index = world.served[world.index_path]
    # The index without our entries, so the push must merge (and read) it.
    world.served[world.index_path] = _mutate(index, data.draw)
    layout = OciLayout(world.layout_dir)
    dest = parse_reference(f"{world.name}:1.0")
    t = push_target(layout, dest, world.transport, None, 2, CHUNK_SIZE)
    result = PushResult(str(dest), world.digest)
    try:
        push_referrers(t, dest, [world.digest], 2, result)
    except OciBuildError as err:
        assert "Traceback" not in str(err)
        return
    assert len(result.referrers) == 3


def _doc(world: World, path: str) -> dict:
    return json.loads(world.served[path])


def _entry_path(world: World, i: int) -> str:
    return f"{REPO}/manifests/{_doc(world, world.index_path)['manifests'][i]['digest']}"


def _set(world: World, path: str, change, readdress: bool = True) -> None:
    doc = _doc(world, path)
    change(doc)
    world.replace(path, json.dumps(doc).encode(), readdress)


def _listing_a_tag(world: World) -> None:
    """An index entry whose "digest" is a tag naming a real referrer: fetched by it, the
    manifest is not verified against anything."""
    world.served[f"{REPO}/manifests/evil"] = world.served[_entry_path(world, 0)]
    _set(world, world.index_path, lambda d: d["manifests"][0].update(digest="evil"), False)


def _index_lists_itself(world: World) -> None:
    index = _doc(world, world.index_path)
    index["manifests"].insert(0, {})
    # An index cannot hold its own digest; it can hold that of one that lists it, though,
    # which is the same loop one step longer.
    loop = canonical_json.dumps({**index, "manifests": [{
        "mediaType": mediatypes.OCI_INDEX, "digest": "sha256:" + "0" * 64, "size": 1}]})
    world.served[f"{REPO}/manifests/{bytes_digest(loop)}"] = loop
    index["manifests"][0] = {"mediaType": mediatypes.OCI_INDEX, "digest": bytes_digest(loop),
                             "size": len(loop), "artifactType": attested.IN_TOTO}
    world.served[world.index_path] = canonical_json.dumps(index)


def _many_platforms(world: World) -> None:
    index = canonical_json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
                                  "manifests": [{"mediaType": mediatypes.OCI_MANIFEST,
                                                 "digest": world.digest, "size": 1}] * 65})
    world.served[f"{REPO}/manifests/1.0"] = index
    payload = cosign.payload(world.name, bytes_digest(index))
    world._cosign_image(cosign.signature_tag(bytes_digest(index)), [
        (cosign.Signature(payload, cosign.sign(world.key, payload)).layer, payload)])


def _api(body: bytes):
    def install(world: World) -> None:
        world.served[f"{REPO}/referrers/{world.digest}"] = body
    return install


def _in_toto_blob(body: bytes):
    def install(world: World) -> None:
        path = _entry_path(world, 2)
        layer = _doc(world, path)["layers"][0]["digest"]
        world.replace(f"{REPO}/blobs/{layer}", body, True)
    return install


def _sbom_blob(change):
    def install(world: World) -> None:
        path = _entry_path(world, 0)  # the SPDX SBOM
        blob = f"{REPO}/blobs/{_doc(world, path)['layers'][0]['digest']}"
        world.replace(blob, change(world.served[blob]), True)
    return install


def _api_hides_a_forged_sbom(world: World) -> None:
    """The API lists nothing; the tag index, which clients without the API read, lists an
    SPDX SBOM changed by someone without the key."""
    def forge(blob: bytes) -> bytes:
        doc = json.loads(blob)
        doc["packages"].append({"SPDXID": "SPDXRef-evil", "name": "evil"})
        return canonical_json.dumps(doc)
    _sbom_blob(forge)(world)
    _api(b'{"schemaVersion":2,"manifests":[]}')(world)


HOSTILE = {
    "API and tag disagree": (_api_hides_a_forged_sbom, "unsigned referrer(s) sha256:"),
    # The signed SBOM, with a `packages` of its own put first: read as its last value here
    # (the signed one) and as its first by a parser that keeps the first.
    "duplicate key": (_sbom_blob(lambda b: b'{"packages":[{"name":"evil"}],' + b[1:]),
                      "the key 'packages' appears twice in one object"),
    "lone surrogate": (_sbom_blob(lambda b: b.replace(b'"name":"app"', b'"name":"\\ud800"')),
                       "holds a string that is not Unicode text"),
    "listed digest is a tag": (_listing_a_tag, "manifests[0]: digest 'evil' must be 'sha256:'"),
    "listed entry not an object": (
        lambda w: _set(w, w.index_path, lambda d: d["manifests"].insert(0, 1), False),
        "manifests[0]: 1 is not a descriptor object"),
    "referrer subject a string": (
        lambda w: _set(w, _entry_path(w, 0), lambda d: d.update(subject="x")),
        "`subject` must be a JSON object, not string ('x')"),
    "referrer without layers": (
        lambda w: _set(w, _entry_path(w, 0), lambda d: d.pop("layers")),
        "`layers` is missing"),
    "referrer config a list": (
        lambda w: _set(w, _entry_path(w, 1), lambda d: d.update(config=[])),
        "`config` must be a JSON object, not array ([])"),
    "referrer is an index": (
        lambda w: _set(w, _entry_path(w, 0), lambda d: d.update(
            mediaType=mediatypes.OCI_INDEX, manifests=[])),
        # Refused before its type is even considered: both index and manifest fields.
        "one digest would name two images"),
    "referrers API answers a list": (_api(b"[]"), "must be a JSON object, not array"),
    "index lists itself": (_index_lists_itself, "is an image index, not an artifact manifest"),
    "too many platforms": (_many_platforms, "65 manifests; refusing more than 64"),
    "referrers API answers garbage": (_api(b"{"), "is not valid JSON"),
    "statement subject digest a list": (
        _in_toto_blob(json.dumps({"_type": "https://in-toto.io/Statement/v1",
                                  "subject": [{"digest": ["x"]}]}).encode()),
        "`digest` must be a JSON object, not array (['x'])"),
    "statement a list": (_in_toto_blob(b"[1]"), "must be a JSON object, not array"),
    "signature layer without a digest": (
        lambda w: _set(w, f"{REPO}/manifests/{cosign.signature_tag(w.digest)}",
                       lambda d: d["layers"][0].pop("digest"), False),
        "layers[0]: digest None must be 'sha256:'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_each_hostile_document_is_one_clear_error(world: World, case: str) -> None:
    install, message = HOSTILE[case]
    world.served = dict(world.pristine)
    install(world)
    with pytest.raises(OciBuildError) as err:
        verify(VerifyRequest(f"{world.name}:1.0", world.public, insecure=True), world.transport)
    assert message in str(err.value)


def test_sign_and_publish_refuse_hostile_manifests_clearly(world: World, tmp_path: Path) -> None:
    sig = f"{REPO}/manifests/{cosign.signature_tag(world.digest)}"
    _set(world, sig, lambda d: d["layers"][0].pop("digest"), False)
    with pytest.raises(OciBuildError) as err:
        sign_and_push(SignRequest(world.name, world.digest, str(world.key_file), insecure=True),
                      world.transport, str(tmp_path / "sign"))
    assert str(err.value).startswith(f"{world.name}:{cosign.signature_tag(world.digest)} "
                                     "layers[0]: digest None must be 'sha256:'")
    world.served = dict(world.pristine)
    _set(world, world.index_path, lambda d: d["manifests"].append(1), False)
    layout = OciLayout(world.layout_dir)
    dest = parse_reference(f"{world.name}:1.0")
    t = push_target(layout, dest, world.transport, None, 2, CHUNK_SIZE)
    # The index without one of ours, so the push reads it to merge.
    _set(world, world.index_path, lambda d: d["manifests"].pop(0), False)
    with pytest.raises(OciBuildError) as err:
        push_referrers(t, dest, [world.digest], 2, PushResult(str(dest), world.digest))
    assert str(err.value) == (f"{world.name}:sha256-{world.digest[7:]} (the referrers tag "
                              "index) manifests[2]: 1 is not a descriptor object")
