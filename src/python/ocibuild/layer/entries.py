"""The entries of a layer, collected from files on disk under a fixed metadata policy.

A mapping `(source, dest)` or `(source, dest, mode)` puts a file at `dest`, or a directory's
contents under `dest` (walked recursively, symlinks never followed). `dest` "/" maps a
directory's contents to the image root.

Policy. Why: a layer's digest must depend on the content alone, never on the umask, the git
checkout (which records only the execute bit), the build user, the checkout path or the clock.
* owner uid/gid 0 with empty user/group names, whoever owns the files on disk;
* regular files 0755 if executable, else 0644; directories 0755; symlinks 0777; an explicit
  mapping mode overrides for the files of that mapping. "Executable" is what the caller's
  file store says of each file when it says (`executables`: Pants' `is_executable`), else any
  execute bit on disk. Why: a Pants sandbox's modes are not the digest's. Pants 2.17 keeps
  files of 512 KiB and more (`LARGE_FILE_SIZE_LIMIT`, fs/store/src/local.rs) as files of
  mode 0555 in its store and hardlinks them into local sandboxes (`materialize_directory`
  in fs/store/src/lib.rs: a hardlink shares the store file's mode, whatever `is_executable`
  says), while smaller files and a remote worker's files get 0755 or 0644 from
  `is_executable`. Taken from disk, a 600 KiB zip would be 0755 built here and 0644 built
  remotely or restored from a cache: other digests;
* every parent directory is an explicit entry (runtimes otherwise invent missing ones, with
  modes that differ between tools);
* entries de-duplicated and sorted by path components in UTF-8 byte order, which puts
  parents before children and does not depend on directory listing order;
* symlinks are kept as links; see `symlinks.py` for which targets are allowed;
* hard links are not preserved by default (`preserve_hardlinks=False`): Pants may
  materialize identical files as hard links to one store file, and that must not change
  the layer's bytes;
* devices, FIFOs and sockets are refused: a layer built without privilege cannot carry them;
* whiteout names (`.wh.*`) are refused in every path and link target (`whiteouts.py`): a
  layer of inputs must never delete or hide the files of the layers below.
"""

from __future__ import annotations

import filecmp
import os
import posixpath
import stat
from dataclasses import dataclass, replace
from typing import AbstractSet, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.layer.symlinks import check_symlinks
from ocibuild.layer.whiteouts import whiteout_component
from ocibuild.untrusted import os_reason

FILE, DIR, SYMLINK, HARDLINK = "file", "dir", "symlink", "hardlink"
# Only layers diffed from a RUN step's tree (ocibuild.rootfs) hold these; collect_entries
# refuses them.
CHARDEV, BLOCKDEV, FIFO = "chardev", "blockdev", "fifo"


@dataclass(frozen=True)
class LayerEntry:
    path: str  # relative POSIX path inside the image: no leading "/", no "." or ".."
    kind: str  # FILE, DIR, SYMLINK or HARDLINK
    source: Optional[str] = None  # the file on disk whose bytes are written (FILE only)
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    link_target: Optional[str] = None  # SYMLINK: verbatim target; HARDLINK: an entry path
    size: int = 0
    # The three below are for ocibuild.rootfs (RUN-step layers); their defaults leave the
    # bytes of every other layer as they were.
    mtime: Optional[int] = None  # None: write_tar's mtime
    device: Tuple[int, int] = (0, 0)  # (major, minor) of a CHARDEV or BLOCKDEV
    xattrs: Tuple[Tuple[str, bytes], ...] = ()  # sorted (name, value): SCHILY.xattr records


@dataclass(frozen=True)
class ModePolicy:
    file: int = 0o644
    executable: int = 0o755
    directory: int = 0o755
    symlink: int = 0o777

    def for_file(self, st_mode: int) -> int:
        return self.executable if st_mode & 0o111 else self.file

    def for_flag(self, is_executable: bool) -> int:
        return self.executable if is_executable else self.file


DEFAULT_MODE_POLICY = ModePolicy()


@dataclass(frozen=True)
class Mapping:
    source: str
    dest: str  # normalized; "" is the image root (directories only)
    mode: Optional[int] = None


def parse_mapping(raw: Sequence) -> Mapping:
    if len(raw) not in (2, 3):
        raise OciBuildError(f"mapping {tuple(raw)!r}: must be (source, dest) or "
                            "(source, dest, mode), e.g. ('dist/app.pex', 'app/app.pex')")
    source, dest = str(raw[0]), str(raw[1])
    mode = raw[2] if len(raw) == 3 else None
    if mode is not None and (isinstance(mode, bool) or not isinstance(mode, int)
                             or not 0 <= mode <= 0o7777):
        raise OciBuildError(f"mapping {source!r} -> {dest!r}: mode {mode!r} must be an "
                            "integer from 0 to 0o7777, e.g. 0o755 (493)")
    parts = [p for p in dest.split("/") if p not in ("", ".")]
    if ".." in parts or "\0" in dest:
        raise OciBuildError(f"destination {dest!r} (for {source!r}): must be a path inside "
                            "the image without '..', e.g. \"app/app.pex\"")
    return Mapping(source, "/".join(parts), mode)


def _utf8(path: str, source: str) -> None:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise OciBuildError(f"file name {source!r} is not valid UTF-8, which tar headers "
                            "need; rename it") from None


def _no_whiteout(path: str, source: str, what: str) -> None:
    name = whiteout_component(path)
    if name is not None:
        raise OciBuildError(
            f"{source!r} would put {what} {path!r} in the layer, and {name!r} is a whiteout "
            "name (.wh.*): unpacking the layer would delete or hide files of the image below "
            "instead of writing this one. Rename it, or leave it out of the layer's inputs")


@dataclass(frozen=True)
class _Modes:
    """How one mapping's files get their mode."""

    policy: ModePolicy
    mode: Optional[int]  # the mapping's own mode, for all its files
    executables: Optional[AbstractSet[str]]  # normalized source paths; None: ask the disk

    def of_file(self, source: str, st: os.stat_result) -> int:
        if self.mode is not None:
            return self.mode
        if self.executables is None:
            return self.policy.for_file(st.st_mode)
        return self.policy.for_flag(os.path.normpath(source) in self.executables)


def _entry(source: str, st: os.stat_result, dest: str, modes: _Modes) -> LayerEntry:
    _utf8(dest, source)
    _no_whiteout(dest, source, "the path")
    policy = modes.policy
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(source)
        _utf8(target, source)
        _no_whiteout(target, source, "the symlink target")
        return LayerEntry(dest, SYMLINK, mode=policy.symlink, link_target=target)
    if stat.S_ISDIR(st.st_mode):
        return LayerEntry(dest, DIR, mode=policy.directory)
    if stat.S_ISREG(st.st_mode):
        return LayerEntry(dest, FILE, source=source, mode=modes.of_file(source, st),
                          size=st.st_size)
    raise OciBuildError(f"{source!r} is a device, FIFO or socket; a layer holds only files, "
                        "directories and symlinks: remove it from the input")


def _walk(mapping: Mapping,
          modes: _Modes) -> Iterator[Tuple[LayerEntry, str, os.stat_result]]:
    """(entry, source path, lstat) for the mapping, never following symlinks."""
    try:
        st = os.lstat(mapping.source)
    except FileNotFoundError:
        raise OciBuildError(f"layer input {mapping.source!r} does not exist") from None
    if not stat.S_ISDIR(st.st_mode) and not mapping.dest:
        raise OciBuildError(f"{mapping.source!r} is not a directory, so it cannot be mapped to "
                            "the image root; give it a file path, e.g. \"app/app.pex\"")
    if mapping.dest:
        yield _entry(mapping.source, st, mapping.dest, modes), mapping.source, st
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [(mapping.source, mapping.dest)]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as listing:
            for item in listing:
                child = item.stat(follow_symlinks=False)
                dest = f"{prefix}/{item.name}" if prefix else item.name
                yield _entry(item.path, child, dest, modes), item.path, child
                if stat.S_ISDIR(child.st_mode):
                    stack.append((item.path, dest))


def _same(a: LayerEntry, b: LayerEntry) -> bool:
    if replace(a, source=None) != replace(b, source=None):
        return False
    return a.kind != FILE or a.source == b.source or filecmp.cmp(a.source, b.source, shallow=False)


class _Collected:
    """Entries by image path, remembering which source each came from (for messages)."""

    def __init__(self) -> None:
        self.entries: Dict[str, LayerEntry] = {}
        self.origins: Dict[str, str] = {}
        self.inodes: Dict[str, Tuple[int, int]] = {}

    def add(self, entry: LayerEntry, origin: str, st: os.stat_result) -> None:
        previous = self.entries.get(entry.path)
        if previous is not None:
            if _same(previous, entry):
                return
            raise OciBuildError(
                f"both {self.origins[entry.path]!r} and {origin!r} would be written to "
                f"/{entry.path} with different content; map them to different paths or drop one"
            )
        self.entries[entry.path] = entry
        self.origins[entry.path] = origin
        if entry.kind == FILE and st.st_nlink > 1:
            self.inodes[entry.path] = (st.st_dev, st.st_ino)

    def add_parents(self, policy: ModePolicy) -> None:
        for path in list(self.entries):
            parent = posixpath.dirname(path)
            while parent and parent not in self.entries:
                self.entries[parent] = LayerEntry(parent, DIR, mode=policy.directory)
                parent = posixpath.dirname(parent)
            if parent and self.entries[parent].kind != DIR:
                raise OciBuildError(
                    f"/{parent} (from {self.origins[parent]!r}) is not a directory, but "
                    f"/{path} (from {self.origins[path]!r}) would be written inside it; "
                    "map one of them elsewhere"
                )


def _sort_key(entry: LayerEntry) -> bytes:
    """Path components in UTF-8 byte order: the path's bytes with "/" as the lowest byte
    (a path holds no NUL), so "a/b" sorts before "a-b" and "a.txt", right after "a"."""
    return entry.path.encode("utf-8").replace(b"/", b"\0")


def _hardlinked(entries: List[LayerEntry], inodes: Dict[str, Tuple[int, int]]) -> List[LayerEntry]:
    """Files sharing an inode become hard links to the first of them in sort order."""
    first: Dict[Tuple[int, int], str] = {}
    out = []
    for entry in entries:
        key = inodes.get(entry.path)
        if key is None or first.setdefault(key, entry.path) == entry.path:
            out.append(entry)
        else:
            out.append(replace(entry, kind=HARDLINK, source=None, size=0,
                               link_target=first[key]))
    return out


def owned_by(entries: Iterable[LayerEntry], uid: int, gid: int,
             roots: Iterable[str]) -> List[LayerEntry]:
    """`uid:gid` for every entry at or under one of `roots` (the mappings' destinations).

    Parent directories the layer only creates (`/etc` for `/etc/app/...`) stay root's, so the
    layer does not change who owns them in the image below it."""
    roots = [r for r in roots if r]
    def mine(path: str) -> bool:
        return any(path == r or path.startswith(r + "/") for r in roots)
    return [replace(e, uid=uid, gid=gid) if mine(e.path) else e for e in entries]


def collect_entries(mappings: Iterable[Sequence], *, mode_policy: ModePolicy = DEFAULT_MODE_POLICY,
                    preserve_hardlinks: bool = False, allow_absolute_symlinks: bool = True,
                    executables: Optional[Iterable[str]] = None) -> List[LayerEntry]:
    """The sorted, de-duplicated entries of a layer made of `mappings` (see the module doc).

    `executables`: the source paths of the files that are executable, as the caller's file
    store records them; every other file is not, whatever its mode on disk. None: each
    file's execute bit on disk decides (a checkout, where git records exactly that bit)."""
    marked = None if executables is None else frozenset(map(os.path.normpath, executables))
    collected = _Collected()
    for mapping in map(parse_mapping, mappings):
        modes = _Modes(mode_policy, mapping.mode, marked)
        links: Dict[str, str] = {}
        sources: Dict[str, str] = {}
        try:
            for entry, origin, st in _walk(mapping, modes):
                collected.add(entry, origin, st)
                if entry.kind == SYMLINK:
                    links[entry.path], sources[entry.path] = entry.link_target, origin
        except OSError as err:  # e.g. a directory without read permission
            path = err.filename if isinstance(err.filename, str) else mapping.source
            raise OciBuildError(f"cannot read the layer input {path!r}: "
                                f"{os_reason(err)}") from None
        # A lone link may point anywhere in the image; a directory's links stay inside it.
        lone_link = os.path.islink(mapping.source)
        check_symlinks(links, sources, root="" if lone_link else mapping.dest,
                       root_source=mapping.source, allow_absolute=allow_absolute_symlinks)
    collected.add_parents(mode_policy)
    entries = sorted(collected.entries.values(), key=_sort_key)
    return _hardlinked(entries, collected.inodes) if preserve_hardlinks else entries
