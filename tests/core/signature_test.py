"""Signatures as cosign makes them, pushed to and read back from the real distribution
registry on loopback; each signature checked by two independent implementations
(`cryptography`'s ECDSA directly, and `openssl dgst -sha256 -verify`)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ocibuild import cosign
from ocibuild.errors import OciBuildError
from ocibuild.layout import OciLayout, resolve_image
from ocibuild.layout.referrers import attach
from ocibuild.protocol.referrers import ReferrerBlob, ReferrersRequest
from ocibuild.protocol.sign import KEY_ENV, SignRequest, SignResult, VerifyRequest, VerifyResult
from ocibuild.reference import parse_reference
from ocibuild.registry.pull import fetch_manifest
from ocibuild.registry.push import push_image, push_index
from ocibuild.registry.signatures import required_types, sign_and_push, verify
from ocibuild.registry.transport import Transport
from tests.core import attested
from tests.core.attested import attach_documents
from tests.core.layouts import add_image, named, write_layout
from tests.core.registry_push_index_test import _index_layout
from tests.fixtures.registry import Registry, registry  # noqa: F401 (a fixture)

from .conftest import run_ocibuild


def _openssl_key(tmp_path: Path, name: str = "key") -> Path:
    """A P-256 key as users make one, by openssl, not by the code under test."""
    key = tmp_path / f"{name}.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                    "-out", str(key)], check=True)
    subprocess.run(["openssl", "ec", "-in", str(key), "-pubout", "-out",
                    str(tmp_path / f"{name}.pub")], check=True, capture_output=True)
    return key


def _openssl_verifies(tmp_path: Path, public: Path, payload: bytes, signature_b64: str) -> bool:
    (tmp_path / "payload").write_bytes(payload)
    (tmp_path / "sig.der").write_bytes(base64.b64decode(signature_b64))
    done = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(public), "-signature",
                           str(tmp_path / "sig.der"), str(tmp_path / "payload")],
                          capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == "Verified OK"


def _attach_documents(layout_dir: Path, tmp_path: Path, digest: str) -> Path:
    """An SPDX and a CycloneDX SBOM and a provenance statement of `digest`, as referrers."""
    return attach_documents(layout_dir, tmp_path, digest, attested.documents(digest))


def _push_image(reg: Registry, tmp_path: Path, referrers: bool = True) -> str:
    return _push_layout(reg, tmp_path, referrers)[0]


def _push_layout(reg: Registry, tmp_path: Path, referrers: bool = True) -> tuple:
    """(the image's digest, the layout pushed, with its referrers)."""
    layout_dir = tmp_path / "layout"
    image = add_image(layout_dir, "app")
    write_layout(layout_dir, [named(image, "latest")])
    if referrers:
        layout_dir = _attach_documents(layout_dir, tmp_path, image.digest)
    layout = OciLayout(layout_dir)
    push_image(layout, resolve_image(layout, ref_name="latest"),
               parse_reference(f"{reg.host}/team/app:1.0"), Transport(reg.host, insecure=True),
               ["1.0"])
    return image.digest, layout_dir


def test_the_payload_is_cosigns_byte_for_byte() -> None:
    digest = "sha256:" + "ab" * 32
    assert cosign.payload("registry.example/team/app", digest) == (
        b'{"critical":{"identity":{"docker-reference":"registry.example/team/app"},'
        b'"image":{"docker-manifest-digest":"sha256:' + b"ab" * 32 + b'"},'
        b'"type":"cosign container image signature"},"optional":null}')
    assert cosign.signature_tag(digest) == "sha256-" + "ab" * 32 + ".sig"


def test_sign_push_read_back_and_verify_independently(registry: Registry,  # noqa: F811
                                                      tmp_path: Path) -> None:
    digest, layout_dir = _push_layout(registry, tmp_path)
    key = _openssl_key(tmp_path)
    transport = Transport(registry.host, insecure=True)
    request = SignRequest(f"{registry.host}/team/app", digest, key_file=str(key), insecure=True,
                          layout=str(layout_dir))
    result = sign_and_push(request, transport, str(tmp_path / "work"))
    assert result.written and result.reference == f"{registry.host}/team/app:" \
        f"sha256-{digest[7:]}.sig"

    # Read back with plain registry reads: the .sig manifest, its one layer, the payload.
    dest = parse_reference(f"{registry.host}/team/app")
    sig = fetch_manifest(transport, dest, f"sha256-{digest[7:]}.sig")
    assert sig.digest == result.manifest_digest
    manifest = json.loads(sig.content)
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    signature = layer["annotations"]["dev.cosignproject.cosign/signature"]
    response = transport.request("GET", f"/v2/team/app/blobs/{layer['digest']}",
                                 scope="repository:team/app:pull", stream=True)
    payload = transport.read(response, 1 << 20, "GET", layer["digest"])
    assert payload == cosign.payload(f"{registry.host}/team/app", digest)
    assert json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == digest

    # 1. cryptography's ECDSA, with the public key openssl derived.
    public = serialization.load_pem_public_key((tmp_path / "key.pub").read_bytes())
    public.verify(base64.b64decode(signature), payload, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(base64.b64decode(signature), payload + b" ", ec.ECDSA(hashes.SHA256()))
    # 2. openssl.
    assert _openssl_verifies(tmp_path, tmp_path / "key.pub", payload, signature)
    other_digest = payload.replace(digest.encode(), b"sha256:" + b"0" * 64)
    assert not _openssl_verifies(tmp_path, tmp_path / "key.pub", other_digest,
                                 signature)
    assert result.public_key.encode() == (tmp_path / "key.pub").read_bytes()

    # Deterministic: signing again writes nothing new.
    again = sign_and_push(request, transport, str(tmp_path / "work2"))
    assert (again.written, again.signature, again.manifest_digest) == (
        False, result.signature, result.manifest_digest)
    # A second key's signature is added beside the first, as cosign does.
    other = _openssl_key(tmp_path, "other")
    second = sign_and_push(SignRequest(request.to, digest, str(other), insecure=True),
                           transport, str(tmp_path / "work3"))
    assert second.attestations == ()  # no layout: the signature only
    layers = json.loads(fetch_manifest(transport, dest, f"sha256-{digest[7:]}.sig").content)[
        "layers"]
    assert [d["annotations"]["dev.cosignproject.cosign/signature"] for d in layers] == [
        result.signature, second.signature]

    verified = verify(VerifyRequest(f"{registry.host}/team/app:1.0", str(tmp_path / "key.pub"),
                                    required_types(True, True), insecure=True), transport)
    assert (verified.digest, verified.signatures) == (digest, 1)
    assert sorted(r.artifact_type for r in verified.referrers) == [
        "application/spdx+json", "application/vnd.cyclonedx+json",
        "application/vnd.in-toto+json"]
    assert all(r.subject == digest for r in verified.referrers)
    assert sorted(a.predicate_type for a in verified.attestations) == [
        "https://cyclonedx.org/bom", "https://slsa.dev/provenance/v1",
        "https://spdx.dev/Document"]


def test_verify_fails_clearly(registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    digest = _push_image(registry, tmp_path, referrers=False)
    transport = Transport(registry.host, insecure=True)
    name = f"{registry.host}/team/app"
    key, wrong = _openssl_key(tmp_path), _openssl_key(tmp_path, "wrong")

    with pytest.raises(OciBuildError) as err:
        verify(VerifyRequest(f"{name}:1.0", str(tmp_path / "key.pub"), insecure=True), transport)
    assert str(err.value) == (f"{name}@{digest} is not signed: the registry has no "
                              f"{name}:sha256-{digest[7:]}.sig")

    sign_and_push(SignRequest(name, digest, str(key), insecure=True), transport,
                  str(tmp_path / "w"))
    with pytest.raises(OciBuildError) as err:
        verify(VerifyRequest(f"{name}:1.0", str(tmp_path / "wrong.pub"), insecure=True),
               transport)
    assert f"{name}@{digest}: no signature verifies with '{tmp_path}/wrong.pub'" in str(err.value)
    assert wrong.exists()

    # Signed, but without the SBOMs the target says it has.
    with pytest.raises(OciBuildError) as err:
        verify(VerifyRequest(f"{name}:1.0", str(tmp_path / "key.pub"),
                             required_types(True, True), insecure=True), transport)
    assert str(err.value) == (
        f"{name}@{digest} has no attestation of application/spdx+json, "
        "application/vnd.cyclonedx+json, application/vnd.in-toto+json signed with "
        f"'{tmp_path}/key.pub'; publish it again with the signing key")

    # A tampered manifest under the tag: its digest has no signature.
    manifest = json.loads(fetch_manifest(transport, parse_reference(f"{name}:1.0"), "1.0").content)
    manifest["annotations"] = {"evil": "yes"}
    tampered = json.dumps(manifest).encode()
    transport.request("PUT", "/v2/team/app/manifests/1.0", scope="repository:team/app:pull,push",
                      expected=(201,), data=tampered,
                      headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    bad = "sha256:" + hashlib.sha256(tampered).hexdigest()
    with pytest.raises(OciBuildError) as err:
        verify(VerifyRequest(f"{name}:1.0", str(tmp_path / "key.pub"), insecure=True), transport)
    assert str(err.value) == (f"{name}@{bad} is not signed: the registry has no "
                              f"{name}:sha256-{bad[7:]}.sig")

    # A valid signature of another image, copied to this digest's .sig tag, proves nothing.
    sig = fetch_manifest(transport, parse_reference(name), f"sha256-{digest[7:]}.sig").content
    transport.request("PUT", f"/v2/team/app/manifests/sha256-{bad[7:]}.sig",
                      scope="repository:team/app:pull,push", expected=(201,), data=sig,
                      headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    with pytest.raises(OciBuildError) as err:
        verify(VerifyRequest(f"{name}:1.0", str(tmp_path / "key.pub"), insecure=True), transport)
    assert f"the signature is of {digest}, not of {bad}" in str(err.value)


@pytest.mark.parametrize("pem, message", [
    (b"not a key", "not a PEM private key (ValueError); give an ECDSA P-256 key"),
    ("rsa", "the key must be ECDSA P-256 (prime256v1), as cosign's are; this one is "
            "RSAPrivateKey"),
    ("p384", "the key must be ECDSA P-256 (prime256v1), as cosign's are; this one is "
             "ECDSA secp384r1"),
    ("encrypted", "the key is encrypted; give an unencrypted PEM key"),
])
def test_bad_keys_are_clear_errors(tmp_path: Path, pem, message: str) -> None:
    path = tmp_path / "k.pem"
    if pem == "rsa":
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", str(path)], check=True,
                       capture_output=True)
    elif pem == "p384":
        subprocess.run(["openssl", "ecparam", "-name", "secp384r1", "-genkey", "-noout",
                        "-out", str(path)], check=True)
    elif pem == "encrypted":
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-aes256", "-pass", "pass:pw", "-out",
                        str(path)], check=True, capture_output=True)
    else:
        path.write_bytes(pem)
    with pytest.raises(OciBuildError) as err:
        cosign.load_private_key(path.read_bytes(), "[oci].signing_key 'k.pem'")
    assert str(err.value).startswith("[oci].signing_key 'k.pem': " + message)


def test_ocibuild_run_sign_takes_the_key_from_its_environment(
        registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    digest = _push_image(registry, tmp_path, referrers=False)
    key = _openssl_key(tmp_path)
    request = SignRequest(f"{registry.host}/team/app", digest, insecure=True)
    (tmp_path / "r.json").write_bytes(request.dumps())
    assert key.read_text() not in request.dumps().decode()
    proc = run_ocibuild("run", "--request", "r.json", "--out-dir", "out", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == (
        f"ocibuild: error: no signing key: ${KEY_ENV} is empty and the request names no key "
        "file\n")
    proc = run_ocibuild("run", "--request", "r.json", "--out-dir", "out", cwd=tmp_path,
                        extra_env={KEY_ENV: key.read_text()})
    assert proc.returncode == 0, proc.stderr
    result = SignResult.from_json(json.loads(proc.stdout), "the result")
    assert _openssl_verifies(tmp_path, tmp_path / "key.pub",
                             cosign.payload(request.to, digest), result.signature)
    assert key.read_text() not in proc.stdout + proc.stderr

    (tmp_path / "v.json").write_bytes(VerifyRequest(
        f"{registry.host}/team/app@{digest}", str(tmp_path / "key.pub"), insecure=True).dumps())
    proc = run_ocibuild("run", "--request", "v.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert VerifyResult.from_json(json.loads(proc.stdout), "r").signatures == 1


def test_an_index_is_signed_by_its_digest_and_each_platform_has_its_referrers(
        registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    """What `platforms` publishes: the signature is of the index's digest (what the tag
    names, and what `cosign verify` checks), the referrers hang from each platform's image."""
    layout, index = _index_layout(tmp_path)
    children = [c.image.manifest_descriptor.digest for c in index.manifests]
    merged = Path(layout.path)
    for i, child in enumerate(children):
        merged = _attach_documents(merged, tmp_path / f"attach{i}", child)
    name = f"{registry.host}/team/multi"
    transport = Transport(registry.host, insecure=True)
    push_index(OciLayout(merged), index, parse_reference(f"{name}:1.0"), transport, ["1.0"])
    key = _openssl_key(tmp_path)
    signed = sign_and_push(SignRequest(name, index.descriptor.digest, str(key), insecure=True,
                                       layout=str(merged)),
                           transport, str(tmp_path / "w"))
    # Each platform's documents are attested to that platform's manifest.
    assert sorted(a.reference for a in signed.attestations) == sorted(
        f"{name}:sha256-{child[7:]}.att" for child in children)
    assert signed.reference == f"{name}:sha256-{index.descriptor.digest[7:]}.sig"
    verified = verify(VerifyRequest(f"{name}:1.0", str(tmp_path / "key.pub"),
                                    required_types(True, True), insecure=True), transport)
    assert (verified.digest, verified.signatures) == (index.descriptor.digest, 1)
    assert sorted((r.subject, r.artifact_type) for r in verified.referrers) == sorted(
        (child, t) for child in children for t in required_types(True, True))

    # A provenance moved onto another platform's image is refused: it names its own.
    wrong = _attach_documents(Path(layout.path), tmp_path / "wrong", children[0])
    statement = json.loads((tmp_path / "attach0/doc2.json").read_text())
    assert statement["subject"][0]["digest"]["sha256"] == children[0][7:]
    other = tmp_path / "other"
    other.mkdir()
    (other / "p.json").write_text(json.dumps(statement))
    attach(ReferrersRequest(str(wrong), (ReferrerBlob(
        str(other / "p.json"), "application/vnd.in-toto+json", children[1], "moved"),)),
        str(other / "out"))
    shutil.copytree(other / "out", wrong, dirs_exist_ok=True)
    push_index(OciLayout(wrong), index, parse_reference(f"{name}:1.0"), transport, ["1.0"])
    with pytest.raises(OciBuildError) as err:
        verify(VerifyRequest(f"{name}:1.0", str(tmp_path / "key.pub"), insecure=True),
               transport)
    assert f"the statement is about {{'sha256': '{children[0][7:]}'}}, not about " \
        f"{children[1]}" in str(err.value)
