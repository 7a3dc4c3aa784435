"""collect_entries: the metadata policy, ordering, symlinks, conflicts and special files."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from ocibuild.errors import OciBuildError
from ocibuild.layer.entries import (
    DIR,
    FILE,
    HARDLINK,
    SYMLINK,
    LayerEntry,
    ModePolicy,
    collect_entries,
)

from .conftest import write


def summary(entries):
    return [(e.path, e.kind, oct(e.mode), e.link_target, e.size) for e in entries]


def test_directory_mapping_policy_and_order(tree: Path) -> None:
    entries = collect_entries([(str(tree), "/app")])
    assert summary(entries) == [
        ("app", DIR, "0o755", None, 0),
        ("app/bin", DIR, "0o755", None, 0),
        ("app/bin/run.sh", FILE, "0o755", None, 19),
        ("app/data", DIR, "0o755", None, 0),
        ("app/data/a.txt", FILE, "0o644", None, 2),
        ("app/data/b.txt", FILE, "0o644", None, 4),
        ("app/data/link", SYMLINK, "0o777", "a.txt", 0),
        ("app/data/nested", DIR, "0o755", None, 0),
        ("app/data/nested/deep", DIR, "0o755", None, 0),
        ("app/data/nested/deep/c.bin", FILE, "0o644", None, 10240),
        ("app/data/up", SYMLINK, "0o777", "../bin/run.sh", 0),
        ("app/empty", DIR, "0o755", None, 0),
    ]
    assert {(e.uid, e.gid, e.uname, e.gname) for e in entries} == {(0, 0, "", "")}
    assert entries[2].source == str(tree / "bin/run.sh")


def test_file_mapping_gets_explicit_parents(tree: Path) -> None:
    entries = collect_entries([(str(tree / "data/b.txt"), "usr/share/x/b.txt")])
    assert summary(entries) == [
        ("usr", DIR, "0o755", None, 0),
        ("usr/share", DIR, "0o755", None, 0),
        ("usr/share/x", DIR, "0o755", None, 0),
        ("usr/share/x/b.txt", FILE, "0o644", None, 4),
    ]


def test_modes_follow_only_the_execute_bit(tmp_path: Path) -> None:
    write(tmp_path / "odd", b"x", 0o4710)  # setuid and group-only execute
    write(tmp_path / "private", b"x", 0o600)
    entries = collect_entries([(str(tmp_path / "odd"), "odd"), (str(tmp_path / "private"), "p")])
    assert [(e.path, oct(e.mode)) for e in entries] == [("odd", "0o755"), ("p", "0o644")]


def test_explicit_mode_overrides_for_files_only(tree: Path) -> None:
    entries = collect_entries([(str(tree), "d", 0o600), (str(tree / "bin/run.sh"), "x", 0o700)])
    modes = {e.path: oct(e.mode) for e in entries}
    assert modes["d"] == modes["d/data/nested"] == "0o755"
    assert modes["d/data/a.txt"] == modes["d/bin/run.sh"] == "0o600" and modes["x"] == "0o700"
    assert modes["d/data/link"] == "0o777"


def test_mapping_part_of_a_tree_checks_links_against_that_part(tree: Path) -> None:
    """data/up -> ../bin/run.sh is inside the whole tree but outside `data` alone."""
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(tree / "data"), "d")])
    assert str(err.value) == (
        f"symlink {str(tree / 'data/up')!r} -> '../bin/run.sh' points outside the input "
        f"{str(tree / 'data')!r}; make it relative inside the input or copy the file"
    )


def test_custom_mode_policy(tree: Path) -> None:
    policy = ModePolicy(file=0o444, executable=0o555, directory=0o711, symlink=0o777)
    modes = {e.path: oct(e.mode) for e in collect_entries([(str(tree), "a")], mode_policy=policy)}
    assert (modes["a"], modes["a/bin/run.sh"], modes["a/data/a.txt"]) == ("0o711", "0o555", "0o444")


def test_sort_is_utf8_byte_order_by_component(tmp_path: Path) -> None:
    for name in ["a-b/x", "a/x", "a.b", "B", "é", "z"]:
        write(tmp_path / "in" / name)
    paths = [e.path for e in collect_entries([(str(tmp_path / "in"), "/")])]
    # "a" sorts before "a-b" and "a.b" as a component, though "a/" > "a-" as strings.
    assert paths == ["B", "a", "a/x", "a-b", "a-b/x", "a.b", "z", "é"]


def test_root_destination_maps_contents(tree: Path) -> None:
    paths = [e.path for e in collect_entries([(str(tree / "bin"), "/")])]
    assert paths == ["run.sh"]


def test_file_to_root_is_an_error(tree: Path) -> None:
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(tree / "data/a.txt"), "/")])
    assert str(err.value) == (
        f"{str(tree / 'data/a.txt')!r} is not a directory, so it cannot be mapped to the image "
        'root; give it a file path, e.g. "app/app.pex"'
    )


def test_dest_normalization_and_dotdot(tree: Path) -> None:
    entries = collect_entries([(str(tree / "data/a.txt"), "/./app//a.txt")])
    assert [e.path for e in entries] == ["app", "app/a.txt"]
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(tree / "data/a.txt"), "app/../../etc/a")])
    assert str(err.value) == (
        f"destination 'app/../../etc/a' (for {str(tree / 'data/a.txt')!r}): must be a path "
        "inside the image without '..', e.g. \"app/app.pex\""
    )


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(tmp_path / "nope"), "x")])
    assert str(err.value) == f"layer input {str(tmp_path / 'nope')!r} does not exist"


def test_bad_mode(tree: Path) -> None:
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(tree / "bin"), "b", 0o10000)])
    assert str(err.value) == (
        f"mapping {str(tree / 'bin')!r} -> 'b': mode 4096 must be an integer from 0 to "
        "0o7777, e.g. 0o755 (493)"
    )


# --- symlinks --------------------------------------------------------------------------------

def test_symlink_escaping_the_input(tmp_path: Path) -> None:
    (tmp_path / "dir/sub").mkdir(parents=True)
    os.symlink("../../etc/passwd", tmp_path / "dir/sub/x")
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(tmp_path / "dir"), "app")])
    assert str(err.value) == (
        f"symlink {str(tmp_path / 'dir/sub/x')!r} -> '../../etc/passwd' points outside the "
        f"input {str(tmp_path / 'dir')!r}; make it relative inside the input or copy the file"
    )


def test_symlink_to_the_inputs_sibling_escapes(tmp_path: Path) -> None:
    write(tmp_path / "secret")
    (tmp_path / "dir").mkdir()
    os.symlink("../secret", tmp_path / "dir/x")
    with pytest.raises(OciBuildError, match="points outside the input"):
        collect_entries([(str(tmp_path / "dir"), "app")])


def test_symlink_chain_cannot_escape_through_another_link(tmp_path: Path) -> None:
    """Lexically "sub/a/../x" stays inside; through `a -> ..` it is dir/../x, outside."""
    (tmp_path / "dir/sub").mkdir(parents=True)
    os.symlink("..", tmp_path / "dir/sub/a")  # dir/sub/a -> dir: inside, allowed alone
    os.symlink("a/../../x", tmp_path / "dir/sub/b")
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(tmp_path / "dir"), "app")])
    assert "'a/../../x' points outside the input" in str(err.value)


def test_symlinks_inside_are_kept(tree: Path) -> None:
    links = {e.path: e.link_target for e in collect_entries([(str(tree), "app")])
             if e.kind == SYMLINK}
    assert links == {"app/data/link": "a.txt", "app/data/up": "../bin/run.sh"}


def test_symlink_loop_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    os.symlink("b/x", tmp_path / "dir/a")
    os.symlink("a/x", tmp_path / "dir/b")
    with pytest.raises(OciBuildError, match="goes through more than 40 symlinks"):
        collect_entries([(str(tmp_path / "dir"), "app")])


def test_absolute_symlinks_allowed_by_default(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    os.symlink("/bin/busybox", tmp_path / "dir/sh")
    os.symlink("sh/../x", tmp_path / "dir/through")  # resolves in the image's rootfs
    entries = collect_entries([(str(tmp_path / "dir"), "bin")])
    assert summary(entries)[1:] == [("bin/sh", SYMLINK, "0o777", "/bin/busybox", 0),
                                    ("bin/through", SYMLINK, "0o777", "sh/../x", 0)]


def test_absolute_symlinks_refused_on_request(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    os.symlink("/bin/busybox", tmp_path / "dir/sh")
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(tmp_path / "dir"), "bin")], allow_absolute_symlinks=False)
    assert str(err.value) == (
        f"symlink {str(tmp_path / 'dir/sh')!r} -> '/bin/busybox' is absolute, and absolute "
        f"symlinks are not allowed here; make it relative inside the input "
        f"{str(tmp_path / 'dir')!r} or copy the file"
    )


def test_lone_symlink_may_point_anywhere_in_the_image(tmp_path: Path) -> None:
    os.symlink("../lib/libx.so.1", tmp_path / "libx.so")
    entries = collect_entries([(str(tmp_path / "libx.so"), "usr/lib64/libx.so")])
    assert entries[-1] == LayerEntry("usr/lib64/libx.so", SYMLINK, mode=0o777,
                                     link_target="../lib/libx.so.1")
    os.symlink("../../../../etc", tmp_path / "up")
    with pytest.raises(OciBuildError, match="points outside the input"):
        collect_entries([(str(tmp_path / "up"), "a/up")])


def test_symlink_to_a_directory_is_not_followed(tmp_path: Path) -> None:
    write(tmp_path / "dir/real/f")
    os.symlink("real", tmp_path / "dir/alias")
    paths = [(e.path, e.kind) for e in collect_entries([(str(tmp_path / "dir"), "d")])]
    assert paths == [("d", DIR), ("d/alias", SYMLINK), ("d/real", DIR), ("d/real/f", FILE)]


# --- special files, conflicts, hard links ------------------------------------------------------

def test_fifo_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "dir/pipe")
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(tmp_path / "dir"), "d")])
    assert str(err.value) == (
        f"{str(tmp_path / 'dir/pipe')!r} is a device, FIFO or socket; a layer holds only files, "
        "directories and symlinks: remove it from the input"
    )


def test_socket_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(OciBuildError, match="is a device, FIFO or socket"):
            collect_entries([(str(path), "s")])


def test_duplicate_destination_with_different_content(tmp_path: Path) -> None:
    one, two = write(tmp_path / "one/conf", b"1"), write(tmp_path / "two/conf", b"2")
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(one), "etc/conf"), (str(two), "etc/conf")])
    assert str(err.value) == (
        f"both {str(one)!r} and {str(two)!r} would be written to /etc/conf with different "
        "content; map them to different paths or drop one"
    )


def test_duplicate_destination_kind_clash(tmp_path: Path) -> None:
    write(tmp_path / "a/x/inner")
    write(tmp_path / "b/x", b"file")
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(tmp_path / "a"), "d"), (str(tmp_path / "b"), "d")])
    assert str(err.value) == (
        f"both {str(tmp_path / 'a/x')!r} and {str(tmp_path / 'b/x')!r} would be written to "
        "/d/x with different content; map them to different paths or drop one"
    )


def test_identical_duplicates_and_shared_directories_merge(tmp_path: Path) -> None:
    one, two = write(tmp_path / "one/conf", b"same"), write(tmp_path / "two/conf", b"same")
    write(tmp_path / "a/shared/x")
    write(tmp_path / "b/shared/y")
    entries = collect_entries([(str(one), "etc/conf"), (str(two), "etc/conf"),
                               (str(tmp_path / "a"), "d"), (str(tmp_path / "b"), "d")])
    assert [e.path for e in entries] == ["d", "d/shared", "d/shared/x", "d/shared/y", "etc",
                                         "etc/conf"]


def test_file_where_a_directory_is_needed(tmp_path: Path) -> None:
    f, g = write(tmp_path / "f"), write(tmp_path / "g")
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(f), "app"), (str(g), "app/g")])
    assert str(err.value) == (
        f"/app (from {str(f)!r}) is not a directory, but /app/g (from {str(g)!r}) would be "
        "written inside it; map one of them elsewhere"
    )


def test_hardlinks_ignored_by_default_and_preserved_on_request(tmp_path: Path) -> None:
    write(tmp_path / "in/b", b"shared")
    os.link(tmp_path / "in/b", tmp_path / "in/a")
    plain = collect_entries([(str(tmp_path / "in"), "d")])
    assert summary(plain) == [("d", DIR, "0o755", None, 0), ("d/a", FILE, "0o644", None, 6),
                              ("d/b", FILE, "0o644", None, 6)]
    linked = collect_entries([(str(tmp_path / "in"), "d")], preserve_hardlinks=True)
    # The first path in sort order holds the content, whichever was created first.
    assert summary(linked) == [("d", DIR, "0o755", None, 0), ("d/a", FILE, "0o644", None, 6),
                               ("d/b", HARDLINK, "0o644", "d/a", 0)]


def test_non_utf8_file_name(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    with open(os.path.join(os.fsencode(tmp_path / "in"), b"bad-\xff.txt"), "wb"):
        pass
    with pytest.raises(OciBuildError) as err:
        collect_entries([(str(tmp_path / "in"), "d")])
    assert str(err.value) == (
        f"file name {str(tmp_path / 'in') + '/bad-' + chr(0xdcff) + '.txt'!r} is not valid "
        "UTF-8, which tar headers need; rename it"
    )
