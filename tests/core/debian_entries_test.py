"""A Debian layer's entries are consistent, in every layer the debian code writes.

No whiteout and no control character in a name, no path under (or in place of) a symlink
of the same layer or a layer below, no path twice as different kinds: checked by one
checker (`ocibuild.debian.entries`) for package layers, layers of several packages, the set
of all packages of an image, and the config layer. Hostile .debs are written with the
standard library (tests/fixtures/debian_repo.py); the checker is also fed a generated family
of entry sequences and compared with a model extractor that follows links.
"""

from __future__ import annotations

import gzip
import io
import itertools
import lzma
import tarfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocibuild.debian import layers
from ocibuild.debian.entries import (DIR, FILE, HARDLINK, SYMLINK, LayerEntries, ancestors,
                                     check_set)
from ocibuild.errors import OciBuildError
from tests.fixtures.debian_repo import TarSpec, ar_archive, hand_made_deb, tar_bytes


def _layer(debs: Sequence[Path]) -> Dict[str, tarfile.TarInfo]:
    buffer = io.BytesIO()
    layers.write_packages_layer([str(d) for d in debs], buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        return {m.name: m for m in tar}


def _config(debs: Sequence[Path]) -> Dict[str, tarfile.TarInfo]:
    buffer = io.BytesIO()
    layers.write_config_layer(buffer, debs=[str(d) for d in debs])
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        return {m.name: m for m in tar}


def _pax_tar(entries: Sequence[Tuple[str, str, Dict[str, str]]]) -> bytes:
    """A PAX tar of (kind, header name, pax records): records such as `path` override
    the name in the header, as every reader applies them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, pax in entries:
            info = tarfile.TarInfo(name)
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE,
                         "hardlink": tarfile.LNKTYPE}[kind]
            info.pax_headers = dict(pax)
            info.linkname = pax.get("linkpath", "")
            tar.addfile(info, io.BytesIO(b"") if kind == "file" else None)
    return buffer.getvalue()


def _pax_deb(path: Path, entries) -> Path:
    return hand_made_deb(path, [], data_member=("data.tar.xz", lzma.compress(_pax_tar(entries))))


# --- whiteouts and control characters -------------------------------------------------------

WHITEOUT = ("is a whiteout ({what}): unpacked, it would delete files of the layers below and "
            "hide them from scanners; refusing it in a layer that is not a diff")


@pytest.mark.parametrize("data,name,what", [
    ([("file", "./usr/share/.wh.passwd", "")], "./usr/share/.wh.passwd", ".wh.passwd"),
    ([("dir", "./etc/", ""), ("file", "./etc/.wh..wh..opq", "")], "./etc/.wh..wh..opq",
     ".wh..wh..opq"),
    ([("dir", "./.wh.etc/", "")], "./.wh.etc", ".wh.etc"),  # tarfile drops the slash
    ([("dir", "./.wh./", "")], "./.wh.", ".wh."),
    ([("file", "./usr/.wh.x/y", "")], "./usr/.wh.x/y", ".wh.x"),
    ([("file", "./usr/bin/t", "x"), ("hardlink", "./usr/bin/.wh.t", "./usr/bin/t")],
     "./usr/bin/.wh.t", ".wh.t"),
    ([("file", "./usr/share/" + "d" * 120 + "/.wh.passwd", "")],  # a GNU longname member
     "./usr/share/" + "d" * 120 + "/.wh.passwd", ".wh.passwd"),
    ([("symlink", "./bin/.wh.sh", "dash")], "./bin/.wh.sh", ".wh.sh"),
], ids=["file", "opaque", "dir", "bare-prefix-trailing-slash", "under-a-whiteout-dir",
        "hardlink", "gnu-longname", "merged-usr-symlink"])
def test_whiteouts_in_a_deb_are_refused(tmp_path: Path, data: List[TarSpec], name: str,
                                        what: str) -> None:
    deb = hand_made_deb(tmp_path / "w.deb", data)
    with pytest.raises(OciBuildError) as err:
        _layer([deb])
    assert str(err.value) == f"{deb}: {name} " + WHITEOUT.format(what=what)


def test_a_pax_path_cannot_rename_a_member_to_a_whiteout_or_out_of_the_root(
        tmp_path: Path) -> None:
    """The PAX `path` record wins over the header's name (for us as for every reader), so
    the checks see the name an extractor uses."""
    deb = _pax_deb(tmp_path / "p.deb", [("file", "./usr/share/harmless", {"path": "./etc/.wh.x"})])
    with pytest.raises(OciBuildError) as err:
        _layer([deb])
    assert str(err.value) == f"{deb}: ./etc/.wh.x " + WHITEOUT.format(what=".wh.x")
    deb = _pax_deb(tmp_path / "q.deb", [("file", "./usr/share/harmless", {"path": "../../x"})])
    with pytest.raises(OciBuildError, match=r"the member '../../x' has a `..` component"):
        _layer([deb])
    deb = _pax_deb(tmp_path / "r.deb", [("file", "./usr/bin/t", {}),
                                        ("hardlink", "./usr/bin/u", {"linkpath": "./.wh.t"})])
    with pytest.raises(OciBuildError) as err:
        _layer([deb])
    assert str(err.value) == f"{deb}: ./.wh.t " + WHITEOUT.format(what=".wh.t")


@pytest.mark.parametrize("name", ["./usr/bin/a\nb", "./usr/bin/a\0b", "./usr/bin/\x1b[2Jx",
                                  "./usr/bin/a\x7f"])
def test_control_characters_in_names_are_refused(tmp_path: Path, name: str) -> None:
    deb = _pax_deb(tmp_path / "c.deb", [("file", "./usr/bin/x", {"path": name})])
    with pytest.raises(OciBuildError) as err:
        _layer([deb])
    assert str(err.value) == (f"{deb}: the name {name!r} holds a control character; refusing a "
                              "name that tools read differently")


def test_the_config_layer_writes_no_whiteout(tmp_path: Path) -> None:
    postinst = "#!/bin/sh\nupdate-alternatives --install /usr/bin/.wh.python x /usr/bin/t 1\n"
    deb = _deb(tmp_path, "p", [("file", "./usr/bin/t", "x")], postinst)
    with pytest.raises(OciBuildError) as err:
        _config([deb])
    assert str(err.value) == ("the config layer: /usr/bin/.wh.python " +
                              WHITEOUT.format(what=".wh.python"))


# --- links under links: the config layer, and packages in different layers -----------------

def _deb(tmp: Path, package: str, data: Sequence[TarSpec], postinst: Optional[str] = None
         ) -> Path:
    control = f"Package: {package}\nVersion: 1\nArchitecture: all\nDescription: x\n"
    members = [("dir", "./", ""), ("file", "./control", control)]
    if postinst is not None:
        members.append(("file", "./postinst", postinst))
    path = tmp / f"{package}_1_all.deb"
    path.write_bytes(ar_archive([
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", gzip.compress(tar_bytes(members), mtime=0)),
        ("data.tar.xz", lzma.compress(tar_bytes([("dir", "./", "")] + list(data))))]))
    return path


def test_an_alternative_under_another_alternatives_link_is_refused(tmp_path: Path) -> None:
    """The first LINK becomes a symlink to /etc/alternatives/a (absolute), the second would
    make the config layer write a directory of the same path and a member under it: an
    extractor that follows links writes that member onto the host."""
    postinst = ("#!/bin/sh\n"
                "update-alternatives --install /usr/lib/evil a /usr/bin/t 1\n"
                "update-alternatives --install /usr/lib/evil/passwd b /usr/bin/t 1\n")
    deb = _deb(tmp_path, "p", [("file", "./usr/bin/t", "x")], postinst)
    with pytest.raises(OciBuildError) as err:
        _config([deb])
    assert str(err.value) == (
        "the config layer: /usr/lib/evil appears twice as different kinds of entry (or as a "
        "link); refusing an archive whose result depends on the extractor")


def test_an_alternative_through_its_own_alternatives_entry_is_refused(tmp_path: Path) -> None:
    """`etc/alternatives/a` is a symlink the config layer writes; a LINK under it too."""
    postinst = ("#!/bin/sh\n"
                "update-alternatives --install /usr/bin/a a /usr/bin/t 1\n"
                "update-alternatives --install /etc/alternatives/a/x b /usr/bin/t 1\n")
    deb = _deb(tmp_path, "p", [("file", "./usr/bin/t", "x")], postinst)
    with pytest.raises(OciBuildError) as err:
        _config([deb])
    assert str(err.value) == (
        "the config layer: /etc/alternatives/a appears twice as different kinds of entry (or "
        "as a link); refusing an archive whose result depends on the extractor")


def test_a_package_under_another_packages_symlink_is_refused_in_any_layer(
        tmp_path: Path) -> None:
    """Each package is fine in a layer of its own; stacked (in either order), one writes
    through the other's symlink. The config layer reads every package and refuses the set."""
    link = _deb(tmp_path, "aaa-link", [("dir", "./usr/", ""), ("dir", "./usr/lib/", ""),
                                       ("symlink", "./usr/lib/evil", "/etc")])
    under = _deb(tmp_path, "zzz-under", [("dir", "./usr/", ""), ("dir", "./usr/lib/", ""),
                                         ("dir", "./usr/lib/evil/", ""),
                                         ("file", "./usr/lib/evil/passwd", "root::0:0")])
    _layer([link]), _layer([under])
    with pytest.raises(OciBuildError) as err:
        _config([link, under])
    assert str(err.value) == (f"{under}: usr/lib/evil would replace a symlink of {link}, in a "
                              "layer below, with a directory; an extractor would write through "
                              "the link")


def test_a_file_in_place_of_another_packages_symlink_is_refused(tmp_path: Path) -> None:
    """tarfile opens the path to write a file: through the symlink already there."""
    link = _deb(tmp_path, "aaa-link", [("symlink", "./usr/share/x", "/etc/passwd")])
    over = _deb(tmp_path, "zzz-over", [("file", "./usr/share/x", "root::0:0")])
    with pytest.raises(OciBuildError) as err:
        _config([link, over])
    assert str(err.value) == (f"{over}: usr/share/x would replace a symlink of {link}, in a "
                              "layer below, with a regular file; an extractor would write "
                              "through the link")


def test_a_symlink_in_place_of_a_directory_of_an_earlier_package_is_refused(
        tmp_path: Path) -> None:
    """In one layer: the first package wrote usr/share/x/f (so an extractor made the
    directory usr/share/x), the second makes usr/share/x a symlink."""
    first = _deb(tmp_path, "aaa", [("file", "./usr/share/x/f", "x")])
    second = _deb(tmp_path, "zzz", [("symlink", "./usr/share/x", "/etc")])
    with pytest.raises(OciBuildError) as err:
        _layer([first, second])
    assert str(err.value) == (f"{second}: ./usr/share/x is a symlink, but {first} wrote "
                              "entries under it earlier in the layer; refusing an archive "
                              "whose result depends on the extractor")
    with pytest.raises(OciBuildError) as err:
        _config([first, second])
    assert str(err.value) == (f"{first}: usr/share/x/f lies under usr/share/x, a symlink of "
                              f"{second}, in a layer below; refusing a path that escapes "
                              "through a symlink")


def test_status_files_of_a_package_are_checked_against_the_others(tmp_path: Path) -> None:
    link = _deb(tmp_path, "zzz-link", [("symlink", "./var/lib/dpkg/status.d", "/etc")])
    other = _deb(tmp_path, "aaa", [("file", "./usr/bin/z", "z")])
    with pytest.raises(OciBuildError) as err:
        _config([link, other])
    assert str(err.value) == (f"{other}: var/lib/dpkg/status.d would replace a symlink of "
                              f"{link}, in a layer below, with a directory; an extractor would "
                              "write through the link")


# --- the checker against a model extractor --------------------------------------------------

Entry = Tuple[str, str, str]  # (kind, path, hardlink target)
NAMES = ["a", "b", "a/b", "a/c", "b/a", "a/b/c", "c"]


def _model(layer_list: Sequence[Sequence[Entry]]) -> bool:
    """Whether an extractor that follows links, unpacking the layers in order, ever goes
    through a symlink (to write, mkdir, chmod or link), or links to a non-file."""
    fs: Dict[str, str] = {}
    for entries in layer_list:
        for kind, path, target in entries:
            for directory in ancestors(path):
                if fs.get(directory) == SYMLINK:
                    return False
                fs.setdefault(directory, DIR)
            if fs.get(path) == SYMLINK and kind != SYMLINK:
                return False
            if kind == HARDLINK:
                if any(fs.get(d) == SYMLINK for d in ancestors(target)) \
                        or fs.get(target) != FILE:
                    return False
            fs[path] = FILE if kind == HARDLINK else kind
    return True


def _structural(entries: Sequence[Entry]) -> bool:
    """What the checker also requires of one layer, beyond the model: a path is one kind
    (a directory may repeat, so may a file); a hardlink names a file of its own layer."""
    kinds: Dict[str, str] = {}
    files = set()
    for i, (kind, path, target) in enumerate(entries):
        implicit = {d for _, p, _ in entries[:i] for d in ancestors(p)}
        earlier = kinds.get(path)
        if earlier is not None and not (earlier == kind and kind in (DIR, FILE)):
            return False
        if earlier is None and path in implicit and kind != DIR:
            return False
        if kind == HARDLINK and target not in files:
            return False
        kinds[path] = kind
        if kind == FILE:
            files.add(path)
    return True


def _accepts(layer_list: Sequence[Sequence[Entry]]) -> bool:
    below: Dict[str, Tuple[str, str]] = {}
    try:
        for i, entries in enumerate(layer_list):
            checker = LayerEntries(f"layer{i}", dict(below))
            for kind, path, target in entries:
                checker.admit(path, kind, linkname=target)
            for path, kind in checker.kinds.items():
                below[path] = (FILE if kind == HARDLINK else kind, f"layer{i}")
    except OciBuildError:
        return False
    return True


def _set_accepts(packages: Sequence[Sequence[Entry]]) -> bool:
    try:
        check_set({f"p{i}": {path: kind for kind, path, _ in entries}
                   for i, entries in enumerate(packages)}, {})
    except OciBuildError:
        return False
    return True


_entry = st.tuples(st.sampled_from([DIR, FILE, SYMLINK, HARDLINK]), st.sampled_from(NAMES),
                   st.sampled_from(NAMES))
_layers = st.lists(st.lists(_entry, max_size=5).map(lambda es: [
    (k, p, t if k == HARDLINK else "") for k, p, t in es]), min_size=1, max_size=3)
GENERATED = {"stacks": 0, "sets": 0}


@settings(max_examples=3000, deadline=None)
@given(_layers)
def test_the_checker_agrees_with_a_link_following_extractor(layer_list) -> None:
    """Accepted => the extractor never goes through a link; and a stack the extractor
    unpacks without going through a link, each layer structurally sound, is accepted."""
    GENERATED["stacks"] += 1
    accepted = _accepts(layer_list)
    if accepted:
        assert _model(layer_list), layer_list
    if _model(layer_list) and all(_structural(e) for e in layer_list):
        assert accepted, layer_list


@settings(max_examples=2000, deadline=None)
@given(_layers)
def test_an_accepted_set_is_safe_in_every_layer_order(packages) -> None:
    """`check_set` does not know which package's layer lies above which: what it accepts
    (each package's own layer accepted too) no order makes unsafe; and a set that is safe
    in every order, each package sound alone and no two packages writing one path as a
    symlink and as something else, is accepted."""
    GENERATED["sets"] += 1
    own = all(_accepts([p]) for p in packages)
    accepted = own and _set_accepts(packages)
    orders = list(itertools.permutations(packages))
    if accepted:
        assert all(_model(order) for order in orders), packages
    kinds: Dict[str, set] = {}
    for p in packages:
        for kind, path, _ in p:
            kinds.setdefault(path, set()).add(SYMLINK if kind == SYMLINK else "other")
    if own and all(_model(order) for order in orders) and \
            all(len(k) == 1 for k in kinds.values()):
        assert accepted, packages


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print(f"\ngenerated entry stacks: {GENERATED['stacks']}, package sets: {GENERATED['sets']}")
