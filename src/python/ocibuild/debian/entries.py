"""Whether a layer's entries are consistent: the one check every Debian layer passes.

An extractor that follows symlinks on disk (`tar -x`, Python's tarfile, many scanners) and
unpacks the layers in order writes outside its root when an entry lies under a symlink, or
lands on one: a symlink `usr/lib/evil -> /etc` then `usr/lib/evil/passwd`. So, for the
package layers, the layers of several packages and the config layer alike (`LayerEntries`):

* no entry lies under a symlink of the same layer or of a layer below it;
* no entry but a symlink takes the place of a symlink of a layer below (a file written
  there would be written through it);
* no path is written twice in a layer as different kinds (a directory may repeat; a regular
  file may, the later one winning, as two layers would stack them);
* a hardlink names a regular file written before it by the same package;
* no path component is a whiteout (`.wh.*`, `.wh..wh..opq`: an unpacker deletes lower
  layers' files for it and scanners hide them; a layer built from files is not a diff) and
  no name holds a control character (NUL ends a name in C, a newline splits listings).

Names are relative paths, normalised by the caller (no `.`, `..` or empty components).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Set, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

DIR, FILE, SYMLINK, HARDLINK = "d", "f", "l", "h"
KIND_NAMES = {DIR: "directory", FILE: "regular file", SYMLINK: "symlink", HARDLINK: "hardlink"}
WHITEOUT = ".wh."
Below = Mapping[str, Tuple[str, str]]  # path -> (kind, who wrote it) in the layers below


def check_name(name: str, source: str, raw: str) -> None:
    """Refuse a whiteout component or a control character in `name` (`raw` as given)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise OciBuildError(f"{source}: the name {shown(raw)} holds a control character; "
                            "refusing a name that tools read differently")
    whiteout = next((p for p in name.split("/") if p.startswith(WHITEOUT)), None)
    if whiteout is not None:
        raise OciBuildError(f"{source}: {shown(raw)} is a whiteout ({shown(whiteout)}): "
                            "unpacked, it would delete files of the layers below and hide "
                            "them from scanners; refusing it in a layer that is not a diff")


def ancestors(path: str):
    parts = path.split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


class LayerEntries:
    """The entries of one layer so far, over the layers `below` it.

    `source` names who writes the next entries (a .deb, "the config layer"); a layer of
    several packages calls `start` for each, so that messages name the package and
    hardlinks stay within it."""

    def __init__(self, source: str, below: Optional[Below] = None) -> None:
        self.source = source
        self.below: Below = below if below is not None else {}
        self.kinds: Dict[str, str] = {}
        self.owners: Dict[str, str] = {}  # name -> the source that wrote it first
        # Directories that entries lie under but no entry names (an extractor makes them):
        # a later symlink or file there is a second kind for the same path.
        self.implicit: Dict[str, str] = {}
        self.regular: Set[str] = set()  # regular files of the current source

    def start(self, source: str) -> None:
        self.source = source
        self.regular = set()

    def _symlink(self, path: str) -> Optional[str]:
        """Where `path` is a symlink, said for a message (None: it is not one)."""
        if self.kinds.get(path) == SYMLINK:
            owner = self.owners[path]
            return "earlier in the package" if owner == self.source else \
                f"of {owner}, earlier in the layer"
        kind, owner = self.below.get(path, ("", ""))
        return f"of {owner}, in a layer below" if kind == SYMLINK else None

    def admit(self, name: str, kind: str, *, linkname: str = "", raw: str = "",
              raw_linkname: str = "") -> bool:
        """Whether to write the entry (False: a repeated directory, to skip); an error when
        it would make the layers inconsistent. `linkname`: a hardlink's target, normalised;
        `raw`, `raw_linkname`: the name and target as the input gave them, for messages."""
        raw = raw or name
        check_name(name, self.source, raw)
        for directory in ancestors(name):
            where = self._symlink(directory)
            if where is not None:
                raise OciBuildError(f"{self.source}: {shown(raw)} lies under "
                                    f"{shown(directory)}, a symlink {where}; refusing a path "
                                    "that escapes through a symlink")
        earlier = self.kinds.get(name)
        if earlier is not None:
            if earlier == DIR and kind == DIR:
                return False
            if not (earlier == FILE and kind == FILE):
                owner = self.owners[name]
                also = "" if owner == self.source else \
                    f" (first in {owner}, earlier in the layer)"
                raise OciBuildError(f"{self.source}: {shown(raw)} appears twice as different "
                                    f"kinds of entry (or as a link){also}; refusing an archive "
                                    "whose result depends on the extractor")
        elif name in self.implicit and kind != DIR:
            owner = self.implicit[name]
            by = "the package" if owner == self.source else owner
            raise OciBuildError(f"{self.source}: {shown(raw)} is a {KIND_NAMES[kind]}, but "
                                f"{by} wrote entries under it earlier in the layer; refusing "
                                "an archive whose result depends on the extractor")
        below_kind, below_owner = self.below.get(name, ("", ""))
        if below_kind == SYMLINK and kind != SYMLINK:
            raise OciBuildError(f"{self.source}: {shown(raw)} would replace a symlink of "
                                f"{below_owner}, in a layer below, with a {KIND_NAMES[kind]}; "
                                "an extractor would write through the link")
        if kind == HARDLINK:
            check_name(linkname, self.source, raw_linkname or linkname)
            if linkname not in self.regular:
                raise OciBuildError(f"{self.source}: {shown(raw)} is a hardlink to "
                                    f"{(raw_linkname or linkname)!r}, which is not a regular file earlier in the "
                                    "package")
        self.owners.setdefault(name, self.source)
        self.kinds[name] = kind
        for directory in ancestors(name):
            if directory not in self.kinds:
                self.implicit.setdefault(directory, self.source)
        if kind == FILE:
            self.regular.add(name)
        return True


class OthersSymlinks(Mapping):
    """The symlinks of every package of a set but `me`, as a `Below`: for checking a
    package against all the others whatever the order of their layers."""

    def __init__(self, symlinks: Mapping[str, Tuple[str, ...]], me: str) -> None:
        self._symlinks, self._me = symlinks, me

    def __getitem__(self, path: str) -> Tuple[str, str]:
        owner = next((o for o in self._symlinks[path] if o != self._me), None)
        if owner is None:
            raise KeyError(path)
        return SYMLINK, owner

    def __iter__(self):
        return iter(self._symlinks)

    def __len__(self) -> int:
        return len(self._symlinks)


def check_set(packages: Mapping[str, Mapping[str, str]], below: Below) -> None:
    """The packages of an image, each `{path: kind}` in its order, checked as if each one's
    layer lay over all the others' (which layer is above which is the grouping's choice):
    no package's path lies under, or takes the place of, another package's symlink (or one
    of `below`, the root layer)."""
    symlinks: Dict[str, Tuple[str, ...]] = {}
    for source in sorted(packages):
        for path, kind in packages[source].items():
            if kind == SYMLINK:
                symlinks[path] = symlinks.get(path, ()) + (source,)
    for source in sorted(packages):
        others = OthersSymlinks(symlinks, source)
        entries = LayerEntries(source, _Chain(others, below))
        for path, kind in packages[source].items():
            # Hardlinks were checked in the package's own layer; here they are files.
            entries.admit(path, FILE if kind == HARDLINK else kind)


class _Chain(Mapping):
    """`first`, then `second`, as one `Below`."""

    def __init__(self, first: Below, second: Below) -> None:
        self._first, self._second = first, second

    def __getitem__(self, path: str) -> Tuple[str, str]:
        try:
            return self._first[path]
        except KeyError:
            return self._second[path]

    def __iter__(self):
        return iter({**dict.fromkeys(self._first), **dict.fromkeys(self._second)})

    def __len__(self) -> int:
        return len(list(iter(self)))
