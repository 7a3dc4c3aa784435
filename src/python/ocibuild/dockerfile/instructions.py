"""Which flags each instruction takes, and what is refused (with why), before anything runs.

Refused, each an error naming file, line and instruction, never a silent skip:
* RUN --security=insecure, --network other than default|none|host, --mount=type=ssh
  (ocibuild.dockerfile.run, ocibuild.dockerfile.mounts);
* COPY --parents, --exclude and ADD --exclude, --keep-git-dir, --unpack: newer BuildKit
  (labs) flags this builder does not implement;
* ADD of a git repository, and of a URL without --checksum=sha256:... (see ocibuild.dockerfile.add);
* unknown instructions and unknown flags (docker refuses them too).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from ocibuild.dockerfile.parser import KNOWN, Dockerfile, Node
from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

# instruction -> {flag: takes a value (False: a boolean flag, `--link` or `--link=false`)}
FLAGS: Dict[str, Dict[str, bool]] = {
    "FROM": {"platform": True},
    "RUN": {"mount": True, "network": True, "security": True},
    "COPY": {"from": True, "chown": True, "chmod": True, "link": False},
    "ADD": {"chown": True, "chmod": True, "link": False, "checksum": True},
    "HEALTHCHECK": {"interval": True, "timeout": True, "start-period": True,
                    "start-interval": True, "retries": True},
}
REPEATABLE = {("RUN", "mount")}  # the others given twice are an error, as in BuildKit
NOT_YET = {
    ("COPY", "parents"): "COPY --parents (BuildKit labs) is not supported; copy each tree",
    ("COPY", "exclude"): "COPY --exclude (BuildKit labs) is not supported; use .dockerignore",
    ("ADD", "exclude"): "ADD --exclude (BuildKit labs) is not supported; use .dockerignore",
    ("ADD", "keep-git-dir"): "ADD of git repositories is not supported",
    ("ADD", "unpack"): "ADD --unpack is not supported; local archives are unpacked, URLs never",
}


def where(df: Dockerfile, node: Node) -> str:
    return f"{df.path}:{node.start_line}: {node.keyword}"


def flags(df: Dockerfile, node: Node) -> Dict[str, Optional[str]]:
    """The node's flags by name: the value, or None for a boolean flag given bare."""
    known = FLAGS.get(node.keyword, {})
    out: Dict[str, Optional[str]] = {}
    for raw in node.flags:
        name, sep, value = raw[2:].partition("=")
        if (node.keyword, name) in NOT_YET:
            raise OciBuildError(f"{where(df, node)}: {NOT_YET[node.keyword, name]}")
        if name not in known:
            listed = ", ".join(f"--{f}" for f in known) or "none"
            raise OciBuildError(f"{where(df, node)}: unknown flag --{shown(name)} (known: "
                                f"{listed})")
        if name in out and (node.keyword, name) not in REPEATABLE:
            raise OciBuildError(f"{where(df, node)}: --{name} is given twice")
        if known[name] and not sep:
            raise OciBuildError(f"{where(df, node)}: --{name} needs a value: --{name}=VALUE")
        if not known[name] and sep and value not in ("true", "false"):
            raise OciBuildError(f"{where(df, node)}: --{name} is true or false, not "
                                f"{shown(value)}")
        out[name] = value if sep else None
    return out


def check(df: Dockerfile, node: Node, in_onbuild: bool = False) -> None:
    """Refuse what cannot be honoured, before the build starts (so nothing is half-built)."""
    if node.keyword not in KNOWN:
        raise OciBuildError(f"{df.path}:{node.start_line}: unknown instruction "
                            f"{shown(node.keyword)}")
    opts = flags(df, node)
    if node.keyword == "RUN":
        from ocibuild.dockerfile.run import check_flags

        from ocibuild.dockerfile.run import check_heredocs

        from ocibuild.dockerfile import mounts

        check_flags(opts, where(df, node))
        check_heredocs(node, where(df, node))
        for value in mounts.values(node.flags):  # expanded when the step runs
            mounts.parse(value, "/", lambda text: text, where(df, node))
    if node.keyword == "ONBUILD":
        if node.sub is None:
            raise OciBuildError(f"{where(df, node)}: ONBUILD needs an instruction")
        if node.sub.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise OciBuildError(f"{where(df, node)}: ONBUILD {node.sub.keyword} is not allowed")
        if node.sub.keyword not in KNOWN:
            raise OciBuildError(f"{where(df, node)}: unknown instruction "
                                f"{shown(node.sub.keyword)}")
        flags(df, node.sub)  # kept for the images built on this one; RUN there is theirs
    if node.keyword in ("COPY", "ADD") and len(node.args) < 2:
        raise OciBuildError(f"{where(df, node)}: needs a source and a destination, e.g. "
                            f"{node.keyword} app/ /app/")
    if node.keyword == "SHELL" and not node.json:
        raise OciBuildError(f"{where(df, node)}: SHELL takes a JSON array, e.g. "
                            '["/bin/bash", "-c"]')
    if node.keyword == "HEALTHCHECK":
        kind = node.args[0].upper() if node.args else ""
        if kind not in ("NONE", "CMD"):
            raise OciBuildError(f"{where(df, node)}: HEALTHCHECK takes NONE or CMD ..., not "
                                f"{shown(kind or '(nothing)')}")
        if kind == "NONE" and (len(node.args) > 1 or node.flags):
            raise OciBuildError(f"{where(df, node)}: HEALTHCHECK NONE takes no arguments")
        if kind == "CMD" and len(node.args) < 2:
            raise OciBuildError(f"{where(df, node)}: HEALTHCHECK CMD needs a command")
    if node.keyword in ("WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER") and not node.args:
        raise OciBuildError(f"{where(df, node)}: needs an argument")


def boolean(value: Optional[str]) -> bool:
    return value is None or value == "true"


def onbuild_expression(node: Node) -> str:
    """What docker keeps in OnBuild: the instruction after ONBUILD, as written."""
    assert node.sub is not None
    return node.original.strip()[len("ONBUILD"):].strip()


__all__: Tuple[str, ...] = ("FLAGS", "check", "flags", "where", "boolean")
