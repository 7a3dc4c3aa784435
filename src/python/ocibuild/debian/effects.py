"""What maintainer scripts would have done that programs rely on, without running them.

The config layer (`layers.write_config_layer`) writes these, computed from the .debs alone:

* `update-alternatives` links: every `update-alternatives --install LINK NAME PATH PRIORITY
  [--slave LINK NAME PATH]...` in a package's postinst, the highest priority winning each
  NAME as dpkg's auto mode does (ties: the first package by name). As dpkg does, LINK becomes
  a symlink to `/etc/alternatives/NAME`, which links to PATH; an alternative whose PATH no
  package ships is not made (dpkg refuses it), nor is a slave whose PATH is missing, nor a
  LINK that a package ships as a file (dpkg does not replace it). A command holding shell
  expansions (`$VAR`, backquotes) or redirecting dpkg's directories (`--altdir`,
  `--admindir`, `--root`) cannot be evaluated without running the script and is skipped.
* tzdata: `/etc/localtime` -> `/usr/share/zoneinfo/Etc/UTC` and, when tzdata's postinst
  writes it on a fresh install (bookworm; trixie only updates an existing one),
  `/etc/timezone` (`Etc/UTC`): what the postinst does with debconf's defaults.
* netbase (trixie on): `/etc/hosts` and `/etc/networks`, which its postinst writes from
  here-documents on a fresh install (only those two paths are taken from the script).
* `/etc/os-release`: shipped by base-files when it is in the set; otherwise generated from
  the suite (`/usr/lib/os-release` and the `/etc/os-release` link, as base-files lays them
  out), so scanners and programs can tell what the image is.

Script text is untrusted: an alternative's LINK, NAME or PATH that is not an absolute path
without `..` (LINK, PATH) or a plain name (NAME), or a LINK under a directory that a package
ships as a symlink, is an error naming the .deb: nothing here may lead a writer outside the
image's root.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

ALTERNATIVES_DIR = "etc/alternatives"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+@-]{0,254}")
_PRIORITY = re.compile(r"-?[0-9]{1,9}")
_SUITE = re.compile(r"[a-z][a-z0-9.-]{0,63}")
_SKIP_OPTIONS = {"--altdir", "--admindir", "--root", "--instdir", "--log"}
# Debian's release numbers, for os-release when base-files is not in the set.
RELEASES = {"buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}
ZONEINFO_UTC = "/usr/share/zoneinfo/Etc/UTC"


class PackagePath(NamedTuple):
    """An entry of a package's data.tar, as the image will hold it."""
    kind: str  # "d", "f" or "l"
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str


@dataclass(frozen=True)
class Alternative:
    deb: str
    name: str
    link: str  # relative to the root, merged-/usr applied
    path: str  # absolute, as the script gives it (normalised)
    priority: int
    slaves: Tuple[Tuple[str, str, str], ...]  # (link, name, path)


def _commands(script: str) -> List[List[str]]:
    """The `update-alternatives` command lines of a shell script, as words."""
    joined = re.sub(r"\\\r?\n", " ", script)
    commands = []
    for line in joined.splitlines():
        if "update-alternatives" not in line:
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            words = list(lexer)
        except ValueError:  # an unclosed quote: a line only a shell could make sense of
            continue
        current: List[str] = []
        for word in words + [";"]:
            if word and set(word) <= set(";&|()<>"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(word)
    found = []
    for command in commands:  # from the program's name on: `then`, `env X=1` drop out
        at = next((i for i, w in enumerate(command)
                   if w.rsplit("/", 1)[-1] == "update-alternatives"), None)
        if at is not None:
            found.append(command[at:])
    return found


def _absolute(value: str, deb: str, command: str, what: str) -> str:
    from ocibuild.debian.layers import _normalize, merged_usr

    if not value.startswith("/"):
        raise OciBuildError(f"{deb}: postinst: `{shown(command)}`: the {what} {shown(value)} is "
                            "not an absolute path; refusing an alternative that would not land "
                            "where dpkg puts it")
    path = merged_usr(_normalize(value, deb, f"alternative {what}"))
    if not path:
        raise OciBuildError(f"{deb}: postinst: `{shown(command)}`: the {what} is the root")
    return path


def _name(value: str, deb: str, command: str) -> str:
    if not _NAME.fullmatch(value):
        raise OciBuildError(f"{deb}: postinst: `{shown(command)}`: the alternative name "
                            f"{shown(value)} is not a plain name (letters, digits, `_.+@-`, no "
                            "`/`); it becomes a file name under /etc/alternatives")
    return value


def parse_alternatives(script: str, deb: str) -> List[Alternative]:
    """Every `update-alternatives --install` of a postinst that can be read without a shell."""
    found = []
    for words in _commands(script):
        command = " ".join(words)
        args = words[1:]
        if "--install" not in args or any(w in _SKIP_OPTIONS or "$" in w or "`" in w
                                          for w in args):
            continue
        i = args.index("--install")
        if len(args) < i + 5:
            raise OciBuildError(f"{deb}: postinst: `{shown(command)}`: --install needs LINK NAME "
                                "PATH PRIORITY")
        link, name, path, priority = args[i + 1:i + 5]
        if not _PRIORITY.fullmatch(priority):
            raise OciBuildError(f"{deb}: postinst: `{shown(command)}`: the priority "
                                f"{shown(priority)} is not a whole number")
        slaves = []
        rest = args[i + 5:]
        while rest:
            if rest[0] != "--slave":
                rest = rest[1:]  # another option (--quiet, --force...): no effect on links
                continue
            if len(rest) < 4:
                raise OciBuildError(f"{deb}: postinst: `{shown(command)}`: --slave needs LINK "
                                    "NAME PATH")
            slaves.append((_absolute(rest[1], deb, command, "slave link"),
                           _name(rest[2], deb, command),
                           "/" + _absolute(rest[3], deb, command, "slave path")))
            rest = rest[4:]
        found.append(Alternative(deb, _name(name, deb, command),
                                 _absolute(link, deb, command, "link"),
                                 "/" + _absolute(path, deb, command, "path"), int(priority),
                                 tuple(slaves)))
    return found


def choose(alternatives: Sequence[Alternative]) -> List[Alternative]:
    """dpkg's auto mode: per NAME, the highest priority; on a tie the first one given."""
    best: Dict[str, Alternative] = {}
    for alt in alternatives:
        if alt.name not in best or alt.priority > best[alt.name].priority:
            best[alt.name] = alt
    return [best[name] for name in sorted(best)]


def _under_symlink(path: str, paths: Mapping[str, PackagePath]) -> Optional[str]:
    parts = path.split("/")
    return next((d for d in ("/".join(parts[:i]) for i in range(1, len(parts)))
                 if d in paths and paths[d].kind == "l"), None)


def check_not_under_symlink(path: str, paths: Mapping[str, PackagePath], why: str) -> None:
    through = _under_symlink(path, paths)
    if through is not None:
        raise OciBuildError(f"{why}: /{path} lies under /{through}, which a package ships as a "
                            "symlink; refusing to write through it (it could lead outside the "
                            "image's root)")


def alternative_links(alternatives: Sequence[Alternative],
                      paths: Mapping[str, PackagePath]) -> List[Tuple[str, str]]:
    """(link path, target) symlinks for the chosen alternatives, as dpkg makes them."""
    links: List[Tuple[str, str]] = []
    for alt in choose(alternatives):
        if alt.path.lstrip("/") not in paths:
            continue  # "alternative path doesn't exist": dpkg makes nothing
        group = [(alt.link, alt.name, alt.path)] + [
            s for s in alt.slaves if s[2].lstrip("/") in paths]
        for link, name, target in group:
            why = f"{alt.deb}: postinst: the alternative {name}"
            check_not_under_symlink(link, paths, why)
            existing = paths.get(link)
            if existing is not None and existing.kind != "l":
                continue  # dpkg: "not replacing LINK with a link"
            links.append((link, f"/{ALTERNATIVES_DIR}/{name}"))
            links.append((f"{ALTERNATIVES_DIR}/{name}", target))
    return links


def os_release(suite: str) -> bytes:
    """/usr/lib/os-release as base-files of that release writes it."""
    if not _SUITE.fullmatch(suite):
        raise OciBuildError(f"the suite {shown(suite)} is not a Debian suite name")
    number = RELEASES.get(suite)
    lines = []
    if number:
        lines += [f'PRETTY_NAME="Debian GNU/Linux {number} ({suite})"',
                  'NAME="Debian GNU/Linux"', f'VERSION_ID="{number}"',
                  f'VERSION="{number} ({suite})"', f"VERSION_CODENAME={suite}"]
    else:  # testing, sid, or an alias: base-files there says no number either
        lines += ['PRETTY_NAME="Debian GNU/Linux"', 'NAME="Debian GNU/Linux"']
        if suite not in ("stable", "oldstable", "testing", "unstable", "sid"):
            lines.append(f"VERSION_CODENAME={suite}")
    lines += ["ID=debian", 'HOME_URL="https://www.debian.org/"',
              'SUPPORT_URL="https://www.debian.org/support"',
              'BUG_REPORT_URL="https://bugs.debian.org/"']
    return ("\n".join(lines) + "\n").encode()


def writes_etc_timezone(tzdata_postinst: bytes) -> bool:
    """Whether this tzdata's postinst writes /etc/timezone on a fresh install. Later
    releases (trixie) only update one that exists (`if test -f .../etc/timezone`)."""
    writes = re.search(rb'>\s*"?(?:\$\{?DPKG_ROOT\}?)?/etc/timezone\b', tzdata_postinst)
    only_if_there = re.search(rb'(?:test|\[)\s+-[ef]\s+"?(?:\$\{?DPKG_ROOT\}?)?/etc/timezone\b',
                              tzdata_postinst)
    return writes is not None and only_if_there is None


# netbase (trixie on) creates these in postinst when absent instead of shipping them.
NETBASE_FILES = ("etc/hosts", "etc/networks")


def netbase_files(postinst: bytes) -> List[Tuple[str, bytes]]:
    """The files netbase's postinst writes on a fresh install, read from its here-documents
    (`cat > /etc/hosts <<-EOF ... EOF`, leading tabs stripped as `<<-` does). Only the two
    paths netbase is known to write are taken: script text chooses no path here."""
    found = []
    text = postinst.decode("utf-8", "replace")
    for path in NETBASE_FILES:
        match = re.search(rf"cat\s*>\s*/{re.escape(path)}\s*<<(-?)\s*'?(\w+)'?\n(.*?)\n\2\n",
                          text, re.S)
        if match:
            body = match.group(3) + "\n"
            if match.group(1):
                body = "\n".join(line.lstrip("\t") for line in body.split("\n"))
            found.append((path, body.encode()))
    return found
