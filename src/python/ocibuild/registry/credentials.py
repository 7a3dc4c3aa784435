"""Credentials for a registry host, looked up where docker, podman and CI put them.

Order (the first source that knows the host wins):
  1. `OCIBUILD_USERNAME` / `OCIBUILD_PASSWORD`, for every registry, or only for the
     comma-separated hosts in `OCIBUILD_REGISTRY` when that is set (CI secrets);
  2. docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
     `credHelpers[host]`, then `credsStore`, then `auths[host]` (`auth`, `username`/`password`
     or `identitytoken`), as docker and crane read it;
  3. podman/skopeo's `auth.json` (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
     `~/.config/containers/auth.json`), the same format;
  4. `GITHUB_TOKEN` (with `GITHUB_ACTOR` as the user) for `ghcr.io`, as GitHub Actions provide.
Nothing found: anonymous. Credential helpers run as `docker-credential-<name> get`.

`OCIBUILD_USERNAME` without `OCIBUILD_REGISTRY` sends that password to whichever registry
asks, so the first use prints a warning to stderr (once per process) naming the host.
Config files are read with the typed loaders of `ocibuild.untrusted`: a wrong shape
(`"auths": []`, `"auth": 123`, ...) is an error naming the file and the key, never a
traceback. No message or repr ever holds a password, token or `auth` value.

The environment is passed in, never read from `os.environ` here: inside Pants it is the
client's environment, and tests give their own.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional

from ocibuild.errors import OciBuildError, escaped
from ocibuild.untrusted import field, load_json, read_bounded

# docker keeps Docker Hub's credentials under its v1 index URL.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
# The variables this module reads: callers pass exactly these through.
ENV_VARS = ("OCIBUILD_USERNAME", "OCIBUILD_PASSWORD", "OCIBUILD_REGISTRY", "DOCKER_CONFIG",
            "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "HOME", "PATH", "GITHUB_TOKEN",
            "GITHUB_ACTOR")
_HELPER_TIMEOUT_S = 60
# docker's config.json holds a few entries; a credentials file bigger than this is not one.
MAX_CONFIG = 4 << 20
_warned_unscoped: list = []  # the unscoped-credentials warning is printed once per process


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    # An OAuth2 refresh token (docker's `identitytoken`): exchanged at the token realm.
    identity_token: Optional[str] = None
    # Where they came from, for messages: never the secret itself.
    source: str = "given"

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(username={self.username!r}, source={self.source!r}, <redacted>)"


def normalize_host(key: str) -> str:
    """`https://index.docker.io/v1/`, `http://host:5000`, `host:5000/` -> the bare host."""
    host = key.split("://", 1)[-1].split("/", 1)[0].lower()
    return "docker.io" if host in _HUB_ALIASES else host


def lookup(registry: str, env: Mapping[str, str]) -> Optional[Credentials]:
    host = normalize_host(registry)
    for source in (_from_ocibuild_env, _from_docker_config, _from_auth_json, _from_github_env):
        found = source(host, env)
        if found is not None:
            return found
    return None


def _from_ocibuild_env(host: str, env: Mapping[str, str]) -> Optional[Credentials]:
    user = env.get("OCIBUILD_USERNAME")
    if not user:
        return None
    scoped = env.get("OCIBUILD_REGISTRY")
    if scoped and host not in {normalize_host(h.strip()) for h in scoped.split(",") if h.strip()}:
        return None
    if not scoped:
        _warn_unscoped(host)
    return Credentials(user, env.get("OCIBUILD_PASSWORD", ""), source="$OCIBUILD_USERNAME")


def _warn_unscoped(host: str) -> None:
    if not _warned_unscoped:
        _warned_unscoped.append(host)
        print(f"ocibuild: warning: OCIBUILD_USERNAME applies to every registry "
              f"({escaped(host)} here); set OCIBUILD_REGISTRY=host[,host] to limit it",
              file=sys.stderr)


def _from_github_env(host: str, env: Mapping[str, str]) -> Optional[Credentials]:
    token = env.get("GITHUB_TOKEN")
    if host != "ghcr.io" or not token:
        return None
    return Credentials(env.get("GITHUB_ACTOR") or "github", token, source="$GITHUB_TOKEN")


def _home(env: Mapping[str, str]) -> Optional[str]:
    return env.get("HOME") or None


def _docker_config_path(env: Mapping[str, str]) -> Optional[str]:
    if env.get("DOCKER_CONFIG"):
        return os.path.join(env["DOCKER_CONFIG"], "config.json")
    home = _home(env)
    return os.path.join(home, ".docker", "config.json") if home else None


def _auth_json_paths(env: Mapping[str, str]) -> Iterator[str]:
    if env.get("REGISTRY_AUTH_FILE"):
        yield env["REGISTRY_AUTH_FILE"]
        return
    if env.get("XDG_RUNTIME_DIR"):
        yield os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json")
    home = _home(env)
    if home:
        yield os.path.join(home, ".config", "containers", "auth.json")


def _read_config(path: str) -> Optional[dict]:
    try:
        with open(path, "rb") as f:
            data = read_bounded(f, MAX_CONFIG, f"the registry credentials file {path}")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise OciBuildError(f"cannot read the registry credentials file {path}: "
                            f"{err.__class__.__name__}; fix or remove it") from None
    return load_json(data, f"the registry credentials file {path}")


def _from_docker_config(host: str, env: Mapping[str, str]) -> Optional[Credentials]:
    path = _docker_config_path(env)
    config = _read_config(path) if path else None
    return _from_config(config, path, host, env) if config else None


def _from_auth_json(host: str, env: Mapping[str, str]) -> Optional[Credentials]:
    for path in _auth_json_paths(env):
        config = _read_config(path)
        if config:
            return _from_config(config, path, host, env)
    return None


def _from_config(config: dict, path: str, host: str, env: Mapping[str, str]
                 ) -> Optional[Credentials]:
    where = f"the registry credentials file {path}"
    helpers = _typed(config, "credHelpers", dict, where, "of registry -> helper name")
    for key, helper in helpers.items():
        if not isinstance(helper, str):
            raise OciBuildError(f"{where}: credHelpers[{key!r}] must be a helper name (string)")
        if normalize_host(key) == host:
            return run_helper(helper, host, env, path)
    store = _typed(config, "credsStore", str, where, "naming a credential helper")
    if store:
        found = run_helper(store, host, env, path)
        if found is not None:
            return found
    for key, entry in _typed(config, "auths", dict, where, "of registry -> entry").items():
        if not isinstance(entry, dict):
            raise OciBuildError(f"{where} auths[{key!r}] must be a JSON object like "
                                '{"auth": "<base64 of USER:PASSWORD>"}')
        if normalize_host(key) == host:
            return _from_auth_entry(entry, path, key)
    return None


def _typed(config: dict, key: str, expect: type, where: str, what: str):
    """`config[key]` (absent or null: empty) of type `expect`. The value is never quoted in
    the error: a misplaced secret would be printed."""
    value = config.get(key)
    if value is None:
        return expect()
    if not isinstance(value, expect):
        kind = "a JSON object" if expect is dict else "a JSON string"
        raise OciBuildError(f"{where}: `{key}` must be {kind} {what}")
    return value


def _from_auth_entry(entry: dict, path: str, key: str) -> Optional[Credentials]:
    source = f"{path} auths[{key!r}]"
    where = f"the registry credentials file {source}"
    # No value is quoted back in these errors: they may be secrets.
    for name in ("auth", "username", "password", "identitytoken"):
        if entry.get(name) is not None and not isinstance(entry[name], str):
            raise OciBuildError(f"{where}: `{name}` must be a JSON string")
    user, password = entry.get("username") or "", entry.get("password") or ""
    if entry.get("auth"):
        try:  # strict, as docker decodes it (line breaks aside)
            pair = base64.b64decode("".join(entry["auth"].split()), validate=True).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise OciBuildError(f"{where}: `auth` is not base64 of USER:PASSWORD") from None
        user, _, password = pair.partition(":")
    token = entry.get("identitytoken") or None
    if not user and not token:
        return None  # an empty entry (docker writes `{}` when a credsStore holds the secret)
    return Credentials(user, password, identity_token=token, source=source)


def helper_server_url(host: str) -> str:
    return DOCKER_HUB_KEY if host == "docker.io" else host


def run_helper(name: str, host: str, env: Mapping[str, str], config_path: str
               ) -> Optional[Credentials]:
    """`docker-credential-NAME get`, fed the server URL; not found means anonymous."""
    program = f"docker-credential-{name}"
    executable = shutil.which(program, path=env.get("PATH", os.defpath))
    if executable is None:
        raise OciBuildError(f"{config_path} names the credential helper {name!r} for {host}, "
                            f"but {program} is not on PATH; install it or remove the entry")
    try:
        done = subprocess.run([executable, "get"], input=helper_server_url(host).encode(),
                              capture_output=True, env=dict(env), timeout=_HELPER_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise OciBuildError(f"{program} get (for {host}) failed: {err.__class__.__name__}"
                            ) from None
    if done.returncode != 0:
        # The protocol's "not found" message; other failures are errors, their text is the
        # helper's (helpers print no secrets on failure), capped.
        text = done.stdout.decode("utf-8", "replace").strip()[:300]
        if "credentials not found" in text.lower():
            return None
        raise OciBuildError(f"{program} get (for {host}) exited {done.returncode}: {text}")
    try:
        answer = load_json(done.stdout, "its answer")
        user = field(answer, "Username", str, "its answer", required=True)
        secret = field(answer, "Secret", str, "its answer", required=True)
    except OciBuildError:  # not quoted: the answer may hold the secret
        raise OciBuildError(f"{program} get (for {host}) did not print "
                            '{"Username": "...", "Secret": "..."}') from None
    source = f"credential helper {program}"
    if user == "<token>":  # the helper protocol's marker for an identity token
        return Credentials("", "", identity_token=secret, source=source)
    return Credentials(user, secret, source=source)
