"""Where credentials come from: env, docker config.json (auths, helpers, store), auth.json."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.registry import credentials
from ocibuild.registry.credentials import Credentials, lookup, normalize_host


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _docker_config(tmp_path: Path, config: dict) -> dict:
    directory = tmp_path / "docker"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return {"DOCKER_CONFIG": str(directory), "HOME": str(tmp_path / "home"), "PATH": os.defpath}


def _helper(tmp_path: Path, name: str, script: str) -> str:
    """A docker-credential-NAME on a PATH of its own; returns that PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    helper = bindir / f"docker-credential-{name}"
    helper.write_text("#!/bin/sh\n" + script)
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    return f"{bindir}:{os.defpath}"


def test_normalize_host() -> None:
    assert normalize_host("https://index.docker.io/v1/") == "docker.io"
    assert normalize_host("registry-1.docker.io") == "docker.io"
    assert normalize_host("http://127.0.0.1:5000") == "127.0.0.1:5000"
    assert normalize_host("GHCR.io/") == "ghcr.io"


def test_nothing_configured_is_anonymous(tmp_path: Path) -> None:
    assert lookup("ghcr.io", {"HOME": str(tmp_path)}) is None
    assert lookup("ghcr.io", {}) is None


def test_ocibuild_env_for_every_registry_or_only_the_named_ones() -> None:
    env = {"OCIBUILD_USERNAME": "ci", "OCIBUILD_PASSWORD": "pw"}
    assert lookup("ghcr.io", env) == Credentials("ci", "pw", source="$OCIBUILD_USERNAME")
    scoped = {**env, "OCIBUILD_REGISTRY": "registry.internal:5000, ghcr.io"}
    assert lookup("ghcr.io", scoped) is not None
    assert lookup("docker.io", scoped) is None


def test_config_json_auths_forms(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {"auths": {
        "https://index.docker.io/v1/": {"auth": _auth("hubuser", "hub:pw")},
        "127.0.0.1:5000": {"username": "u", "password": "p"},
        "acr.example.io": {"username": "00000000-0000-0000-0000-000000000000",
                           "identitytoken": "refresh-me"},
        "empty.example.io": {},
    }})
    hub = lookup("docker.io", env)
    assert (hub.username, hub.password) == ("hubuser", "hub:pw")
    assert "config.json" in hub.source
    assert (lookup("127.0.0.1:5000", env).username, lookup("127.0.0.1:5000", env).password) == ("u", "p")
    assert lookup("acr.example.io", env).identity_token == "refresh-me"
    assert lookup("empty.example.io", env) is None
    assert lookup("other.example.io", env) is None


def test_cred_helper_wins_over_auths(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {
        "credHelpers": {"ghcr.io": "test"},
        "auths": {"ghcr.io": {"auth": _auth("stale", "stale")}},
    })
    env["PATH"] = _helper(tmp_path, "test", 'read url; printf \'{"ServerURL":"%s","Username":"helper-user","Secret":"helper-secret"}\' "$url"\n')
    found = lookup("ghcr.io", env)
    assert (found.username, found.password) == ("helper-user", "helper-secret")
    assert found.source == "credential helper docker-credential-test"


def test_creds_store_gets_the_hub_key_and_identity_tokens(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {"credsStore": "store", "auths": {"docker.io": {}}})
    # The helper sees the server URL on stdin: Docker Hub's is its v1 index URL.
    env["PATH"] = _helper(tmp_path, "store", """read url
if [ "$url" = "https://index.docker.io/v1/" ]; then
  echo '{"ServerURL":"x","Username":"<token>","Secret":"id-token"}'
else
  echo "credentials not found in native keychain"; exit 1
fi
""")
    hub = lookup("docker.io", env)
    assert hub.identity_token == "id-token" and hub.username == ""
    assert lookup("quay.io", env) is None  # not found: anonymous, as docker does


def test_missing_or_failing_helper_is_a_clear_error(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {"credHelpers": {"ecr.example.io": "ecr-login"}})
    with pytest.raises(OciBuildError, match="docker-credential-ecr-login is not on PATH"):
        lookup("ecr.example.io", env)
    env["PATH"] = _helper(tmp_path, "ecr-login", "echo 'token expired' >&1; exit 3\n")
    with pytest.raises(OciBuildError, match="exited 3: token expired"):
        lookup("ecr.example.io", env)


def test_auth_json_after_docker_config(tmp_path: Path) -> None:
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {"quay.io": {"auth": _auth("podman", "pw")}}}))
    env = _docker_config(tmp_path, {"auths": {"ghcr.io": {"auth": _auth("docker", "pw")}}})
    env["REGISTRY_AUTH_FILE"] = str(auth_file)
    assert lookup("ghcr.io", env).username == "docker"
    assert lookup("quay.io", env).username == "podman"
    xdg = tmp_path / "run"
    (xdg / "containers").mkdir(parents=True)
    (xdg / "containers" / "auth.json").write_text(auth_file.read_text())
    assert lookup("quay.io", {"XDG_RUNTIME_DIR": str(xdg)}).username == "podman"


def test_default_docker_config_under_home(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(
        json.dumps({"auths": {"ghcr.io": {"auth": _auth("me", "pw")}}}))
    assert lookup("ghcr.io", {"HOME": str(tmp_path)}).username == "me"


def test_github_token_for_ghcr_only() -> None:
    env = {"GITHUB_TOKEN": "ghs_secret", "GITHUB_ACTOR": "octocat"}
    assert lookup("ghcr.io", env) == Credentials("octocat", "ghs_secret", source="$GITHUB_TOKEN")
    assert lookup("docker.io", env) is None


def test_broken_config_names_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "docker"
    directory.mkdir()
    (directory / "config.json").write_text("{not json")
    with pytest.raises(OciBuildError, match=r"^the registry credentials file \S+/docker/config.json "
                                            r"is not valid JSON: Expecting property name"):
        lookup("ghcr.io", {"DOCKER_CONFIG": str(directory)})


def test_secrets_never_in_repr() -> None:
    text = repr(Credentials("user", "hunter2", identity_token="tok"))
    assert "hunter2" not in text and "tok" not in text
    assert credentials.ENV_VARS  # the variables a caller must pass through


@pytest.mark.parametrize("config, problem", [
    ({"auths": []}, "`auths` must be a JSON object of registry -> entry"),
    ({"auths": [{"auth": "c2VjcmV0OnB3"}]}, "`auths` must be a JSON object"),
    ({"credHelpers": "c2VjcmV0OnB3"}, "`credHelpers` must be a JSON object of registry -> "
                                      "helper name"),
    ({"credHelpers": {"ghcr.io": 1}}, "credHelpers['ghcr.io'] must be a helper name (string)"),
    ({"credsStore": ["desktop"]}, "`credsStore` must be a JSON string naming a credential helper"),
    ({"auths": {"ghcr.io": "c2VjcmV0OnB3"}}, "config.json auths['ghcr.io'] must be a JSON object like"),
    ({"auths": {"ghcr.io": {"auth": 123}}}, "config.json auths['ghcr.io']: `auth` must be a JSON string"),
    ({"auths": {"ghcr.io": {"username": ["u"], "password": "pw"}}},
     "auths['ghcr.io']: `username` must be a JSON string"),
    ({"auths": {"ghcr.io": {"username": "u", "password": {"v": "c2VjcmV0OnB3"}}}},
     "auths['ghcr.io']: `password` must be a JSON string"),
    ({"auths": {"ghcr.io": {"auth": "%%%"}}}, "`auth` is not base64 of USER:PASSWORD"),
    ([], "must be a JSON object, not array"),
], ids=["auths-list", "auths-list-of-secrets", "helpers-string", "helper-number",
        "store-list", "entry-string", "auth-number", "username-list", "password-object",
        "auth-not-base64", "config-list"])
def test_malformed_config_entries_are_clear_errors(tmp_path: Path, config, problem: str) -> None:
    env = _docker_config(tmp_path, {})
    (tmp_path / "docker" / "config.json").write_text(json.dumps(config))
    with pytest.raises(OciBuildError) as err:
        lookup("ghcr.io", env)
    assert str(err.value).startswith(f"the registry credentials file {tmp_path}/docker/config.json")
    assert problem in str(err.value)
    assert "c2VjcmV0" not in str(err.value)  # no secret quoted back


def test_deeply_nested_config_is_a_clear_error(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {})
    (tmp_path / "docker" / "config.json").write_text('{"auths": ' + "[" * 50_000)
    with pytest.raises(OciBuildError, match=r"config.json nests deeper than 64 levels"):
        lookup("ghcr.io", env)


def test_helper_printing_garbage_is_a_clear_error_without_its_output(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {"credHelpers": {"ghcr.io": "odd"}})
    env["PATH"] = _helper(tmp_path, "odd", "echo '[\"helper-secret\"]'\n")
    with pytest.raises(OciBuildError) as err:
        lookup("ghcr.io", env)
    assert str(err.value) == ('docker-credential-odd get (for ghcr.io) did not print '
                              '{"Username": "...", "Secret": "..."}')


def test_unscoped_env_credentials_warn_once(monkeypatch, capsys) -> None:
    monkeypatch.setattr(credentials, "_warned_unscoped", [])
    env = {"OCIBUILD_USERNAME": "ci", "OCIBUILD_PASSWORD": "pw-never-printed"}
    lookup("ghcr.io", env)
    lookup("quay.io", env)
    assert capsys.readouterr().err == (
        "ocibuild: warning: OCIBUILD_USERNAME applies to every registry (ghcr.io here); "
        "set OCIBUILD_REGISTRY=host[,host] to limit it\n")
    lookup("ghcr.io", {**env, "OCIBUILD_REGISTRY": "ghcr.io"})
    assert capsys.readouterr().err == ""


def test_scoped_env_credentials_do_not_warn(monkeypatch, capsys) -> None:
    monkeypatch.setattr(credentials, "_warned_unscoped", [])
    env = {"OCIBUILD_USERNAME": "ci", "OCIBUILD_PASSWORD": "pw", "OCIBUILD_REGISTRY": "ghcr.io"}
    assert lookup("ghcr.io", env) is not None
    assert lookup("quay.io", env) is None
    assert capsys.readouterr().err == ""
