"""`./pants publish` to the real registry: plain HTTP, and TLS with basic auth from the env."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.e2e.repo import copy_repo, run_pants
from tests.fixtures.registry import Registry, registry, tls_registry  # noqa: F401 (fixtures)
from tests.fixtures.tools import require

IMAGE = "examples/static-site:image"


def _registries_option(reg: Registry, **extra) -> str:
    entry = {"address": reg.host, "default": True, **extra}
    return f"--oci-registries={{'local': {entry!r}}}"


def _raw(reg: Registry, ref: str) -> bytes:
    argv = [require("skopeo"), "inspect", "--raw", *reg.skopeo_src_flags(), f"docker://{ref}"]
    return subprocess.run(argv, capture_output=True, check=True).stdout


def _blob(reg: Registry, name: str, digest: str) -> bytes:
    repository = name.split("/", 1)[1]
    response = requests.get(f"{reg.url}/v2/{repository}/blobs/{digest}", timeout=30)
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy for the module's tests (and one pantsd); each publishes to its own registry."""
    return copy_repo(tmp_path_factory.mktemp("publish") / "repo", pantsd=True)


def test_publish_plain_http(repo: Path, registry: Registry) -> None:
    option = _registries_option(registry, insecure=True)
    first = run_pants(repo, option, "publish", IMAGE)
    run_pants(repo, "package", IMAGE)
    meta = json.loads((repo / "dist/examples.static-site/image.json").read_text())
    digest = meta["manifest_digest"]
    name = f"{registry.host}/examples/static-site/image"
    for tag in ("latest", "1.0.0"):
        assert f"{name}:{tag} published to {name}@{digest}" in first.stderr + first.stdout
    blob = repo / "dist/examples.static-site/image/blobs/sha256" / digest.split(":")[1]
    assert _raw(registry, f"{name}:1.0.0") == blob.read_bytes()
    # Publishing again uploads no blob: only the manifest is PUT again.
    again = run_pants(repo, option, "publish", IMAGE)
    assert '"uploaded": []' in again.stdout
    _check_sboms_were_pushed(repo, registry, name, digest)


def _push_results(stdout: str) -> list:
    return [json.loads(line) for line in stdout.splitlines()
            if line.startswith("{") and '"mounted"' in line]


def test_images_on_one_base_upload_its_layers_once(repo: Path, registry: Registry) -> None:
    """Two images on the python-base `debian_packages` target, each to its own repository:
    the one published second mounts the base's layers from the first one's repository. An
    image on an `oci_image` base mounts them from the base's repository."""
    option = _registries_option(registry, insecure=True)
    images = ("examples/python-cli:image", "examples/python-cli:image-files")
    first, second = _push_results(run_pants(repo, option, "publish", *images).stdout)
    run_pants(repo, "package", *images, "examples/site-with-config:image")  # dist/*.json
    base_layers = _base_layers(repo, "examples.python-cli/image")
    assert base_layers == _base_layers(repo, "examples.python-cli/image-files")
    assert len(base_layers) >= 10  # the Debian base's layers
    assert base_layers <= set(first["uploaded"]) and not first["mounted"]
    assert set(second["mounted"]) == base_layers
    assert not base_layers & set(second["uploaded"])

    (base,) = _push_results(run_pants(repo, option, "publish", "examples/static-site:image").stdout)
    assert base["uploaded"] and not base["mounted"]
    (derived,) = _push_results(
        run_pants(repo, option, "publish", "examples/site-with-config:image").stdout)
    assert set(derived["mounted"]) == _base_layers(repo, "examples.site-with-config/image") != set()


def _base_layers(repo: Path, image: str) -> set:
    meta = json.loads((repo / f"dist/{image}.json").read_text())
    return {layer["digest"] for layer in meta["layers"] if layer["from_base"]}


def _check_sboms_were_pushed(repo: Path, reg: Registry, name: str, digest: str) -> None:
    """The registry has no referrers API: the `sha256-<hex>` tag lists both SBOMs' and the
    provenance's artifact manifests, each of whose layer is byte for byte the file in dist/."""
    listed = json.loads(_raw(reg, f"{name}:sha256-{digest.split(':')[1]}"))["manifests"]
    assert [m["artifactType"] for m in listed] == [
        "application/spdx+json", "application/vnd.cyclonedx+json", "application/vnd.in-toto+json"]
    for entry, suffix in zip(listed, ("spdx.json", "cdx.json", "provenance.json")):
        manifest = json.loads(_raw(reg, f"{name}@{entry['digest']}"))
        assert manifest["subject"]["digest"] == digest
        (layer,) = manifest["layers"]
        sbom = (repo / f"dist/examples.static-site/image.{suffix}").read_bytes()
        assert _blob(reg, name, layer["digest"]) == sbom


def test_publish_tls_with_credentials_from_env(repo: Path, tls_registry: Registry) -> None:
    (repo / "certs").mkdir()
    shutil.copy(tls_registry.ca_cert, repo / "certs/ca.pem")
    option = _registries_option(tls_registry, ca_cert="certs/ca.pem")
    env = {"OCIBUILD_USERNAME": tls_registry.username, "OCIBUILD_PASSWORD": tls_registry.password}
    result = run_pants(repo, option, "publish", IMAGE, extra_env=env)
    assert f"{tls_registry.host}/examples/static-site/image:latest published" in result.stderr
    assert tls_registry.password not in result.stdout + result.stderr
    assert not any(tls_registry.password.encode() in p.read_bytes()
                   for p in (repo / "dist").rglob("*") if p.is_file())

    bad = run_pants(repo, option, "publish", IMAGE, check=False,
                    extra_env={**env, "OCIBUILD_PASSWORD": "wrong-pw"})
    assert bad.returncode != 0
    assert ": 401: Unauthorized (the registry refused these credentials" in bad.stderr
    assert "wrong-pw" not in bad.stderr + bad.stdout


def _openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require("openssl"), *args], capture_output=True, text=True)


def test_publish_signs_and_oci_verify_checks(repo: Path, registry: Registry,  # noqa: F811
                                            tmp_path: Path) -> None:
    """`[oci].signing_key` from an environment variable: the signature lands under cosign's
    tag, verifies with openssl, each SBOM and the provenance is a cosign attestation whose
    DSSE signature openssl verifies, and `pants oci-verify` accepts it with the right key
    only, reports a provenance attached by someone without the key as unsigned, and refuses
    a tampered tag."""
    keys = repo / "keys"
    keys.mkdir(exist_ok=True)
    for name in ("cosign", "wrong"):
        assert _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout",
                        "-out", str(keys / f"{name}.pem")).returncode == 0
        assert _openssl("ec", "-in", str(keys / f"{name}.pem"), "-pubout",
                        "-out", str(keys / f"{name}.pub")).returncode == 0
    pem = (keys / "cosign.pem").read_text()
    (keys / "cosign.pem").unlink()  # only in the environment, as in CI
    option = _registries_option(registry, insecure=True)
    published = run_pants(repo, option, "--oci-signing-key=env:TEST_COSIGN_KEY", "publish",
                          IMAGE, extra_env={"TEST_COSIGN_KEY": pem})
    digest = (repo / "dist/examples.static-site/image.digest").read_text().strip()
    name = f"{registry.host}/examples/static-site/image"
    sig_tag = f"sha256-{digest.split(':')[1]}.sig"
    assert f"{name}:{sig_tag} published" in published.stderr + published.stdout
    body = "-----BEGIN EC PRIVATE KEY-----"
    assert pem.split(body)[-1].strip()[:40] not in published.stdout + published.stderr
    assert not any(pem.encode()[40:80] in p.read_bytes()
                   for p in (repo / "dist").rglob("*") if p.is_file())

    # Read back and verified by openssl alone.
    (layer,) = json.loads(_raw(registry, f"{name}:{sig_tag}"))["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = _blob(registry, name, layer["digest"])
    assert json.loads(payload)["critical"] == {
        "identity": {"docker-reference": name},
        "image": {"docker-manifest-digest": digest},
        "type": "cosign container image signature"}
    (tmp_path / "payload").write_bytes(payload)
    (tmp_path / "sig").write_bytes(base64.b64decode(
        layer["annotations"]["dev.cosignproject.cosign/signature"]))
    checked = _openssl("dgst", "-sha256", "-verify", str(keys / "cosign.pub"), "-signature",
                       str(tmp_path / "sig"), str(tmp_path / "payload"))
    assert checked.stdout.strip() == "Verified OK", checked.stderr

    # Each SBOM and the provenance, signed as a cosign attestation: openssl checks the DSSE
    # signature over the PAE, and the statement is about exactly this digest.
    att = json.loads(_raw(registry, f"{name}:sha256-{digest.split(':')[1]}.att"))
    assert sorted(layer["annotations"]["predicateType"] for layer in att["layers"]) == [
        "https://cyclonedx.org/bom", "https://slsa.dev/provenance/v1",
        "https://spdx.dev/Document"]
    for layer in att["layers"]:
        assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
        envelope = json.loads(_blob(registry, name, layer["digest"]))
        body = base64.b64decode(envelope["payload"])
        statement = json.loads(body)
        assert statement["subject"] == [{"name": name,
                                         "digest": {"sha256": digest.split(":")[1]}}]
        assert statement["predicateType"] == layer["annotations"]["predicateType"]
        (tmp_path / "pae").write_bytes(b"DSSEv1 28 application/vnd.in-toto+json %d %s"
                                       % (len(body), body))
        (tmp_path / "sig").write_bytes(base64.b64decode(envelope["signatures"][0]["sig"]))
        checked = _openssl("dgst", "-sha256", "-verify", str(keys / "cosign.pub"),
                           "-signature", str(tmp_path / "sig"), str(tmp_path / "pae"))
        assert checked.stdout.strip() == "Verified OK", checked.stderr

    ok = run_pants(repo, option, "oci-verify", "--public-key=keys/cosign.pub", IMAGE)
    assert f"✓ {name}:latest@{digest}: 1 signature(s) verified; 3 attestation(s) verified (" \
           "https://cyclonedx.org/bom, https://slsa.dev/provenance/v1, " \
           "https://spdx.dev/Document); 3 referrer(s) match them" in ok.stdout
    wrong = run_pants(repo, option, "oci-verify", "--public-key=keys/wrong.pub", IMAGE,
                      check=False)
    assert wrong.returncode == 1
    assert f"✕ Error verifying {name}:latest: {name}@{digest}: no signature verifies with " \
           f"'wrong.pub'" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    # Someone without the key attaches a provenance naming another source and builder.
    forged = _forged_provenance(registry, name, digest)
    attacked = run_pants(repo, option, "oci-verify", "--public-key=keys/cosign.pub", IMAGE,
                         check=False)
    assert attacked.returncode == 1
    assert f"✕ Error verifying {name}:latest: {name}@{digest}: unsigned referrer(s) " \
           f"{forged} (application/vnd.in-toto+json): no attestation in " \
           f"{name}:sha256-{digest.split(':')[1]}.att signed with 'cosign.pub' holds what " \
           "they say" in attacked.stderr
    assert "Traceback" not in attacked.stderr

    # Someone moves the tag to another manifest: it is not signed.
    manifest = json.loads(_raw(registry, f"{name}:latest"))
    manifest["annotations"] = {**manifest.get("annotations", {}), "evil": "yes"}
    response = requests.put(f"{registry.url}/v2/examples/static-site/image/manifests/latest",
                            data=json.dumps(manifest).encode(), timeout=30,
                            headers={"Content-Type": manifest["mediaType"]})
    assert response.status_code == 201, response.text
    tampered = run_pants(repo, option, "oci-verify", "--public-key=keys/cosign.pub", IMAGE,
                         check=False)
    assert tampered.returncode == 1
    assert f"is not signed: the registry has no {name}:sha256-" in tampered.stderr


def _forged_provenance(reg: Registry, name: str, digest: str) -> str:
    """A SLSA statement about `digest` from another source and builder, attached by plain
    registry writes (no key) as publish attaches the real one; its manifest's digest."""
    repository = name.split("/", 1)[1]
    statement = json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest.split(":")[1]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {
            "buildType": "https://evil.test/build", "externalParameters": {
                "source": "git+https://evil.test/other"}, "resolvedDependencies": []},
            "runDetails": {"builder": {"id": "https://evil.test/builder"}}}},
        sort_keys=True, separators=(",", ":")).encode()  # canonical, as a careful forger writes

    def put_blob(data: bytes) -> dict:
        started = requests.post(f"{reg.url}/v2/{repository}/blobs/uploads/", timeout=30)
        location = started.headers["Location"]
        location = location if location.startswith("http") else reg.url + location
        blob_digest = "sha256:" + hashlib.sha256(data).hexdigest()
        done = requests.put(location, params={"digest": blob_digest}, data=data, timeout=30)
        assert done.status_code == 201, done.text
        return {"digest": blob_digest, "size": len(data)}

    subject = _raw(reg, f"{name}@{digest}")
    artifact = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.in-toto+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", **put_blob(b"{}")},
        "layers": [{"mediaType": "application/vnd.in-toto+json", **put_blob(statement)}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest, "size": len(subject)}}).encode()
    artifact_digest = "sha256:" + hashlib.sha256(artifact).hexdigest()
    manifest_type = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    assert requests.put(f"{reg.url}/v2/{repository}/manifests/{artifact_digest}",
                        data=artifact, headers=manifest_type, timeout=30).status_code == 201
    tag = f"sha256-{digest.split(':')[1]}"
    index = json.loads(_raw(reg, f"{name}:{tag}"))
    index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "digest": artifact_digest, "size": len(artifact),
                               "artifactType": "application/vnd.in-toto+json"})
    assert requests.put(f"{reg.url}/v2/{repository}/manifests/{tag}",
                        data=json.dumps(index).encode(), timeout=30,
                        headers={"Content-Type": index["mediaType"]}).status_code == 201
    return artifact_digest
