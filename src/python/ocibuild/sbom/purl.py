"""Package URLs (purl spec): how scanners match a package to advisories.

Percent-encoding follows the spec (and packageurl-python): a Debian version such as
`20250419+deb13u1` becomes `20250419%2Bdeb13u1`, since `+` is not safe in a purl version.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import quote

# Debian's pockets of one release: trixie-security and trixie-updates are still trixie.
_POCKET = re.compile(r"-(security|updates|backports|proposed-updates)$")


def _quoted(text: str) -> str:
    # `:` stays: a Debian epoch (`1:2.3-4`) is written as packageurl-python writes it.
    return quote(text, safe=":")


def distro(suite: str) -> str:
    """`debian-<codename>` of a suite: the release, not the pocket it was served from, as
    scanners match advisories per release."""
    return "debian-" + _POCKET.sub("", suite)


def deb(name: str, version: str, architecture: str, suite: str) -> str:
    return (f"pkg:deb/debian/{_quoted(name)}@{_quoted(version)}"
            f"?arch={_quoted(architecture)}&distro={_quoted(distro(suite))}")


def pypi(name: str, version: str) -> str:
    """The spec's PyPI name: lowercased, `_` as `-`."""
    return f"pkg:pypi/{_quoted(name.lower().replace('_', '-'))}@{_quoted(version)}"


def oci(repository: str, digest: str, architecture: Optional[str] = None) -> str:
    """`pkg:oci/<name>@<digest>?arch=...&repository_url=...` of an image; `repository` may
    carry a tag or digest (a base as the BUILD file names it), which is left out."""
    repository = repository.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: len(repository) - len(last)] + last.split(":", 1)[0]
    qualifiers = {"repository_url": repository}
    if architecture:
        qualifiers["arch"] = architecture
    query = "&".join(f"{k}={quote(v, safe='/:')}" for k, v in sorted(qualifiers.items()))
    return (f"pkg:oci/{_quoted(repository.rsplit('/', 1)[-1].lower())}@"
            f"{quote(digest, safe='')}?{query}")
