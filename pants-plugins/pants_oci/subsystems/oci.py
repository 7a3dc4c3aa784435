"""`[oci]`: where images are published."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from ocibuild.debian.fallback import check_template
from ocibuild.errors import OciBuildError
from pants.option.option_types import BoolOption, DictOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text


class OciSubsystem(Subsystem):
    options_scope = "oci"
    help = "Options for building and publishing OCI images with pants-oci."

    _registries = DictOption[Any](
        help=help_text(
            """
            Registries images are pushed to, by alias, as in `[docker].registries`:

                [oci.registries.ghcr]
                address = "ghcr.io"
                default = true            # used by images that do not set `registries`

                [oci.registries.cluster]
                address = "registry.ci.svc:5000"
                insecure = true           # plain HTTP; only when you ask for it
                ca_cert = "certs/ci-ca.pem"   # a CA bundle (path from the build root)
                repository = "mirror/{name}"  # this registry's repository (a template)
                extra_image_tags = ["ci-{build_args.GIT_SHA}"]
                skip_push = false

            The entry whose `address` matches an `oci_pull` image's registry also sets how
            that base is pulled (`insecure`, `ca_cert`). Credentials are looked up as docker
            and podman do (config.json, credential helpers, auth.json) or taken from
            `OCIBUILD_USERNAME` / `OCIBUILD_PASSWORD` (see docs/registries.md); never from
            BUILD files, never cached.
            """
        ),
        fromfile=True,
    )
    build_args = StrListOption(
        help=help_text(
            """
            Variables that `repository` and `image_tags` templates may use as
            `{build_args.NAME}`: `NAME` takes its value from the environment of the Pants
            run, `NAME=value` sets it. `build_args = ["GIT_SHA"]`, then
            `image_tags=["{build_args.GIT_SHA}", "latest"]` and
            `GIT_SHA=$(git rev-parse --short HEAD) pants publish ::`.
            """
        ),
    )

    debian_mirrors = DictOption[str](
        help=help_text(
            """
            Fetch `debian_packages` files from another mirror than the one their `mirror`
            field names, e.g. an internal mirror, a caching proxy or a local copy:

                [oci.debian_mirrors]
                "http://deb.debian.org/debian" = "http://apt-cache.internal/debian"

            Every file is checked against the SHA-256 in the lockfile, so any mirror is safe,
            and neither the lockfile nor any digest changes. Applies to `pants debian-lock`
            (indexes) and to `pants package` (packages).
            """
        ),
    )

    debian_fallback_mirrors = StrListOption(
        help=help_text(
            """
            Where `pants package` looks for a locked `debian_packages` file that its mirror no
            longer has, in order, after the target's own `fallback_mirrors`: URL templates
            with `{timestamp}` (the suite's InRelease `Date` recorded at lock time, as
            `20251108T103211Z`), `{archive}` (the last path segment of the suite's mirror:
            `debian`, `debian-security`) and `{suite}`; the pool path is appended:

                [oci]
                debian_fallback_mirrors = [
                  "https://snapshot.debian.org/archive/{archive}/{timestamp}",
                ]

            Every file is still checked against the locked SHA-256 and size; `[oci].debian_mirrors`
            does not rewrite these URLs.
            """
        ),
    )

    vcs_annotations = BoolOption(
        default=True,
        help=help_text(
            """
            Annotate images with `org.opencontainers.image.source` and `.revision` from git
            (and `.created` from `SOURCE_DATE_EPOCH` when it is set), unless an `oci_image`
            says otherwise in its `vcs_annotations` field. See that field for what is read.
            """
        ),
    )

    signing_key = StrOption(
        default=None,
        help=help_text(
            """
            Sign every image `pants publish` pushes, as `cosign sign --key` does, with this
            PEM ECDSA P-256 private key: a file (`keys/cosign.pem`, from the build root, or
            an absolute path), or `env:NAME` for the key's PEM text in the environment
            variable NAME (a CI secret). The signature of the pushed manifest digest goes to
            the image's repository under the tag `sha256-<hex>.sig` right after the image, in
            cosign's format (where `cosign verify --key cosign.pub` looks for it); its SBOMs
            and provenance are signed too, as cosign attestations under `sha256-<hex>.att`
            (where `cosign verify-attestation --key cosign.pub` looks for them).
            `pants oci-verify --public-key=cosign.pub` checks both.

            The key is read only by the push's own process, which is never cached: it is in
            no cache key, no process input and no output, like registry credentials. Make
            one with `openssl ecparam -name prime256v1 -genkey -noout -out cosign.pem` and
            `openssl ec -in cosign.pem -pubout -out cosign.pub` (cosign's own encrypted keys
            must be decrypted first). Unset: images are not signed.
            """
        ),
    )

    def debian_mirror(self, url: str) -> str:
        return debian_mirror(self.debian_mirrors, url)

    def debian_fallbacks(self) -> Tuple[str, ...]:
        """`debian_fallback_mirrors`, each checked (a ValueError naming the option)."""
        for template in self.debian_fallback_mirrors:
            try:
                check_template(template, "[oci].debian_fallback_mirrors")
            except OciBuildError as err:
                raise ValueError(str(err)) from err
        return tuple(self.debian_fallback_mirrors)

    def registries(self) -> Dict[str, "Registry"]:
        return {alias: Registry.from_option(alias, raw) for alias, raw in self._registries.items()}


@dataclass(frozen=True)
class SigningKey:
    """Where `[oci].signing_key` says the key is: a file, or an environment variable."""

    path: Optional[str] = None  # absolute
    env_var: Optional[str] = None

    @classmethod
    def parse(cls, value: str, build_root: str) -> "SigningKey":
        """Checked as far as it can be without reading the key (a ValueError naming the
        option); the push process reads and checks the key itself."""
        where = "[oci].signing_key"
        if value.startswith("env:"):
            name = value[4:]
            if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
                raise ValueError(f"{where}: {value!r} must be `env:NAME` with NAME an "
                                 "environment variable's name, e.g. env:COSIGN_PRIVATE_KEY")
            return cls(env_var=name)
        path = os.path.join(build_root, os.path.expanduser(value))
        if not os.path.isfile(path):
            raise ValueError(f"{where}: no key file {value!r} (looked for {path}); give a PEM "
                             "file from the build root, an absolute path, or env:NAME")
        return cls(path=os.path.abspath(path))


@dataclass(frozen=True)
class Registry:
    alias: str
    address: str
    default: bool = False
    insecure: bool = False
    ca_cert: Optional[str] = None
    repository: Optional[str] = None
    extra_image_tags: Tuple[str, ...] = ()
    skip_push: bool = False

    @classmethod
    def from_option(cls, alias: str, raw: Any) -> "Registry":
        """Each value type-checked: TOML `insecure = "false"` is a string, and reading it as
        true would send credentials in clear."""
        where = f"[oci].registries.{alias}"
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: must be a table (`[oci.registries.{alias}]` with "
                             f"`address = \"host:port\"`), not {raw!r}")
        unknown = sorted(set(raw) - set(_REGISTRY_KEYS))
        if unknown or "address" not in raw:
            raise ValueError(
                f"{where}: needs `address` and takes only {', '.join(_REGISTRY_KEYS)} "
                f"(got {', '.join(sorted(raw))})"
            )
        address = _typed(raw, "address", str, where)
        if not address.strip() or "://" in address:
            raise ValueError(f"{where}: `address` {address!r} must be a registry host[:port] "
                             "without a scheme, e.g. \"ghcr.io\" or "
                             "\"registry.ci:5000\" (plain HTTP is `insecure = true`)")
        tags = _typed(raw, "extra_image_tags", (list, tuple), where) or []
        if not all(isinstance(t, str) for t in tags):
            raise ValueError(f"{where}: `extra_image_tags` must be a list of strings, "
                             f"not {tags!r}")
        return cls(alias, address.rstrip("/"), bool(_typed(raw, "default", bool, where)),
                   bool(_typed(raw, "insecure", bool, where)), _typed(raw, "ca_cert", str, where),
                   _typed(raw, "repository", str, where), tuple(tags),
                   bool(_typed(raw, "skip_push", bool, where)))


_REGISTRY_KEYS = ("address", "default", "insecure", "ca_cert", "repository", "extra_image_tags",
                  "skip_push")
_TOML_TYPE = {bool: "a boolean (true or false, unquoted)", str: "a string",
              (list, tuple): "a list"}


def _typed(raw: Dict[str, Any], key: str, expected: Any, where: str) -> Any:
    """`raw[key]` if it is of the `expected` TOML type (or absent), else a ValueError."""
    value = raw.get(key)
    if value is None or isinstance(value, expected):
        return value
    raise ValueError(f"{where}: `{key}` must be {_TOML_TYPE[expected]}, not {value!r}")


def debian_mirror(mirrors: Dict[str, Any], url: str) -> str:
    """The mirror `[oci].debian_mirrors` puts in place of `url` (else `url`), type-checked:
    a mirror is an http(s) URL (what it serves is verified against the lockfile either way)."""
    url = url.rstrip("/")
    chosen = mirrors.get(url, mirrors.get(url + "/", url))
    if not isinstance(chosen, str) or not chosen.startswith(("http://", "https://")):
        raise ValueError(f"[oci].debian_mirrors: the mirror for {url!r} must be an http:// or "
                         f"https:// URL string, not {chosen!r}")
    return chosen.rstrip("/")


def select_registries(configured: Dict[str, Registry], wanted: Optional[Tuple[str, ...]]
                      ) -> Tuple[Registry, ...]:
    """`@alias` names a configured registry, anything else is an address; unset: the defaults."""
    if wanted is None:
        return tuple(r for r in configured.values() if r.default)
    chosen = []
    for name in wanted:
        if name.startswith("@"):
            if name[1:] not in configured:
                known = ", ".join(f"@{a}" for a in configured) or "none configured"
                raise ValueError(f"unknown registry alias {name!r} (known: {known}); add it "
                                 f"under [oci.registries.{name[1:]}] in pants.toml")
            chosen.append(configured[name[1:]])
        else:
            chosen.append(Registry(name, name))
    return tuple(chosen)
