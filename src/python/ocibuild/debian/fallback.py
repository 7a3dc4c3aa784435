"""Fallback mirrors: where else a locked .deb may be fetched once its mirror dropped it.

A template is a mirror URL with placeholders filled from the lockfile's entry for the
package's suite: `{timestamp}` (its InRelease `Date` as snapshot archives write instants,
`20251108T103211Z`), `{archive}` (the last path segment of the suite's mirror: `debian`,
`debian-security`) and `{suite}`. E.g.
`https://snapshot.debian.org/archive/{archive}/{timestamp}` for snapshot.debian.org. The
package's pool path is appended. Whatever a fallback serves is checked against the locked
SHA-256 and size like the primary download, so a fallback can make a build work, never
change what it builds.
"""

from __future__ import annotations

import re
from typing import Dict, List, Sequence

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

PLACEHOLDERS = ("archive", "suite", "timestamp")
# A mirror URL is a host and a short path; URLs past 2,000 characters meet servers that
# refuse them. The filled URL stays near this: the placeholders' values are short names.
MAX_TEMPLATE = 1024
# Literal text, an escaped brace, or a placeholder: `{` anything but braces `}`.
_TOKEN = re.compile(r"[^{}]+|\{\{|\}\}|\{([^{}]*)\}")


def _quoted(template: str) -> str:
    return repr(template) if len(template) <= 120 else f"{template[:120]!r}... " \
        f"({len(template)} characters)"


def check_template(template: str, where: str) -> None:
    """An http(s) URL of at most MAX_TEMPLATE characters, without spaces or control
    characters, whose only placeholders are bare `PLACEHOLDERS`: `{suite}`, never a format
    spec (`{timestamp:>40000000}` would make a 40 MB URL), a conversion (`{suite!r}`), an
    attribute or an index, which `str.format` would all act on."""
    if not isinstance(template, str) or not template.startswith(("http://", "https://")):
        raise OciBuildError(f"{where}: the fallback mirror {_quoted(str(template))} must be an "
                            "http:// or https:// URL (template), e.g. "
                            "\"https://snapshot.debian.org/archive/{archive}/{timestamp}\"")
    if len(template) > MAX_TEMPLATE:
        raise OciBuildError(f"{where}: the fallback mirror {_quoted(template)} is longer than "
                            f"{MAX_TEMPLATE} characters; a mirror URL is a host and a short path")
    if not all(c.isprintable() and not c.isspace() for c in template):
        raise OciBuildError(f"{where}: the fallback mirror {_quoted(template)} holds a space or "
                            "a control character; percent-encode it (%20)")
    unknown = sorted({n for n in _placeholders(template, where) if n not in PLACEHOLDERS})
    if unknown:
        raise OciBuildError(f"{where}: the fallback mirror {_quoted(template)} uses "
                            f"{', '.join(shown('{' + n + '}', 60) for n in unknown)}; the "
                            f"placeholders are {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
                            ", each bare (no format spec, conversion, attribute or index)")


def _placeholders(template: str, where: str) -> List[str]:
    """The names between braces, read here rather than by string.Formatter, which takes
    `{suite:}` for `{suite}` and hands specs and conversions on to str.format."""
    names, at = [], 0
    while at < len(template):
        token = _TOKEN.match(template, at)
        if token is None:
            raise OciBuildError(f"{where}: the fallback mirror {_quoted(template)} has a lone "
                                f"`{template[at]}` at character {at + 1}; write a literal "
                                "brace as {{ or }}")
        if token.group(1) is not None:
            names.append(token.group(1))
        at = token.end()
    return names


def fallback_urls(templates: Sequence[str], source: Dict[str, str], filename: str) -> List[str]:
    """The URLs of `filename` (a pool path) on each fallback, in order, for a package of the
    lockfile `source` (`suite`, `mirror`, `timestamp`). A template needing a `{timestamp}`
    the lockfile lacks (its InRelease had no `Date`) is skipped."""
    values = {"archive": source["mirror"].rstrip("/").rsplit("/", 1)[-1],
              "suite": source["suite"], "timestamp": source.get("timestamp", "")}
    urls = []
    for template in templates:
        if "timestamp" in _placeholders(template, "a fallback mirror") \
                and not values["timestamp"]:
            continue
        urls.append(f"{template.format(**values).rstrip('/')}/{filename}")
    return urls
