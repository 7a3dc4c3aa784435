"""Wheel SHA-256s from a Pants (pex) Python lockfile: the hashes pip checked when the PEX
was built, so the SBOM can name each wheel file exactly."""

from __future__ import annotations

import posixpath
from typing import Dict, Iterator
from urllib.parse import unquote, urlsplit

from ocibuild.untrusted import field, load_json

MAX_BYTES = 64 << 20


def _objects(value: object) -> Iterator[dict]:
    """The JSON objects of a list (anything else in a hand-edited lockfile is passed over:
    a wheel it does not hash is a wheel the SBOM names without a hash)."""
    return (v for v in value if isinstance(v, dict)) if isinstance(value, list) else iter(())


def wheel_hashes(data: bytes, where: str) -> Dict[str, str]:
    """Wheel file name -> SHA-256 hex, over every locked resolve. Pants puts a `//` comment
    header before the JSON; artifacts hashed otherwise than with SHA-256 are left out."""
    text = data.decode("utf-8", errors="replace")
    doc = load_json("\n".join(line for line in text.splitlines() if not line.startswith("//")),
                    where, max_bytes=MAX_BYTES)
    hashes = {}
    for resolve in _objects(field(doc, "locked_resolves", list, where, required=True)):
        for requirement in _objects(resolve.get("locked_requirements")):
            for artifact in _objects(requirement.get("artifacts")):
                name = posixpath.basename(unquote(urlsplit(str(artifact.get("url"))).path))
                sha256 = artifact.get("hash")
                if (artifact.get("algorithm") == "sha256" and name.endswith(".whl")
                        and isinstance(sha256, str)):
                    hashes[name] = sha256
    return hashes
