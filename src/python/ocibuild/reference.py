"""Image references: `[registry/]repository[:tag][@digest]`, with Docker Hub's conventions.

The registry part becomes the host of every URL we send credentials to, so it must be a host
name or IP (with an optional port), as docker's grammar says: `evil.com#.good.com` is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ocibuild.digest import validate_digest
from ocibuild.errors import OciBuildError

DOCKER_HUB = "docker.io"
# Docker Hub's API is not served at docker.io itself.
_API_HOSTS = {DOCKER_HUB: "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_REGISTRY = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?$")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: Optional[str] = None
    digest: Optional[str] = None

    @property
    def api_host(self) -> str:
        return _API_HOSTS.get(self.registry, self.registry)

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (
            f"@{self.digest}" if self.digest else "")


def _is_registry(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def parse_reference(value: str) -> Reference:
    example = 'e.g. "ghcr.io/org/app:1.0" or "127.0.0.1:5000/app@sha256:..."'
    rest, _, digest = value.partition("@")
    if digest:
        validate_digest(digest)
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.match(tag):
            raise OciBuildError(f"image reference {value!r}: bad tag {tag!r}, {example}")
    parts = rest.split("/")
    has_registry = len(parts) > 1 and _is_registry(parts[0])
    registry = parts[0] if has_registry else DOCKER_HUB
    if not _REGISTRY.match(registry):
        raise OciBuildError(f"image reference {value!r}: bad registry {registry!r}: it must be "
                            f"a host name or IP with an optional port, {example}")
    path = parts[1:] if has_registry else parts
    if registry in _API_HOSTS and len(path) == 1:
        path = ["library", *path]
    if not path or not all(_COMPONENT.match(p) for p in path):
        raise OciBuildError(
            f"image reference {value!r}: the repository must be lowercase path components, {example}"
        )
    return Reference(registry, "/".join(path), tag, digest or None)
