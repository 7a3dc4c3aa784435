"""Platforms as `os/arch[/variant]`, and matching them against index descriptors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import field

# GOOS / GOARCH values: the OCI image spec defines `os` and `architecture` by Go's lists.
KNOWN_OS = ("linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "aix",
            "illumos", "dragonfly", "plan9")
KNOWN_ARCH = ("amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64",
              "mips64le", "mips64", "mipsle", "mips", "loong64", "wasm")
# Variants implied when absent (as containerd's platform matcher does), so "linux/arm64"
# matches a descriptor saying "arm64/v8" and "linux/arm" one saying "arm/v7".
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_EXAMPLE = 'e.g. "linux/amd64" or "linux/arm64"'


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: Optional[str] = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def to_json(self) -> dict:
        out = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            out["variant"] = self.variant
        return out

    def _normalized_variant(self) -> Optional[str]:
        return self.variant or _DEFAULT_VARIANT.get(self.architecture)

    def matches(self, descriptor_platform: Optional[dict]) -> bool:
        """True if an index descriptor's `platform` object names this platform."""
        if not isinstance(descriptor_platform, dict) or not descriptor_platform:
            return False
        other = Platform(str(descriptor_platform.get("os")),
                         str(descriptor_platform.get("architecture")),
                         descriptor_platform.get("variant") or None)
        return ((self.os, self.architecture, self._normalized_variant())
                == (other.os, other.architecture, other._normalized_variant()))


def describe(descriptor_platform: Optional[dict]) -> str:
    """`os/arch[/variant]` of a descriptor's platform, for error messages."""
    if not isinstance(descriptor_platform, dict) or not descriptor_platform:
        return "(no platform)"
    keys = ("os", "architecture", "variant")
    return "/".join(str(descriptor_platform[k]) for k in keys if descriptor_platform.get(k))


def from_config(config: dict, *, where: str) -> Platform:
    """The platform an image config declares; `where` names the image for the error."""
    for key in ("os", "architecture", "variant"):
        field(config, key, str, f"the config of {where}")
    missing = [k for k in ("os", "architecture") if not config.get(k)]
    if missing:
        raise OciBuildError(
            f"the config of {where} lacks {' and '.join(missing)!s}, which the OCI image spec "
            "requires; re-create the image with a tool that writes them (skopeo, docker)"
        )
    return Platform(config["os"], config["architecture"], config.get("variant") or None)


def parse_platform(value: str) -> Platform:
    parts = value.split("/") if isinstance(value, str) else []
    if len(parts) not in (2, 3) or not all(parts):
        raise OciBuildError(f"platform {value!r}: must be os/arch[/variant], {_EXAMPLE}")
    os_name, arch = parts[0], parts[1]
    if os_name not in KNOWN_OS:
        raise OciBuildError(
            f"platform {value!r}: unknown os {os_name!r}; use one of {', '.join(KNOWN_OS)}, "
            f"{_EXAMPLE}"
        )
    if arch not in KNOWN_ARCH:
        raise OciBuildError(
            f"platform {value!r}: unknown architecture {arch!r}; use one of "
            f"{', '.join(KNOWN_ARCH)}, {_EXAMPLE}"
        )
    return Platform(os_name, arch, parts[2] if len(parts) == 3 else None)
