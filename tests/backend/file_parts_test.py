"""A large files dependency is split into layers by a hash of each path: stable under edits."""

from __future__ import annotations

from pants_oci.util_rules.layer_content import LARGE_PART, MAX_PARTS, file_parts

MB = 1 << 20


def test_small_dependencies_are_one_layer() -> None:
    assert file_parts({"b": 10 * MB, "a": 20 * MB}) == [("", ["a", "b"])]
    assert file_parts({f"f{i}": MB for i in range(64)}) == [("", sorted(f"f{i}" for i in range(64)))]


def test_large_dependencies_take_a_power_of_two_of_parts_of_at_most_a_part_each() -> None:
    sizes = {f"data/{i:03}.bin": 2 * MB for i in range(235)}  # 470 MB
    parts = file_parts(sizes)
    assert len(parts) == 8 and [label for label, _ in parts][0].endswith(" of 8")
    assert sorted(p for _, part in parts for p in part) == sorted(sizes)
    assert all(part == sorted(part) for _, part in parts)
    # Far too much for MAX_PARTS parts of LARGE_PART: still MAX_PARTS.
    huge = {f"{i}": LARGE_PART for i in range(4 * MAX_PARTS)}
    assert {label.split(" of ")[1] for label, _ in file_parts(huge)} == {str(MAX_PARTS)}


def test_a_file_changed_added_or_removed_moves_nothing_else() -> None:
    sizes = {f"data/{i:03}.bin": 2 * MB for i in range(235)}
    before = dict(file_parts(sizes))
    changed = dict(file_parts({**sizes, "data/007.bin": 3 * MB}))
    assert changed == before
    added = dict(file_parts({**sizes, "data/new.bin": MB}))
    moved = [label for label in before if added[label] != before[label]]
    assert len(moved) == 1 and "data/new.bin" in added[moved[0]]
    removed = dict(file_parts({p: s for p, s in sizes.items() if p != "data/100.bin"}))
    assert sum(removed.get(label) != part for label, part in before.items()) == 1
