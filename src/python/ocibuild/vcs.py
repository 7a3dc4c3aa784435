"""The OCI annotations that say where an image's sources are: `org.opencontainers.image.source`
(the repository's public URL), `.revision` (the commit) and `.created` (SOURCE_DATE_EPOCH).

They go into content-addressed manifests, so they may hold only what is the same in every
clone of one commit: never a local path (a clone's origin may be a directory, a different
one per clone), never credentials (a CI checkout's origin is often
`https://x-access-token:TOKEN@github.com/...`), never the clock. A revision is only claimed
for a clean tree: Pants builds what is in the working tree, and a modified or untracked file
would make the commit a lie. Pure: strings in, a dict out; reading git is the caller's job.
"""

from __future__ import annotations

import re
from typing import Dict, Optional
from urllib.parse import urlsplit, urlunsplit

from ocibuild.image.config import rfc3339

SOURCE = "org.opencontainers.image.source"
REVISION = "org.opencontainers.image.revision"
CREATED = "org.opencontainers.image.created"

# Schemes of a remote other people can fetch from; `file://` and bare paths are this machine's.
_NETWORK_SCHEMES = ("https", "http", "ssh", "git", "git+ssh", "ssh+git")
# scp-like `[user@]host:path` (git's own rule: no slash before the first colon); a one-letter
# host is a Windows drive (`C:/repo`), a local path.
_SCP_LIKE = re.compile(r"^(?:[^@/:\s]+@)?([A-Za-z0-9.-]{2,}):(?!//)(\S+)$")
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


def public_source_url(remote: str) -> Optional[str]:
    """The URL of a git remote as others may read it, or None when it names this machine.

    `https://user:token@host/org/repo.git?x#y` -> `https://host/org/repo.git` (the user part,
    query and fragment dropped: each may carry a secret); `git@github.com:org/repo.git` is
    kept as it is (scp-like syntax has no password; the user is ssh's login name);
    `/srv/git/repo`, `../repo`, `file:///srv/repo` -> None (different in every clone)."""
    remote = remote.strip()
    if not remote or any(c.isspace() or ord(c) < 0x20 for c in remote):
        return None
    if "://" in remote:
        try:
            parts = urlsplit(remote)
            host, port = parts.hostname, parts.port
        except ValueError:
            return None
        if parts.scheme.lower() not in _NETWORK_SCHEMES or not host:
            return None
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        return urlunsplit((parts.scheme.lower(), netloc, parts.path, "", ""))
    if _SCP_LIKE.match(remote) and not remote.startswith(("/", ".")):
        return remote
    return None


def vcs_annotations(remote: Optional[str], commit: Optional[str], clean: bool,
                    epoch: Optional[int]) -> Dict[str, str]:
    """The annotations of an image built from a checkout whose `origin` is `remote` and whose
    HEAD is `commit` (None: not a git checkout), `clean` when nothing differs from HEAD (no
    modified, staged or untracked file), at SOURCE_DATE_EPOCH `epoch` (None: unset)."""
    annotations: Dict[str, str] = {}
    source = public_source_url(remote) if remote else None
    if source:
        annotations[SOURCE] = source
    if commit and clean and _COMMIT.match(commit):
        annotations[REVISION] = commit
    if epoch is not None:
        annotations[CREATED] = rfc3339(epoch)
    return annotations
