"""SBOMs and provenance as cosign attestations, against the real distribution registry on
loopback: the format checked by independent means (the DSSE spec's PAE, openssl over it,
cosign's layer annotations), and what `verify` refuses: forged and unsigned referrers,
documents that name the image in the wrong place, replayed and multi-subject statements,
bad envelopes, and referrers whose types disagree."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from ocibuild import attestation, canonical_json, cosign, dsse, mediatypes
from ocibuild.digest import bytes_digest
from ocibuild.errors import OciBuildError
from ocibuild.layout import OciLayout, resolve_image
from ocibuild.protocol.sign import SignRequest, VerifyRequest
from ocibuild.reference import parse_reference
from ocibuild.registry.pull import fetch_manifest
from ocibuild.registry.push import push_image
from ocibuild.registry.signatures import required_types, sign_and_push, verify
from ocibuild.registry.transport import Transport
from tests.core import attested
from tests.core.attested import attach_documents
from tests.core.layouts import add_image, named, write_layout
from tests.fixtures.registry import Registry, registry  # noqa: F401 (a fixture)

from .signature_test import _openssl_key, _openssl_verifies

SCOPE = "repository:team/app:pull,push"


def _publish(reg: Registry, tmp_path: Path, docs=None, *, attest: bool = True,
             marker: str = "app") -> tuple:
    """An image with `docs` (default: valid SPDX, CycloneDX, SLSA) as referrers, pushed and
    signed (with its attestations when `attest`). (digest, transport, name, public key)."""
    layout_dir = tmp_path / "layout"
    image = add_image(layout_dir, marker)
    write_layout(layout_dir, [named(image, "latest")])
    merged = attach_documents(layout_dir, tmp_path / "attach", image.digest,
                              attested.documents(image.digest) if docs is None else docs)
    layout = OciLayout(merged)
    transport = Transport(reg.host, insecure=True)
    name = f"{reg.host}/team/app"
    push_image(layout, resolve_image(layout, ref_name="latest"),
               parse_reference(f"{name}:1.0"), transport, ["1.0"])
    key = _openssl_key(tmp_path)
    sign_and_push(SignRequest(name, image.digest, str(key), insecure=True,
                              **({"layout": str(merged)} if attest else {})),
                  transport, str(tmp_path / "sign"))
    return image.digest, transport, name, str(tmp_path / "key.pub")


def _verify(transport: Transport, name: str, public: str, require=()):
    return verify(VerifyRequest(f"{name}:1.0", public, tuple(require), insecure=True), transport)


def _get(transport: Transport, path: str) -> bytes:
    response = transport.request("GET", path, scope=SCOPE, stream=True)
    return transport.read(response, 64 << 20, "GET", path)


def _put_manifest(transport: Transport, reference: str, data: bytes,
                  media_type: str = mediatypes.OCI_MANIFEST) -> None:
    transport.request("PUT", f"/v2/team/app/manifests/{reference}", scope=SCOPE,
                      expected=(201,), data=data, headers={"Content-Type": media_type})


def _put_blob(transport: Transport, data: bytes) -> dict:
    response = transport.request("POST", "/v2/team/app/blobs/uploads/", scope=SCOPE,
                                 expected=(202,))
    location = response.headers["Location"]
    separator = "&" if "?" in location else "?"
    transport.request("PUT", f"{location}{separator}digest={bytes_digest(data)}", scope=SCOPE,
                      expected=(201,), data=data,
                      headers={"Content-Type": "application/octet-stream"})
    return {"digest": bytes_digest(data), "size": len(data)}


def test_pae_is_the_dsse_specs() -> None:
    # The DSSE v1.0 protocol document's example.
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "
    # Lengths are of bytes, not characters.
    assert dsse.pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"


def test_attestations_are_stored_as_cosign_stores_them(registry: Registry,  # noqa: F811
                                                       tmp_path: Path) -> None:
    digest, transport, name, public = _publish(registry, tmp_path)
    att = json.loads(fetch_manifest(transport, parse_reference(name),
                                    f"sha256-{digest[7:]}.att").content)
    assert att["mediaType"] == mediatypes.OCI_MANIFEST
    assert att["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    by_type = {}
    for layer in att["layers"]:
        assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
        # cosign's static.NewAttestation: an empty signature annotation, the predicate type.
        assert set(layer["annotations"]) == {"dev.cosignproject.cosign/signature",
                                             "predicateType"}
        assert layer["annotations"]["dev.cosignproject.cosign/signature"] == ""
        by_type[layer["annotations"]["predicateType"]] = layer
    assert sorted(by_type) == ["https://cyclonedx.org/bom", "https://slsa.dev/provenance/v1",
                               "https://spdx.dev/Document"]
    documents = dict(attested.documents(digest))
    expected_predicates = {"https://spdx.dev/Document": documents[attested.SPDX],
                           "https://cyclonedx.org/bom": documents[attested.CYCLONEDX],
                           "https://slsa.dev/provenance/v1":
                               documents[attested.IN_TOTO]["predicate"]}
    for predicate_type, layer in by_type.items():
        envelope = json.loads(_get(transport, f"/v2/team/app/blobs/{layer['digest']}"))
        assert set(envelope) == {"payloadType", "payload", "signatures"}
        assert envelope["payloadType"] == "application/vnd.in-toto+json"
        body = base64.b64decode(envelope["payload"])
        assert json.loads(body) == {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {"sha256": digest[7:]}}],
            "predicateType": predicate_type,
            "predicate": expected_predicates[predicate_type]}
        (signature,) = envelope["signatures"]
        assert signature["keyid"] == ""
        # openssl, over the PAE built here by hand: what cosign verify-attestation checks.
        pae = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(body), body)
        assert _openssl_verifies(tmp_path, Path(public), pae, signature["sig"])
        assert not _openssl_verifies(tmp_path, Path(public), body, signature["sig"])

    result = _verify(transport, name, public, required_types(True, True))
    assert sorted((a.subject, a.predicate_type, a.envelope_digest)
                  for a in result.attestations) == sorted(
        (digest, t, layer["digest"]) for t, layer in by_type.items())
    assert len(result.referrers) == 3

    # Signing again adds nothing: one key and one document give one envelope.
    again = sign_and_push(SignRequest(name, digest, str(tmp_path / "key.pem"), insecure=True,
                                      layout=str(tmp_path / "attach/merged")),
                          transport, str(tmp_path / "again"))
    assert [a.written for a in again.attestations] == [False]


def test_a_forged_provenance_referrer_is_reported_unsigned(registry: Registry,  # noqa: F811
                                                           tmp_path: Path) -> None:
    """Signed image, signed attestations; then someone without the key attaches a SLSA
    statement naming another source and builder, as an OCI 1.1 referrer."""
    digest, transport, name, public = _publish(registry, tmp_path)
    assert len(_verify(transport, name, public).referrers) == 3
    forged = canonical_json.dumps(attested.provenance(
        digest, builder="https://evil.test/builder", source="git+https://evil.test/app"))
    blob = _put_blob(transport, forged)
    empty = _put_blob(transport, b"{}")
    artifact = canonical_json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": attested.IN_TOTO,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", **empty},
        "layers": [{"mediaType": attested.IN_TOTO, **blob}],
        "subject": {"mediaType": mediatypes.OCI_MANIFEST, "digest": digest,
                    "size": len(fetch_manifest(transport, parse_reference(name), digest).content)}})
    _put_manifest(transport, bytes_digest(artifact), artifact)
    tag = f"sha256-{digest[7:]}"
    index = json.loads(fetch_manifest(transport, parse_reference(name), tag).content)
    index["manifests"].append({"mediaType": mediatypes.OCI_MANIFEST,
                               "digest": bytes_digest(artifact), "size": len(artifact),
                               "artifactType": attested.IN_TOTO})
    _put_manifest(transport, tag, canonical_json.dumps(index), mediatypes.OCI_INDEX)
    with pytest.raises(OciBuildError) as err:
        _verify(transport, name, public)
    assert str(err.value) == (
        f"{name}@{digest}: unsigned referrer(s) {bytes_digest(artifact)} "
        f"(application/vnd.in-toto+json): no attestation in {name}:sha256-{digest[7:]}.att "
        f"signed with '{public}' holds what they say, so they may be forged (scanners read "
        "them); delete them, or publish again with the signing key")


def test_referrers_without_attestations_are_unsigned(registry: Registry,  # noqa: F811
                                                     tmp_path: Path) -> None:
    """What publish wrote before attestations: a signed image, its SBOMs and provenance
    bound to the digest but signed by nobody. They are not reported as checked."""
    digest, transport, name, public = _publish(registry, tmp_path, attest=False)
    with pytest.raises(OciBuildError) as err:
        _verify(transport, name, public)
    assert str(err.value).startswith(f"{name}@{digest}: unsigned referrer(s) ")
    assert str(err.value).count("sha256:") == 4  # the three referrers and the subject


@pytest.mark.parametrize("media_type, doc, message", [
    # The digest anywhere but in the described package's checksum.
    (attested.SPDX, lambda d: {"spdxVersion": "SPDX-2.3", "comment": d}, "no package the SPDX "
     "document describes has the SHA256 checksum of {d}"),
    (attested.SPDX, lambda d: {**attested.spdx(d), "relationships": []}, "no package the SPDX "
     "document describes has the SHA256 checksum of {d}"),
    (attested.SPDX, lambda d: {"spdxVersion": "SPDX-3.0", "name": d},
     "`spdxVersion` 'SPDX-3.0' is not SPDX 2"),
    (attested.CYCLONEDX, lambda d: {"bomFormat": "CycloneDX", "metadata": {"component": {}},
                                    "components": [{"version": d}]},
     "the BOM's `metadata.component` has no SHA-256 hash of {d}"),
    (attested.CYCLONEDX, lambda d: {"bomFormat": "SPDX", "version": d},
     "`bomFormat` is not \"CycloneDX\""),
    (attested.IN_TOTO, lambda d: {"_type": "https://in-toto.io/Statement/v1",
                                  "subject": [{"digest": {"sha256": d[7:]}},
                                              {"digest": {"sha256": "0" * 64}}],
                                  "predicateType": attested.SLSA, "predicate": {}},
     "the statement has 2 subjects; one, {d}, is expected"),
    (attested.IN_TOTO, lambda d: {**attested.provenance(d),
                                  "subject": [{"digest": {"sha256": d[7:], "sha512": "00"}}]},
     "the statement is about {{'sha256': '{h}', 'sha512': '00'}}, not about {d}"),
    (attested.IN_TOTO, lambda d: {**attested.provenance(d), "predicateType": "x"},
     "predicate type 'x' is none of https://spdx.dev/Document, https://cyclonedx.org/bom, "
     "https://slsa.dev/provenance/v1"),
    (attested.IN_TOTO, lambda d: {**attested.provenance(d), "predicate": {"buildDefinition": {}}},
     "buildDefinition: `buildType` is missing"),
    (attested.SPDX, lambda d: b"\xff" + d.encode(), "is not UTF-8 text, so not JSON"),
])
def test_each_document_must_name_the_image_where_its_format_says(
        registry: Registry, tmp_path: Path, media_type, doc, message) -> None:  # noqa: F811
    """Before: any blob holding the digest string anywhere counted as an SPDX SBOM."""
    layout_dir = tmp_path / "layout"
    image = add_image(layout_dir, "app")
    write_layout(layout_dir, [named(image, "latest")])
    digest = image.digest
    merged = attach_documents(layout_dir, tmp_path / "attach", digest, [(media_type, doc(digest))])
    layout = OciLayout(merged)
    transport = Transport(registry.host, insecure=True)
    name = f"{registry.host}/team/app"
    push_image(layout, resolve_image(layout, ref_name="latest"), parse_reference(f"{name}:1.0"),
               transport, ["1.0"])
    key = _openssl_key(tmp_path)
    sign_and_push(SignRequest(name, digest, str(key), insecure=True), transport,
                  str(tmp_path / "sign"))
    with pytest.raises(OciBuildError) as err:
        _verify(transport, name, str(tmp_path / "key.pub"))
    assert message.format(d=digest, h=digest[7:]) in str(err.value)
    assert "(a referrer of " + digest + ")" in str(err.value)
    # And the sign process refuses to attest it: it signs only what verify would accept.
    with pytest.raises(OciBuildError) as err:
        sign_and_push(SignRequest(name, digest, str(key), insecure=True, layout=str(merged)),
                      transport, str(tmp_path / "sign2"))
    assert message.format(d=digest, h=digest[7:]) in str(err.value)


def test_an_attestation_of_another_image_replayed_is_refused(registry: Registry,  # noqa: F811
                                                             tmp_path: Path) -> None:
    first, transport, name, public = _publish(registry, tmp_path / "a")
    att = fetch_manifest(transport, parse_reference(name), f"sha256-{first[7:]}.att").content
    second, _, _, _ = _publish(registry, tmp_path / "b", attest=False, marker="other")
    # The second image's own referrers are gone, its .att is the first image's, copied.
    _put_manifest(transport, f"sha256-{second[7:]}",
                  canonical_json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
                                        "manifests": []}), mediatypes.OCI_INDEX)
    _put_manifest(transport, f"sha256-{second[7:]}.att", att)
    with pytest.raises(OciBuildError) as err:
        verify(VerifyRequest(f"{name}:1.0", str(tmp_path / "b/key.pub"), insecure=True),
               transport)
    assert "no signature verifies with" in str(err.value)  # another key, to begin with
    # With the key of the first: the signatures verify, the statements are of the first.
    sign_and_push(SignRequest(name, second, str(tmp_path / "a/key.pem"), insecure=True),
                  transport, str(tmp_path / "sign"))
    with pytest.raises(OciBuildError) as err:
        _verify(transport, name, public)
    assert str(err.value).endswith(
        f"the statement is about {{'sha256': '{first[7:]}'}}, not about {second}")


def _put_cosign_image(transport: Transport, tag: str, layers: list) -> None:
    config, manifest = cosign.signature_image(layers)
    _put_blob(transport, config)
    _put_manifest(transport, tag, manifest)


def _envelope_layer(transport: Transport, envelope: bytes, predicate_type: str) -> dict:
    return {"mediaType": cosign.DSSE_MEDIA_TYPE, **_put_blob(transport, envelope),
            "annotations": {cosign.SIGNATURE_ANNOTATION: "",
                            cosign.PREDICATE_TYPE_ANNOTATION: predicate_type}}


def _bad_envelopes(key, statement: bytes) -> list:
    good = json.loads(dsse.envelope(key, statement))
    sig = good["signatures"][0]["sig"]
    garbage = {"keyid": "", "sig": base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()}
    return [
        # (envelope, None if it verifies, else the end of the error)
        ({**good, "signatures": [garbage, good["signatures"][0]]}, None),
        ({**good, "signatures": [garbage]}, "no signature verifies with {k} (tried 0)"),
        ({**good, "payloadType": "application/json"},
         "the payload type is 'application/json', not 'application/vnd.in-toto+json'"),
        ({**good, "payload": good["payload"] + "!"}, "`payload` is not base64"),
        ({**good, "signatures": [{"sig": "%%%"}]}, "no signature verifies with {k} (tried 0)"),
        ({**good, "signatures": []}, "0 signatures; an envelope has 1 to 16"),
        ({**good, "signatures": [{"sig": sig}] * 17}, "17 signatures; an envelope has 1 to 16"),
        ({**good, "signatures": [{"sig": 5}]}, "`signatures[0]`: `sig` must be a JSON string, not integer (5)"),
        ({**good, "signatures": "x"}, "`signatures` must be a JSON array, not string ('x')"),
    ]


def test_bad_envelopes_are_refused(registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    digest, transport, name, public = _publish(registry, tmp_path, docs=[])
    key = cosign.load_private_key((tmp_path / "key.pem").read_bytes(), "key")
    statement = attestation.statement(attested.SLSA, attested.provenance(digest)["predicate"],
                                      digest, name)
    tag = f"sha256-{digest[7:]}.att"
    for i, (envelope, problem) in enumerate(_bad_envelopes(key, statement)):
        layer = _envelope_layer(transport, canonical_json.dumps(envelope), attested.SLSA)
        _put_cosign_image(transport, tag, [layer])
        if problem is None:
            result = _verify(transport, name, public, [attested.IN_TOTO])
            assert [a.envelope_digest for a in result.attestations] == [layer["digest"]]
            continue
        with pytest.raises(OciBuildError) as err:
            _verify(transport, name, public, [attested.IN_TOTO])
        assert str(err.value) == f"{name}:{tag} layers[0]: " + problem.format(k=repr(public)), i

    # A huge envelope is refused from its descriptor, before any byte of it is read.
    layer = {**_envelope_layer(transport, b"{}", attested.SLSA), "size": 1 << 40}
    _put_cosign_image(transport, tag, [layer])
    with pytest.raises(OciBuildError) as err:
        _verify(transport, name, public)
    assert str(err.value) == f"{name}:{tag} layers[0]: {1 << 40} bytes; refusing more than " \
        f"{attestation.MAX_DOCUMENT * 4 // 3 + (64 << 10)}"

    # The layer's predicateType annotation must be what the signed statement holds.
    good = dsse.envelope(key, statement)
    layer = _envelope_layer(transport, good, attestation.SPDX)
    _put_cosign_image(transport, tag, [layer])
    with pytest.raises(OciBuildError) as err:
        _verify(transport, name, public)
    assert str(err.value).endswith("the layer says https://spdx.dev/Document, but its "
                                   "statement holds a https://slsa.dev/provenance/v1 predicate")


def _index_of(transport: Transport, name: str, digest: str) -> dict:
    return json.loads(fetch_manifest(transport, parse_reference(name), f"sha256-{digest[7:]}"
                                     ).content)


def test_referrer_listings_are_only_pointers(registry: Registry,  # noqa: F811
                                            tmp_path: Path) -> None:
    digest, transport, name, public = _publish(registry, tmp_path)
    tag = f"sha256-{digest[7:]}"
    index = _index_of(transport, name, digest)
    entries = index["manifests"]

    def listing(manifests: list) -> None:
        _put_manifest(transport, tag, canonical_json.dumps({**index, "manifests": manifests}),
                      mediatypes.OCI_INDEX)

    # An artifactType in the listing that is not the manifest's: a scanner filtering by the
    # listing would read something else than a check filtering by the manifest.
    listing([{**entries[0], "artifactType": "application/x-other"}, *entries[1:]])
    with pytest.raises(OciBuildError) as err:
        _verify(transport, name, public)
    assert str(err.value) == (
        f"{name}@{entries[0]['digest']} (a referrer of {digest}): its types disagree or are "
        "not ones verify reads (listed, artifactType, config, layers: application/x-other, "
        "application/spdx+json, application/vnd.oci.empty.v1+json, application/spdx+json); "
        "an SBOM or provenance artifact is one of application/spdx+json, "
        "application/vnd.cyclonedx+json, application/vnd.in-toto+json, says it everywhere "
        "and has one layer")
    # A variant spelling of an SBOM type, which a lenient scanner reads, is not left alone.
    for variant in ("application/spdx+json; charset=utf-8", "text/spdx",
                    "application/vnd.cyclonedx+xml"):
        listing([{**entries[0], "artifactType": variant}, *entries[1:]])
        with pytest.raises(OciBuildError) as err:
            _verify(transport, name, public)
        assert f"(listed, artifactType, config, layers: {variant}, application/spdx+json" \
            in str(err.value)
    # The size the listing gives must be the manifest's.
    listing([{**entries[0], "size": entries[0]["size"] + 1}, *entries[1:]])
    with pytest.raises(OciBuildError) as err:
        _verify(transport, name, public)
    assert str(err.value).endswith(f"{entries[0]['size']} bytes, but listed as "
                                   f"{entries[0]['size'] + 1}")
    # Listed twice: checked once.
    listing(entries + entries)
    assert len(_verify(transport, name, public).referrers) == 3
    listing(entries)
    assert len(_verify(transport, name, public).referrers) == 3
