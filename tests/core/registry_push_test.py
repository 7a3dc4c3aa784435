"""Push to the real distribution registry on loopback, checked by skopeo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocibuild.layout import OciLayout, resolve_image
from ocibuild.reference import parse_reference
from ocibuild.registry.errors import RegistryError
from ocibuild.registry.push import push_image
from ocibuild.registry.transport import Credentials, Transport
from tests.core.layouts import add_image, named, write_layout
from tests.fixtures.registry import (  # noqa: F401 (fixtures)
    Registry,
    registry,
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
        f"HEAD https://{tls_registry.host}/v2/team/app/blobs/{image.layers[0].digest}: 401: ")
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
