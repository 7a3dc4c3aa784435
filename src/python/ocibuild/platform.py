"""Platforms as `os/arch[/variant]`, and matching them against index descriptors."""

from __future__ import annotations

from dataclasses import dataclass

from ocibuild.errors import OciBuildError

# GOOS / GOARCH values, which the OCI image spec references for `os` and `architecture`.
KNOWN_OS = ("linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "aix")
KNOWN_ARCH = ("amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64",
              "mips64le", "mips64", "mipsle", "mips", "loong64", "wasm")
# Variants implied when absent, so "linux/arm64" matches a descriptor saying "v8".
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def to_json(self) -> dict[str, str]:
        out = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            out["variant"] = self.variant
        return out

    def matches(self, other: dict | None) -> bool:
        if not other:
            return False
        if (other.get("os"), other.get("architecture")) != (self.os, self.architecture):
            return False
        default = _DEFAULT_VARIANT.get(self.architecture)
        return (self.variant or default) == (other.get("variant") or default)


def from_config(config: dict) -> Platform:
    return Platform(config.get("os", "linux"), config.get("architecture", "amd64"),
                    config.get("variant"))


def parse_platform(value: str) -> Platform:
    parts = value.split("/")
    example = 'e.g. "linux/amd64" or "linux/arm64"'
    if len(parts) not in (2, 3) or not all(parts):
        raise OciBuildError(f"platform {value!r} must be os/arch[/variant], {example}.")
    os_, arch = parts[0], parts[1]
    if os_ not in KNOWN_OS:
        raise OciBuildError(
            f"platform {value!r}: unknown os {os_!r}; use one of {', '.join(KNOWN_OS)}, {example}."
        )
    if arch not in KNOWN_ARCH:
        raise OciBuildError(
            f"platform {value!r}: unknown architecture {arch!r}; use one of "
            f"{', '.join(KNOWN_ARCH)}, {example}."
        )
    return Platform(os_, arch, parts[2] if len(parts) == 3 else None)
