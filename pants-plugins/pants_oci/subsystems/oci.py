"""`[oci]`: where images are published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from pants.option.option_types import DictOption, StrListOption
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

    def debian_mirror(self, url: str) -> str:
        url = url.rstrip("/")
        return self.debian_mirrors.get(url, self.debian_mirrors.get(url + "/", url)).rstrip("/")

    def registries(self) -> Dict[str, "Registry"]:
        return {alias: Registry.from_option(alias, raw) for alias, raw in self._registries.items()}


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
    def from_option(cls, alias: str, raw: Dict[str, Any]) -> "Registry":
        known = ("address", "default", "insecure", "ca_cert", "repository", "extra_image_tags",
                 "skip_push")
        unknown = sorted(set(raw) - set(known))
        if unknown or "address" not in raw:
            raise ValueError(
                f"[oci].registries.{alias}: needs `address` and takes only {', '.join(known)} "
                f"(got {', '.join(sorted(raw))})"
            )
        return cls(alias, str(raw["address"]), bool(raw.get("default", False)),
                   bool(raw.get("insecure", False)), raw.get("ca_cert"), raw.get("repository"),
                   tuple(raw.get("extra_image_tags") or ()), bool(raw.get("skip_push", False)))


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
