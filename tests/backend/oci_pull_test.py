"""oci_pull bases from the real distribution registry: pins, platforms, auth, verification."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from textwrap import dedent

from pants.engine.addresses import Address
from pants.testutil.rule_runner import RuleRunner

from ocibuild.layout import OciLayout, resolve_image
from ocibuild.registry.credentials import Credentials
from pants_oci.goals.pin import OciPin
from tests.backend.conftest import build, configure, make_rule_runner, package_error, run_goal
from tests.fixtures.fault_proxy import BlobStore, FaultProxy
from tests.fixtures.registry import (  # noqa: F401 (fixtures)
    Registry,
    registry,
    tls_registry,
    token_registry,
)
from tests.fixtures.registry_images import push_multi_platform


def _registries_option(reg: Registry, options: dict | None = None, host: str | None = None) -> str:
    address = host or reg.host
    return f"--oci-registries={ {'local': {'address': address, **(options or {'insecure': True})}} !r}"


def _runner(runner: RuleRunner, reg: Registry, digest: str | None, *,
            options: dict | None = None, env: dict | None = None, files: dict | None = None,
            host: str | None = None) -> RuleRunner:
    configure(runner, (_registries_option(reg, options, host),), env)
    pin = f', digest="{digest}"' if digest else ""
    runner.write_files({
        "img/BUILD": dedent(f"""\
            oci_pull(name="base", image="{host or reg.host}/base/multi:1.0"{pin},
                     platforms=["linux/amd64", "linux/arm64"])
            files(name="f", sources=["f.txt"])
            oci_image(name="arm", base=":base", platform="linux/arm64", dependencies=[":f"])
            oci_image(name="amd", base=":base", dependencies=[":f"])
            oci_image(name="s390x", base=":base", platform="linux/s390x", dependencies=[":f"])
            """),
        "img/f.txt": "f\n",
        **(files or {}),
    })
    return runner


def _image(dist: Path, name: str):
    return resolve_image(OciLayout(dist / name), ref_name="latest")


def test_pull_selects_the_platform_and_reuses_the_base_layers(
        rule_runner: RuleRunner, registry: Registry, tmp_path: Path) -> None:
    digests = push_multi_platform(registry, tmp_path, "base/multi")
    runner = _runner(rule_runner, registry, digests["index"])
    _, dist = build(runner, Address("img", target_name="arm"))
    image = _image(dist, "img/arm")
    assert (image.config["architecture"], image.config.get("variant")) == ("arm64", "v8")
    assert image.config["config"]["Env"] == ["MARKER=arm64"]
    base_manifest = OciLayout(tmp_path / "multi").read_blob_json(digests["arm64"])
    assert image.layers[0].digest == base_manifest["layers"][0]["digest"]
    assert len(image.layers) == 2
    _, dist = build(runner, Address("img", target_name="amd"))
    assert _image(dist, "img/amd").config["config"]["Env"] == ["MARKER=amd64"]


def _error(runner: RuleRunner, target: str) -> str:
    return package_error(runner, f"img:{target}")


def test_missing_pin_names_the_current_digest(
        rule_runner: RuleRunner, registry: Registry, tmp_path: Path) -> None:
    digests = push_multi_platform(registry, tmp_path, "base/multi")
    runner = _runner(rule_runner, registry, None)
    message = _error(runner, "arm")
    assert "the oci_pull img:base has no `digest`: base images must be pinned" in message
    assert f'add `digest="{digests["index"]}"`, or run `pants oci-pin img:base`' in message


def test_platform_outside_the_allowed_list(
        rule_runner: RuleRunner, registry: Registry, tmp_path: Path) -> None:
    digests = push_multi_platform(registry, tmp_path, "base/multi")
    runner = _runner(rule_runner, registry, digests["index"])
    assert ("platform linux/s390x is not among the `platforms` of the oci_pull img:base "
            "(linux/amd64, linux/arm64)") in _error(runner, "s390x")


def test_unknown_digest_is_a_registry_error(
        rule_runner: RuleRunner, registry: Registry, tmp_path: Path) -> None:
    push_multi_platform(registry, tmp_path, "base/multi")
    runner = _runner(rule_runner, registry, "sha256:" + "0" * 64)
    message = _error(runner, "arm")
    assert f"GET http://{registry.host}/v2/base/multi/manifests/sha256:{'0' * 64}: 404:" in message


def test_token_registry_anonymous_pull(
        rule_runner: RuleRunner, token_registry: Registry, tmp_path: Path) -> None:
    creds = Credentials(token_registry.username, token_registry.password)
    digests = push_multi_platform(token_registry, tmp_path, "base/multi", creds=creds)
    runner = _runner(rule_runner, token_registry, digests["index"])
    _, dist = build(runner, Address("img", target_name="amd"))
    assert _image(dist, "img/amd").config["config"]["Env"] == ["MARKER=amd64"]
    # Blobs were first asked for without credentials, then with an anonymous pull token.
    assert any(scope == "repository:base/multi:pull" for _, scope in token_registry.token.requests)


def test_tls_basic_auth_with_docker_config_and_private_ca(
        tls_registry: Registry, tmp_path: Path) -> None:
    creds = Credentials(tls_registry.username, tls_registry.password)
    digests = push_multi_platform(tls_registry, tmp_path, "base/multi", creds=creds)
    # Pants' downloader (rustls) cannot check a certificate for an IP address: use a name.
    host = tls_registry.host.replace("127.0.0.1", "localhost")
    docker_dir = tmp_path / "docker-config"
    docker_dir.mkdir()
    auth = base64.b64encode(f"{tls_registry.username}:{tls_registry.password}".encode()).decode()
    (docker_dir / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    # Pants' downloader trusts [GLOBAL].ca_certs_path: the registry's CA must be in it.
    bundle = tmp_path / "bundle.pem"
    system = os.environ.get("PANTS_CA_CERTS_PATH") or os.environ.get("SSL_CERT_FILE")
    bundle.write_bytes((Path(system).read_bytes() if system else b"") + tls_registry.ca_cert.read_bytes())
    # Its own runner: the downloader's CA bundle is fixed when the engine starts.
    runner = _runner(make_rule_runner(ca_certs_path=str(bundle)), tls_registry, digests["index"],
                     options={"ca_cert": "registry-ca.pem"},
                     env={"DOCKER_CONFIG": str(docker_dir)},
                     files={"registry-ca.pem": tls_registry.ca_cert.read_text()}, host=host)
    _, dist = build(runner, Address("img", target_name="arm"))
    assert _image(dist, "img/arm").config["config"]["Env"] == ["MARKER=arm64"]
    for path in dist.rglob("*"):
        if path.is_file():
            assert tls_registry.password.encode() not in path.read_bytes()


def test_oci_pin_writes_the_digest_then_the_build_works(
        rule_runner: RuleRunner, registry: Registry, tmp_path: Path) -> None:
    digests = push_multi_platform(registry, tmp_path, "base/multi")
    runner = _runner(rule_runner, registry, None)
    result = run_goal(runner, OciPin, ["img:base"])
    assert result.exit_code == 0, result.stderr
    assert f"img:base: {registry.host}/base/multi:1.0 -> {digests['index']}" in result.stdout
    build_file = Path(runner.build_root, "img/BUILD").read_text()
    assert f'image="{registry.host}/base/multi:1.0", digest="{digests["index"]}"' in build_file
    again = run_goal(runner, OciPin, ["img:base"])
    assert f"already pinned to {digests['index']}" in again.stdout
    _, dist = build(runner, Address("img", target_name="arm"))
    assert _image(dist, "img/arm").config["config"]["Env"] == ["MARKER=arm64"]


def test_blob_redirects_to_storage_carry_no_credentials(
        rule_runner: RuleRunner, token_registry: Registry, tmp_path: Path) -> None:
    owner = Credentials(token_registry.username, token_registry.password)
    digests = push_multi_platform(token_registry, tmp_path, "base/multi", creds=owner)
    with BlobStore(str(tmp_path / "multi")) as storage, FaultProxy(token_registry.host) as proxy:
        proxy.redirect_blobs(storage.url)
        front = Registry(host=proxy.host, tls=False)
        runner = _runner(rule_runner, front, digests["index"],
                         env={"OCIBUILD_USERNAME": owner.username, "OCIBUILD_PASSWORD": owner.password})
        _, dist = build(runner, Address("img", target_name="amd"))
    assert _image(dist, "img/amd").config["config"]["Env"] == ["MARKER=amd64"]
    # Pants' downloader asked without credentials (401 from the registry), then with a token
    # (307 to storage), and storage never saw the token. (A blob already in Pants' store, e.g.
    # the layer, whose bytes other tests built too, is not requested at all.)
    statuses = [s for m, p, s in proxy.requests if "/blobs/" in p]
    assert statuses.count(401) == statuses.count(307) == len(storage.seen) >= 1
    assert all(authorization is None for _, authorization in storage.seen)


def test_the_plugins_errors_escape_what_they_quote() -> None:
    """Pants' downloader's error, a process's stderr: quoted into the plugin's own errors,
    whose messages are escaped where they are made, as the core's are."""
    from pants_oci.subsystems.oci_tool import OcibuildError
    from pants_oci.util_rules.base_image import OciBaseError
    from pants_oci.util_rules.image import OciPlatformError
    from pants_oci.util_rules.layer_content import OciDependencyError
    from pants_oci.util_rules.local_runtime import OciRuntimeError

    for error in (OciBaseError, OciPlatformError, OciDependencyError, OciRuntimeError,
                  OcibuildError):
        assert str(error("blob: \x1b]0;owned\x07 \u202egnp.exe\nnext")) == \
            "blob: \\x1b]0;owned\\x07 \\u202egnp.exe\nnext"
