"""Rewriting an oci_pull's digest in BUILD text: in place, inserted, formatting kept."""

from __future__ import annotations

from textwrap import dedent

import pytest

from pants_oci.goals.build_file_pin import PinError, pin_digest

NEW = "sha256:" + "b" * 64
OLD = "sha256:" + "a" * 64


def test_replaces_an_existing_digest_keeping_everything_else() -> None:
    source = dedent(f"""\
        # the base
        oci_pull(
            name="python-base",
            image="ghcr.io/org/python:3.12",  # moving tag
            digest='{OLD}',
        )
        oci_pull(name="other", image="ghcr.io/org/other:1", digest="{OLD}")
        """)
    out = pin_digest(source, "python-base", "app", NEW, "app/BUILD")
    assert out == source.replace(f"'{OLD}'", f'"{NEW}"')


def test_inserts_a_missing_digest_after_the_image() -> None:
    source = 'oci_pull(name="b", image="r.io/x:1",\n         platforms=["linux/amd64"])\n'
    assert pin_digest(source, "b", "app", NEW, "BUILD") == (
        f'oci_pull(name="b", image="r.io/x:1", digest="{NEW}",\n         platforms=["linux/amd64"])\n')


def test_default_name_is_the_directory_and_unicode_before_is_fine() -> None:
    source = '# café\noci_pull(image="r.io/x:1")\n'
    assert pin_digest(source, "app", "app", NEW, "app/BUILD") == (
        f'# café\noci_pull(image="r.io/x:1", digest="{NEW}")\n')


def test_not_found_and_computed_digests_are_errors() -> None:
    with pytest.raises(PinError, match=r"BUILD: no oci_pull\(name='x'\) call found to pin"):
        pin_digest('oci_pull(name="b", image="r.io/x:1")\n', "x", "app", NEW, "BUILD")
    with pytest.raises(PinError, match="is not a plain string; edit it by hand"):
        pin_digest('oci_pull(name="b", image="r.io/x:1", digest=D)\n', "b", "app", NEW, "BUILD")
