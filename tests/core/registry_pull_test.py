"""Pull from the real distribution registry on loopback: indexes, platforms, verification, auth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.layout import OciLayout
from ocibuild.platform import parse_platform
from ocibuild.reference import parse_reference
from ocibuild.registry.credentials import Credentials
from ocibuild.registry.errors import RegistryError
from ocibuild.registry.pull import fetch_manifest, image_manifest, pull_to_layout
from ocibuild.registry.push import push_image
from ocibuild.registry.transport import Transport
from tests.fixtures.fault_proxy import BlobStore, FaultProxy
from tests.fixtures.image_checks import umoci_unpack
from tests.fixtures.registry_images import push_multi_platform
from tests.fixtures.registry import (  # noqa: F401 (fixtures)
    Registry,
    registry,
    token_registry,
)
from tests.fixtures.token_server import IDENTITY_TOKEN, READER


def _transport(reg: Registry, creds: Credentials = None) -> Transport:
    return Transport(reg.host, insecure=not reg.tls, credentials=creds, sleep=lambda s: None)


def _blob_data_path(reg_root: Path, digest: str) -> Path:
    hex_ = digest.split(":", 1)[1]
    return reg_root / "storage/docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


def test_pull_index_by_digest_selects_the_platform(registry: Registry, tmp_path: Path) -> None:
    digests = push_multi_platform(registry, tmp_path, "base/multi")
    ref = parse_reference(f"{registry.host}/base/multi@{digests['index']}")
    transport = _transport(registry)
    chain = image_manifest(transport, ref, digests["index"], parse_platform("linux/arm64"))
    assert [m.digest for m in chain] == [digests["index"], digests["arm64"]]
    image = pull_to_layout(transport, ref, digests["index"], parse_platform("linux/arm64"),
                           str(tmp_path / "pulled"), ref_name="base")
    assert image.manifest_descriptor.digest == digests["arm64"]
    assert image.config["architecture"] == "arm64"
    rootfs = umoci_unpack(tmp_path / "pulled", "base", tmp_path / "bundle")
    assert (rootfs / "etc/marker").read_text().strip() == "arm64"
    # A tag resolves to what it names now.
    assert fetch_manifest(transport, ref, "1.0").digest == digests["index"]


def test_platform_missing_from_the_index(registry: Registry, tmp_path: Path) -> None:
    digests = push_multi_platform(registry, tmp_path, "base/multi")
    ref = parse_reference(f"{registry.host}/base/multi")
    with pytest.raises(OciBuildError, match=r"no image for platform linux/s390x; it has: "
                                            r"linux/amd64, linux/arm64/v8"):
        image_manifest(_transport(registry), ref, digests["index"], parse_platform("linux/s390x"))


def test_missing_tag_and_digest_are_clear_errors(registry: Registry, tmp_path: Path) -> None:
    push_multi_platform(registry, tmp_path, "base/multi")
    ref = parse_reference(f"{registry.host}/base/multi")
    with pytest.raises(RegistryError, match=r"GET http://127.0.0.1:\d+/v2/base/multi/manifests/"
                                            r"nope: 404: MANIFEST_UNKNOWN"):
        fetch_manifest(_transport(registry), ref, "nope")
    absent = "sha256:" + "0" * 64
    with pytest.raises(RegistryError, match=": 404: "):
        fetch_manifest(_transport(registry), ref, absent)


def test_corrupt_blobs_in_the_registry_are_detected(registry: Registry, tmp_path: Path) -> None:
    digests = push_multi_platform(registry, tmp_path, "base/multi")
    ref = parse_reference(f"{registry.host}/base/multi")
    root = registry.log.parent
    # The registry serves what its storage holds, unverified: we must notice.
    manifest = json.loads(_blob_data_path(root, digests["amd64"]).read_bytes())
    layer = manifest["layers"][0]["digest"]
    data = _blob_data_path(root, layer)
    corrupt = bytearray(data.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    data.write_bytes(bytes(corrupt))
    with pytest.raises(OciBuildError, match=f"the blob has digest sha256:[0-9a-f]{{64}} and size "
                                            f"\\d+, not {layer}"):
        pull_to_layout(_transport(registry), ref, digests["amd64"], parse_platform("linux/amd64"),
                       str(tmp_path / "pulled"))
    # No half-written layout: neither the out dir nor a temp beside it is left.
    assert not (tmp_path / "pulled").exists()
    assert not any(p.name.startswith(".partial") for p in tmp_path.rglob("*"))
    # A folder the user filled is theirs: refused before any download, left as it was.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(OciBuildError, match="mine"):
        pull_to_layout(_transport(registry), ref, digests["arm64"], parse_platform("linux/arm64"),
                       str(mine))
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    index_data = _blob_data_path(root, digests["index"])
    index_data.write_bytes(index_data.read_bytes().replace(b'"arm64"', b'"arm65"'))
    with pytest.raises(OciBuildError, match="whose digest is sha256:[0-9a-f]{64}, not the one "
                                            "asked for"):
        fetch_manifest(_transport(registry), ref, digests["index"])


def test_token_auth_anonymous_pull_and_refused_push(token_registry: Registry,
                                                     tmp_path: Path) -> None:
    owner = Credentials(token_registry.username, token_registry.password)
    digests = push_multi_platform(token_registry, tmp_path, "base/multi", creds=owner)
    ref = parse_reference(f"{token_registry.host}/base/multi")
    anonymous = _transport(token_registry)
    pulled = pull_to_layout(anonymous, ref, digests["index"], parse_platform("linux/amd64"),
                            str(tmp_path / "anon"))
    assert pulled.manifest_descriptor.digest == digests["amd64"]
    layout = OciLayout(str(tmp_path / "anon"))
    reader = _transport(token_registry, Credentials(*READER))
    with pytest.raises(RegistryError, match=r"POST .*/v2/team/app/blobs/uploads/: 401: "
                                            r"UNAUTHORIZED.*user 'reader'"):
        push_image(layout, pulled, parse_reference(f"{token_registry.host}/team/app"), reader, ["x"])
    wrong = _transport(token_registry, Credentials(token_registry.username, "wrong-pw"))
    with pytest.raises(RegistryError, match=r"GET http://127.0.0.1:\d+/token: 401:") as err:
        fetch_manifest(wrong, ref, "1.0")
    assert "wrong-pw" not in str(err.value)


def test_identity_token_is_exchanged_at_the_realm(token_registry: Registry,
                                                   tmp_path: Path) -> None:
    creds = Credentials("", "", identity_token=IDENTITY_TOKEN)
    digests = push_multi_platform(token_registry, tmp_path, "team/idtoken", creds=creds)
    got = fetch_manifest(_transport(token_registry, creds),
                         parse_reference(f"{token_registry.host}/team/idtoken"), "1.0")
    assert got.digest == digests["index"]


def test_authorization_headers_for_another_client(token_registry: Registry) -> None:
    anonymous = _transport(token_registry)
    headers = anonymous.authorization("repository:base/multi:pull")
    assert headers["Authorization"].startswith("Bearer ")
    plain = Transport("127.0.0.1:1", insecure=True, attempts=1)
    with pytest.raises(RegistryError, match="cannot connect"):
        plain.authorization("repository:x:pull")


def test_redirect_to_blob_storage_drops_the_credentials(token_registry: Registry,
                                                         tmp_path: Path) -> None:
    owner = Credentials(token_registry.username, token_registry.password)
    digests = push_multi_platform(token_registry, tmp_path, "base/multi", creds=owner)
    with BlobStore(str(tmp_path / "multi")) as storage, FaultProxy(token_registry.host) as proxy:
        proxy.redirect_blobs(storage.url)
        ref = parse_reference(f"{proxy.host}/base/multi")
        image = pull_to_layout(Transport(proxy.host, insecure=True, credentials=owner), ref,
                               digests["index"], parse_platform("linux/amd64"),
                               str(tmp_path / "pulled"))
    assert image.manifest_descriptor.digest == digests["amd64"]
    assert len(storage.seen) == 2  # config and layer, from the other host
    assert all(authorization is None for _, authorization in storage.seen)
    # The token from the manifest request already covers the blobs: each GET goes out with it
    # and is redirected.
    assert [status for m, p, status in proxy.requests if "/blobs/" in p] == [307, 307]


def test_credentials_are_looked_up_only_when_a_challenge_asks(registry: Registry,
                                                              token_registry: Registry,
                                                              tmp_path: Path) -> None:
    calls = []

    def lookup() -> Credentials:
        calls.append(1)
        return Credentials(token_registry.username, token_registry.password)

    digests = push_multi_platform(registry, tmp_path / "plain", "base/multi")
    fetch_manifest(Transport(registry.host, insecure=True, credentials=lookup),
                   parse_reference(f"{registry.host}/base/multi"), digests["index"])
    assert calls == []  # an open registry: no config file read, no helper run
    owned = push_multi_platform(token_registry, tmp_path / "token", "base/multi",
                                creds=Credentials(token_registry.username, token_registry.password))
    transport = Transport(token_registry.host, insecure=True, credentials=lookup)
    ref = parse_reference(f"{token_registry.host}/base/multi")
    fetch_manifest(transport, ref, owned["index"])
    fetch_manifest(transport, ref, "1.0")
    assert calls == [1]
