"""Push to the real distribution registry on loopback, checked by skopeo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocibuild import canonical_json, mediatypes
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.layer.builder import build_layer
from ocibuild.layer.entries import collect_entries
from ocibuild.layout import OciLayout, resolve_image
from ocibuild.reference import parse_reference
from ocibuild.registry.errors import RegistryError
from ocibuild.registry.push import push_image
from ocibuild.registry.transport import Credentials, Transport
from tests.core.layouts import add_image, named, write_layout
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.registry import (  # noqa: F401 (fixtures)
    Registry,
    registry,
    start_registry,
    tls_registry,
    token_registry,
)
from tests.fixtures.tools import require, run


def _layout(tmp_path: Path) -> OciLayout:
    image = add_image(tmp_path / "layout", "pushed")
    return write_layout(tmp_path / "layout", [named(image, "latest")])


def _raw_manifest(reg: Registry, ref: str) -> bytes:
    argv = [require("skopeo"), "inspect", "--raw", *reg.skopeo_src_flags(), f"docker://{ref}"]
    return subprocess.run(argv, capture_output=True, check=True).stdout


def _transport(reg: Registry, password: str = None) -> Transport:
    creds = Credentials(reg.username, password or reg.password) if reg.username else None
    return Transport(reg.host, insecure=not reg.tls,
                     ca_cert=str(reg.ca_cert) if reg.ca_cert else None, credentials=creds)


def test_push_plain_http_then_repush_uploads_nothing(registry: Registry, tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    image = resolve_image(layout, ref_name="latest")
    dest = parse_reference(f"{registry.host}/team/app:1.0")
    first = push_image(layout, image, dest, _transport(registry), ["1.0"])
    assert first.uploaded == [image.layers[0].digest, image.config_descriptor.digest]
    assert first.reference == f"{registry.host}/team/app@{image.manifest_descriptor.digest}"
    with open(layout.blob_path(image.manifest_descriptor.digest), "rb") as f:
        assert _raw_manifest(registry, f"{registry.host}/team/app:1.0") == f.read()
    again = push_image(layout, image, dest, _transport(registry), ["1.0"])
    assert again.uploaded == []


def test_push_tls_basic_auth(tls_registry: Registry, tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    image = resolve_image(layout, ref_name="latest")
    dest = parse_reference(f"{tls_registry.host}/team/app:latest")
    push_image(layout, image, dest, _transport(tls_registry), ["latest"])
    info = json.loads(run([require("skopeo"), "inspect", *tls_registry.skopeo_src_flags(),
                           f"docker://{tls_registry.host}/team/app:latest"]).stdout)
    assert info["Digest"] == image.manifest_descriptor.digest


def test_wrong_password_is_a_clear_error(tls_registry: Registry, tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    image = resolve_image(layout, ref_name="latest")
    dest = parse_reference(f"{tls_registry.host}/team/app:latest")
    with pytest.raises(RegistryError) as err:
        push_image(layout, image, dest, _transport(tls_registry, password="wrong"), ["latest"])
    assert str(err.value).startswith(
        f"HEAD https://{tls_registry.host}/v2/team/app/manifests/{image.manifest_descriptor.digest}: 401: ")
    assert "wrong" not in str(err.value)


def test_untrusted_certificate_is_a_clear_error(tls_registry: Registry, tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    image = resolve_image(layout, ref_name="latest")
    transport = Transport(tls_registry.host, credentials=Credentials("ci", "x"))
    with pytest.raises(RegistryError) as err:
        push_image(layout, image, parse_reference(f"{tls_registry.host}/a:b"), transport, ["b"])
    assert "TLS verification failed" in str(err.value)


def test_cli_push(registry: Registry, tmp_path: Path) -> None:
    _layout(tmp_path)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "ocibuild", "push", "--layout", str(tmp_path / "layout"),
         "--ref-name", "latest", "--to", f"{registry.host}/cli/app:v1", "--insecure"],
        capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["reference"].startswith(f"{registry.host}/cli/app@sha256:")
    assert len(out["uploaded"]) == 2


def test_push_with_bearer_token(token_registry: Registry, tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    image = resolve_image(layout, ref_name="latest")
    dest = parse_reference(f"{token_registry.host}/team/app:v2")
    result = push_image(layout, image, dest, _transport(token_registry), ["v2"])
    assert result.manifest_digest == image.manifest_descriptor.digest
    info = json.loads(run([require("skopeo"), "inspect", "--tls-verify=false",
                           f"--creds={token_registry.username}:{token_registry.password}",
                           f"docker://{token_registry.host}/team/app:v2"]).stdout)
    assert info["Digest"] == image.manifest_descriptor.digest


def test_anonymous_token_cannot_push(token_registry: Registry, tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    image = resolve_image(layout, ref_name="latest")
    transport = Transport(token_registry.host, insecure=True)
    with pytest.raises(RegistryError) as err:
        push_image(layout, image, parse_reference(f"{token_registry.host}/team/app:v"),
                   transport, ["v"])
    # The anonymous token holds `pull` only: the registry refuses the upload.
    assert ": 401: UNAUTHORIZED" in str(err.value)


def test_bad_password_at_the_token_realm(token_registry: Registry, tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    image = resolve_image(layout, ref_name="latest")
    with pytest.raises(RegistryError) as err:
        push_image(layout, image, parse_reference(f"{token_registry.host}/team/app:v"),
                   _transport(token_registry, password="nope"), ["v"])
    assert str(err.value).startswith("GET http://127.0.0.1:")
    assert "/token: 401: " in str(err.value)
    assert "nope" not in str(err.value)


def _derived_layout(tmp_path: Path, noise: int = 0) -> tuple:
    """A "base" image and an "app" image on top of it (base layer + one more), one layout.

    `noise` bytes of random data in the app layer make it big and incompressible."""
    layout_dir = tmp_path / "derived"
    base = add_image(layout_dir, "base")
    layout = OciLayout(layout_dir)
    base_manifest = layout.read_blob_json(base.digest)
    base_config = layout.read_blob_json(base_manifest["config"]["digest"])
    src = tmp_path / "app-src"
    src.mkdir()
    (src / "noise.bin").write_bytes(os.urandom(noise))
    blob = build_layer(collect_entries([(str(src / "noise.bin"), "app/noise.bin")]), str(layout_dir))
    config = {**base_config, "rootfs": {"type": "layers",
                                        "diff_ids": [*base_config["rootfs"]["diff_ids"], blob.diff_id]}}
    config_desc = layout.write_blob_bytes(canonical_json.dumps(config), mediatypes.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                "config": config_desc.to_json(),
                "layers": [*base_manifest["layers"],
                           Descriptor(blob.media_type, blob.digest, blob.size).to_json()]}
    app = layout.write_blob_bytes(canonical_json.dumps(manifest), mediatypes.OCI_MANIFEST)
    write_layout(layout_dir, [named(base, "base"), named(app, "app")])
    return layout, base_manifest["layers"][0]["digest"], blob.digest


def _skopeo_copy_back(reg: Registry, ref: str, tmp_path: Path) -> str:
    """Pull the pushed image with skopeo into a layout: it verifies every blob."""
    dest = tmp_path / "copied"
    run([require("skopeo"), "copy", *reg.skopeo_src_flags(), f"docker://{ref}", f"oci:{dest}:x"])
    return json.loads((dest / "index.json").read_text())["manifests"][0]["digest"]


def test_cross_repo_mount_from_the_base_repository(token_registry: Registry,
                                                   tmp_path: Path) -> None:
    layout, base_layer, app_layer = _derived_layout(tmp_path)
    transport = _transport(token_registry)
    push_image(layout, resolve_image(layout, ref_name="base"),
               parse_reference(f"{token_registry.host}/base/img"), transport, ["1"])
    app = resolve_image(layout, ref_name="app")
    result = push_image(layout, app, parse_reference(f"{token_registry.host}/team/app"),
                        _transport(token_registry), ["1"], mount_from="base/img")
    assert result.mounted == [base_layer]
    assert sorted(result.uploaded) == sorted([app_layer, app.config_descriptor.digest])
    # The token asked for pull on the source repository too (the scope was widened).
    server_scopes = [scope for _, scope in token_registry.token.requests]
    assert "repository:team/app:pull,push repository:base/img:pull" in server_scopes


def test_mount_from_a_repository_without_the_blob_falls_back_to_upload(
        registry: Registry, tmp_path: Path) -> None:
    layout, base_layer, app_layer = _derived_layout(tmp_path)
    app = resolve_image(layout, ref_name="app")
    result = push_image(layout, app, parse_reference(f"{registry.host}/team/app"),
                        _transport(registry), ["1"], mount_from="does/not-exist")
    assert result.mounted == []
    assert len(result.uploaded) == 3
    assert _skopeo_copy_back(registry, f"{registry.host}/team/app:1", tmp_path) == \
        app.manifest_descriptor.digest


def test_chunked_upload(registry: Registry, tmp_path: Path) -> None:
    layout, _, app_layer = _derived_layout(tmp_path, noise=300_000)
    app = resolve_image(layout, ref_name="app")
    with FaultProxy(registry.host) as proxy:
        result = push_image(layout, app, parse_reference(f"{proxy.host}/team/app"),
                            Transport(proxy.host, insecure=True), ["1"], chunk_size=64 * 1024)
    assert app_layer in result.uploaded
    assert proxy.count("PATCH") == 5  # 300 kB of noise (+ tar and gzip framing) in 64 KiB chunks
    assert _skopeo_copy_back(registry, f"{registry.host}/team/app:1", tmp_path) == \
        app.manifest_descriptor.digest


def test_429_and_503_are_retried_honouring_retry_after(registry: Registry, tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    image = resolve_image(layout, ref_name="latest")
    waits: list = []
    with FaultProxy(registry.host) as proxy:
        proxy.fail("PUT", "/blobs/uploads/", 503, times=2)
        proxy.fail("HEAD", "/manifests/", 429, times=1, retry_after="3")
        transport = Transport(proxy.host, insecure=True, sleep=waits.append)
        result = push_image(layout, image, parse_reference(f"{proxy.host}/team/app"), transport,
                            ["1.0"], jobs=1)
    assert transport.retries == 3
    assert waits[0] == 3.0 and sorted(waits[1:]) == [0.5, 1.0]
    assert len(result.uploaded) == 2
    assert _skopeo_copy_back(registry, f"{registry.host}/team/app:1.0", tmp_path) == \
        image.manifest_descriptor.digest


def test_persistent_503_gives_up_with_the_registry_message(registry: Registry,
                                                           tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    image = resolve_image(layout, ref_name="latest")
    with FaultProxy(registry.host) as proxy:
        proxy.fail("POST", "/blobs/uploads/", 503, times=100)
        transport = Transport(proxy.host, insecure=True, sleep=lambda s: None)
        with pytest.raises(RegistryError, match=r"^POST http://127.0.0.1:\d+/v2/team/app/blobs/"
                                                r"uploads/: 503: TOOMANYREQUESTS: injected$"):
            push_image(layout, image, parse_reference(f"{proxy.host}/team/app"), transport, ["1"],
                       jobs=1)
        # 5 tries per request, and the upload restarted twice: then it gives up.
        assert proxy.count("POST") == 15


def test_registry_stopped_mid_push_then_a_rerun_completes(tmp_path: Path) -> None:
    layout, _, _ = _derived_layout(tmp_path, noise=100_000)
    app = resolve_image(layout, ref_name="app")
    root = tmp_path / "registry"
    with start_registry(root) as reg:
        with FaultProxy(reg.host) as proxy:
            stopped = []

            def stop_at_second_upload(method: str, path: str) -> None:
                if method == "PUT" and "/blobs/uploads/" in path and proxy.count("PUT") >= 1:
                    if not stopped:
                        stopped.append(path)
                        reg.process.terminate()
                        reg.process.wait()

            proxy.on_request = stop_at_second_upload
            transport = Transport(proxy.host, insecure=True, sleep=lambda s: None, attempts=2)
            with pytest.raises(RegistryError):
                push_image(layout, app, parse_reference(f"{proxy.host}/team/app"), transport,
                           ["1"], jobs=1)
        assert stopped
    with start_registry(root) as again:  # same storage, new process (and port)
        result = push_image(layout, app, parse_reference(f"{again.host}/team/app"),
                            _transport(again), ["1"])
        assert len(result.uploaded) == 2  # the blob that made it before the stop is kept
        assert _skopeo_copy_back(again, f"{again.host}/team/app:1", tmp_path) == \
            app.manifest_descriptor.digest


def test_republish_does_no_blob_work(registry: Registry, tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    image = resolve_image(layout, ref_name="latest")
    with FaultProxy(registry.host) as proxy:
        dest = parse_reference(f"{proxy.host}/team/app")
        push_image(layout, image, dest, Transport(proxy.host, insecure=True), ["1.0", "latest"])
        # HEAD the manifest, HEAD + POST + PUT per blob, PUT the manifest by digest and per tag.
        first = sorted((m, p.split("/")[-2] if "/manifests/" in p else "blobs")
                       for m, p, _ in proxy.requests)
        assert first == sorted([("HEAD", "manifests"), *[("HEAD", "blobs")] * 2,
                                *[("POST", "blobs")] * 2, *[("PUT", "blobs")] * 2,
                                *[("PUT", "manifests")] * 3])
        proxy.requests.clear()
        again = push_image(layout, image, dest, Transport(proxy.host, insecure=True),
                           ["1.0", "latest"])
    assert (again.uploaded, again.mounted, again.tags_written) == ([], [], [])
    # One HEAD for the manifest by digest, one per tag: nothing about blobs.
    assert [(m, p.split("/")[-2]) for m, p, _ in proxy.requests] == [("HEAD", "manifests")] * 3


@pytest.mark.parametrize("jobs, chunk_size", [(1, 0), (0, 1024), (4, -1)])
def test_jobs_and_chunk_size_below_one_are_refused(tmp_path: Path, jobs: int,
                                                   chunk_size: int) -> None:
    layout = _layout(tmp_path)
    image = resolve_image(layout, ref_name="latest")
    # Port 1: nothing listens; the check comes before any request.
    transport = Transport("127.0.0.1:1", insecure=True, attempts=1)
    with pytest.raises(OciBuildError, match=rf"^push to 127.0.0.1:1/app: jobs \({jobs}\) and "
                                            rf"chunk size \({chunk_size} bytes\) must be at "
                                            r"least 1; e.g. --jobs 4 --chunk-size 67108864$"):
        push_image(layout, image, parse_reference("127.0.0.1:1/app"), transport, ["1"],
                   jobs=jobs, chunk_size=chunk_size)
