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

import string
from typing import Dict, List, Sequence

from ocibuild.errors import OciBuildError

PLACEHOLDERS = ("archive", "suite", "timestamp")


def check_template(template: str, where: str) -> None:
    """An http(s) URL whose only placeholders are `PLACEHOLDERS`."""
    if not isinstance(template, str) or not template.startswith(("http://", "https://")):
        raise OciBuildError(f"{where}: the fallback mirror {template!r} must be an http:// or "
                            "https:// URL (template), e.g. "
                            "\"https://snapshot.debian.org/archive/{archive}/{timestamp}\"")
    try:
        names = [name for _, name, spec, conv in string.Formatter().parse(template)
                 if name is not None]
    except ValueError as err:
        raise OciBuildError(f"{where}: the fallback mirror {template!r} is not a valid "
                            f"template ({err}); write a literal brace as {{{{ or }}}}") from None
    unknown = sorted({n for n in names if n not in PLACEHOLDERS})
    if unknown:
        raise OciBuildError(f"{where}: the fallback mirror {template!r} uses "
                            f"{', '.join('{' + n + '}' for n in unknown)}; the placeholders "
                            f"are {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")


def fallback_urls(templates: Sequence[str], source: Dict[str, str], filename: str) -> List[str]:
    """The URLs of `filename` (a pool path) on each fallback, in order, for a package of the
    lockfile `source` (`suite`, `mirror`, `timestamp`). A template needing a `{timestamp}`
    the lockfile lacks (its InRelease had no `Date`) is skipped."""
    values = {"archive": source["mirror"].rstrip("/").rsplit("/", 1)[-1],
              "suite": source["suite"], "timestamp": source.get("timestamp", "")}
    urls = []
    for template in templates:
        if "{timestamp}" in template and not values["timestamp"]:
            continue
        urls.append(f"{template.format(**values).rstrip('/')}/{filename}")
    return urls
