"""The layer budget: which packages share a layer (stable under updates), and layers of
several packages (content, order, the checks of one-package layers across packages)."""

from __future__ import annotations

import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ocibuild.debian import layers
from ocibuild.debian.grouping import budget, check_max_layers, group_packages, size_class
from ocibuild.errors import OciBuildError
from tests.fixtures.debian_repo import ar_archive, make_deb, tar_bytes

COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# The Python example's closure (bookworm, amd64): name -> .deb size.
PYTHON_BASE = {
    "libc6": 2759320, "python3.11-minimal": 2064968, "libssl3": 2036016,
    "libpython3.11-stdlib": 1798560, "dpkg": 1567804, "openssl": 1438712,
    "libsqlite3-0": 838808, "tar": 836288, "libpython3.11-minimal": 817740,
    "libdb5.3": 697412, "libkrb5-3": 332280, "libtinfo6": 331352, "libzstd1": 290036,
    "libpcre2-8-0": 260776, "liblzma5": 205732, "libreadline8": 165760,
    "ca-certificates": 155260, "libgssapi-krb5-2": 135168, "libncursesw6": 133824,
    "debconf": 121212, "libexpat1": 99888, "libcrypt1": 89464, "zlib1g": 86684,
    "libtirpc3": 85192, "libk5crypto3": 79712, "libselinux1": 73720, "readline-common": 68988,
    "libgcc-s1": 49856, "libbz2-1.0": 47348, "libnsl2": 39480, "gcc-12-base": 37596,
    "libkrb5support0": 33212, "libacl1": 31488, "libmd0": 29456, "libuuid1": 28784,
    "python3-minimal": 26312, "media-types": 26136, "libffi8": 22856, "libcom-err2": 20044,
    "libtirpc-common": 14048, "libkeyutils1": 8808,
}


def test_the_python_base_in_eight_layers() -> None:
    groups = group_packages(PYTHON_BASE, 8)
    assert len(groups) == 8
    assert sorted(g[0] for g in groups if len(g) == 1) == [
        "dpkg", "libc6", "libpython3.11-stdlib", "libssl3", "openssl", "python3.11-minimal"]
    assert sorted(p for g in groups for p in g) == sorted(PYTHON_BASE)
    assert [g[0] for g in groups] == sorted(g[0] for g in groups)
    assert all(list(g) == sorted(g) for g in groups)


def test_budget_and_validation() -> None:
    assert budget(2) == (1, 1) and budget(8) == (6, 2) and budget(12) == (9, 3)
    assert group_packages({"a": 10, "b": 5}, 8) == [("a",), ("b",)]
    assert group_packages({}, 8) == []
    for bad in (1, 0, -3, 101, "8", 8.0, True, None):
        with pytest.raises(OciBuildError) as err:
            check_max_layers(bad)  # type: ignore[arg-type]
        assert str(err.value) == (
            "max_layers must be an integer from 2 to 100 (one layer for the largest package "
            f"and one shared by the rest, at least), not {bad!r}")


def test_size_class_is_the_power_of_two() -> None:
    assert [size_class(s) for s in (0, 1, 2, 3, 4, 1023, 1024)] == [0, 1, 2, 2, 3, 10, 11]


Closure = Dict[str, int]
names = st.text("abcdefghijklmnopqrstuvwxyz0123456789+-.", min_size=2, max_size=12)
closures = st.dictionaries(names, st.integers(1, 1 << 26), min_size=1, max_size=60)


def _new(before: List[Tuple[str, ...]], after: List[Tuple[str, ...]]) -> Set[Tuple[str, ...]]:
    """The layers of `after` that `before` lacks (stand-in for new layer digests: a layer's
    bytes are a function of its packages' .debs)."""
    return set(after) - set(before)


@settings(max_examples=400, **COMMON)
@given(closures, st.integers(2, 20), st.data())
def test_a_bump_within_its_size_class_changes_exactly_one_layer(closure: Closure,
                                                                 max_layers: int, data) -> None:
    name = data.draw(st.sampled_from(sorted(closure)))
    size = closure[name]
    low, high = 1 << (size.bit_length() - 1), (1 << size.bit_length()) - 1
    bumped_size = data.draw(st.integers(low, high))
    before = group_packages(closure, max_layers)
    after = group_packages({**closure, name: bumped_size}, max_layers)
    # The same grouping: only the layer holding the bumped package has new bytes.
    assert after == before


@settings(max_examples=400, **COMMON)
@given(closures, st.integers(2, 20), st.data())
def test_any_bump_changes_at_most_three_layers(closure: Closure, max_layers: int, data) -> None:
    name = data.draw(st.sampled_from(sorted(closure)))
    before = group_packages(closure, max_layers)
    after = group_packages({**closure, name: data.draw(st.integers(1, 1 << 26))}, max_layers)
    changed = _new(before, after) | {g for g in after if name in g}
    assert len(changed) <= 3


@settings(max_examples=400, **COMMON)
@given(st.dictionaries(names, st.integers(1, 1 << 26), min_size=25, max_size=60),
       st.integers(2, 20), names, st.integers(1, 1 << 12))
def test_adding_or_removing_a_small_package_changes_one_layer(closure: Closure, max_layers: int,
                                                               name: str, size: int) -> None:
    assume(name not in closure)
    solo, _ = budget(max_layers)
    ranked = sorted(closure, key=lambda n: (-size_class(closure[n]), n))
    # Not among the largest: it ranks after the last solo package.
    assume(len(ranked) >= solo and (-size_class(size), name) >
           (-size_class(closure[ranked[solo - 1]]), ranked[solo - 1]))
    before = group_packages(closure, max_layers)
    after = group_packages({**closure, name: size}, max_layers)
    assert len(_new(before, after)) == 1 and len(_new(after, before)) <= 1
    (joined,) = _new(before, after)
    assert name in joined


@settings(max_examples=300, **COMMON)
@given(closures, st.integers(2, 20))
def test_the_grouping_is_a_partition_within_budget(closure: Closure, max_layers: int) -> None:
    groups = group_packages(closure, max_layers)
    assert 1 <= len(groups) <= max_layers
    assert sorted(p for g in groups for p in g) == sorted(closure)
    assert group_packages(dict(reversed(list(closure.items()))), max_layers) == groups


# --- Layers of several packages --------------------------------------------------------------


def _entries(debs: List[Path]) -> List[tarfile.TarInfo]:
    out = io.BytesIO()
    layers.write_packages_layer([str(d) for d in debs], out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        return list(tar)


def test_a_layer_of_several_packages(tmp_path: Path) -> None:
    a = make_deb(tmp_path, "aaa", "1", files={"usr/share/common/f": b"from aaa\n",
                                              "bin/a": (b"a", 0o755)})
    b = make_deb(tmp_path, "bbb", "2", files={"usr/share/common/f": b"from bbb\n",
                                              "usr/share/bbb/x": b"x"},
                 symlinks={"usr/bin/b": "/bin/a"})
    one, two = io.BytesIO(), io.BytesIO()
    assert layers.write_packages_layer([str(b), str(a)], one) == ["aaa", "bbb"]
    assert layers.write_packages_layer([str(a), str(b)], two) == ["aaa", "bbb"]
    assert one.getvalue() == two.getvalue()  # sorted by package name, whatever the order given
    names = [m.name for m in _entries([b, a])]
    # Each directory once; the same file from both packages, the later package's last (as two
    # layers would stack them); each package's status.d entries after its files.
    assert [n for n in names if n in ("usr", "usr/share", "var/lib/dpkg/status.d")] == [
        "usr", "usr/share", "var/lib/dpkg/status.d"]
    assert names.count("usr/share/common/f") == 2
    assert names.index("var/lib/dpkg/status.d/aaa") < names.index("usr/share/bbb/x") < \
        names.index("var/lib/dpkg/status.d/bbb.md5sums")
    with tarfile.open(fileobj=io.BytesIO(one.getvalue())) as tar:
        tar.extractall(tmp_path / "root")  # nosec: our own layer
    assert (tmp_path / "root/usr/share/common/f").read_bytes() == b"from bbb\n"
    assert (tmp_path / "root/usr/bin/a").read_bytes() == b"a"


def test_a_one_package_layer_is_the_same_either_way(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "tool", files={"bin/tool": (b"t", 0o755)}, symlinks={"bin/t": "tool"})
    one, many = io.BytesIO(), io.BytesIO()
    layers.write_package_layer(str(deb), one)
    layers.write_packages_layer([str(deb)], many)
    assert one.getvalue() == many.getvalue()


def _raw_deb(path: Path, package: str, data: list) -> Path:
    """A .deb of exactly these data.tar entries (dpkg-deb would add the parent directories)."""
    control = tar_bytes([("file", "./control", f"Package: {package}\nVersion: 1\n")])
    path.write_bytes(ar_archive([("debian-binary", b"2.0\n"),
                                 ("control.tar.xz", lzma.compress(control)),
                                 ("data.tar.xz", lzma.compress(tar_bytes(data)))]))
    return path


def test_the_checks_hold_across_the_packages_of_a_layer(tmp_path: Path) -> None:
    evil = make_deb(tmp_path, "aaa-link", symlinks={"usr/lib/evil": "/etc"})
    through = _raw_deb(tmp_path / "through.deb", "bbb-file",
                       [("file", "./usr/lib/evil/passwd", "root::0:0\n")])
    with pytest.raises(OciBuildError) as err:
        layers.write_packages_layer([str(through), str(evil)], io.BytesIO())
    assert str(err.value) == (
        f"{through}: ./usr/lib/evil/passwd lies under usr/lib/evil, a symlink of {evil}, "
        "earlier in the layer; refusing a path that escapes through a symlink")
    over = make_deb(tmp_path, "ccc-over", files={"usr/lib/evil": b"not a link\n"})
    with pytest.raises(OciBuildError) as err:
        layers.write_packages_layer([str(evil), str(over)], io.BytesIO())
    assert str(err.value) == (
        f"{over}: ./usr/lib/evil appears twice as different kinds of entry (or as a link) "
        f"(first in {evil}, earlier in the layer); refusing an archive whose result depends "
        "on the extractor")
    twice = make_deb(tmp_path, "aaa-link", "2.0", symlinks={"usr/lib/evil": "/etc"})
    with pytest.raises(OciBuildError, match="are both the package aaa-link; a layer holds one "
                                            "version of a package"):
        layers.write_packages_layer([str(evil), str(twice)], io.BytesIO())


def test_a_hardlink_must_name_a_file_of_its_own_package(tmp_path: Path) -> None:
    linker = _raw_deb(tmp_path / "linker.deb", "linker",
                      [("hardlink", "./usr/share/common/l", "/usr/share/common/f")])
    other = make_deb(tmp_path, "aaa", files={"usr/share/common/f": b"f"})
    with pytest.raises(OciBuildError) as err:
        layers.write_packages_layer([str(other), str(linker)], io.BytesIO())
    assert str(err.value) == (
        f"{linker}: ./usr/share/common/l is a hardlink to '/usr/share/common/f', which is not a "
        "regular file earlier in the package")


def test_the_cli_builds_one_layer_of_several_debs(tmp_path: Path) -> None:
    a = make_deb(tmp_path, "aaa", files={"usr/share/a": b"a"})
    b = make_deb(tmp_path, "bbb", files={"usr/share/b": b"b"})
    outs = []
    for order in ((a, b), (b, a)):
        out = tmp_path / f"out-{len(outs)}"
        argv = [sys.executable, "-m", "ocibuild", "debian-layer", "--out-dir", str(out)]
        for deb in order:
            argv += ["--deb", str(deb)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        outs.append(json.loads((out / "layer.json").read_text()))
    assert outs[0] == outs[1]
    assert outs[0]["digest"].startswith("sha256:")
