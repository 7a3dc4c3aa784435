"""Choosing registries from `[oci].registries` and the `registries` field."""

from __future__ import annotations

import pytest

from ocibuild.reference import parse_reference
from ocibuild.protocol.push import PushRequest
from pants_oci.goals.publish import push_request
from pants_oci.subsystems.oci import Registry, debian_mirror, select_registries

CONFIGURED = {
    "ghcr": Registry("ghcr", "ghcr.io", default=True),
    "ci": Registry("ci", "registry.ci:5000", insecure=True),
    "corp": Registry("corp", "r.corp:443", ca_cert="certs/ca.pem"),
}


def test_unset_means_the_defaults() -> None:
    assert select_registries(CONFIGURED, None) == (CONFIGURED["ghcr"],)


def test_aliases_and_addresses() -> None:
    chosen = select_registries(CONFIGURED, ("@ci", "other.example:5000"))
    assert chosen == (CONFIGURED["ci"], Registry("other.example:5000", "other.example:5000"))
    assert select_registries(CONFIGURED, ()) == ()


def test_unknown_alias() -> None:
    with pytest.raises(ValueError) as err:
        select_registries(CONFIGURED, ("@nope",))
    assert str(err.value) == (
        "unknown registry alias '@nope' (known: @ghcr, @ci, @corp); add it under "
        "[oci.registries.nope] in pants.toml"
    )


def test_option_entries_are_checked() -> None:
    assert Registry.from_option("x", {"address": "a:1", "insecure": True}) == Registry(
        "x", "a:1", insecure=True
    )
    with pytest.raises(ValueError) as err:
        Registry.from_option("x", {"adress": "typo"})
    assert str(err.value) == (
        "[oci].registries.x: needs `address` and takes only address, default, insecure, "
        "ca_cert, repository, extra_image_tags, skip_push (got adress)"
    )


def test_push_request() -> None:
    assert push_request(CONFIGURED["ci"], "team/app", ("latest", "1.0"), "latest",
                        dist_prefix="/r/dist/d/image", first=True,
                        mount_from="base/python") == PushRequest(
        layout="layout", to="registry.ci:5000/team/app", ref_name="latest", tags=("latest", "1.0"),
        mount_from="base/python", digest_file="/r/dist/d/image.digest",
        refs_file="/r/dist/d/image.refs", append_refs=False, insecure=True, ca_cert=None)
    # Later pushes add to the refs file.
    later = push_request(CONFIGURED["corp"], "a", ("t",), "t",
                         dist_prefix="/r/dist/d/image", first=False, mount_from=None)
    assert (later.mount_from, later.append_refs, later.ca_cert) == (None, True, "certs/ca.pem")


@pytest.mark.parametrize("key, value, expected", [
    ("insecure", "false", "`insecure` must be a boolean (true or false, unquoted), not 'false'"),
    ("default", 1, "`default` must be a boolean (true or false, unquoted), not 1"),
    ("skip_push", "no", "`skip_push` must be a boolean (true or false, unquoted), not 'no'"),
    ("ca_cert", True, "`ca_cert` must be a string, not True"),
    ("repository", ["a"], "`repository` must be a string, not ['a']"),
    ("extra_image_tags", "latest", "`extra_image_tags` must be a list, not 'latest'"),
    ("extra_image_tags", [1], "`extra_image_tags` must be a list of strings, not [1]"),
    ("address", 5000, "`address` must be a string, not 5000"),
    ("address", "https://ghcr.io", "`address` 'https://ghcr.io' must be a registry host[:port] "
     'without a scheme, e.g. "ghcr.io" or "registry.ci:5000" (plain HTTP is `insecure = true`)'),
])
def test_option_values_are_type_checked(key: str, value: object, expected: str) -> None:
    """A quoted "false" must never read as true: that would send credentials in clear."""
    raw = {"address": "r.corp:443", key: value}
    with pytest.raises(ValueError) as err:
        Registry.from_option("corp", raw)
    assert str(err.value) == f"[oci].registries.corp: {expected}"


def test_option_entry_must_be_a_table() -> None:
    with pytest.raises(ValueError) as err:
        Registry.from_option("corp", "r.corp:443")
    assert str(err.value) == ('[oci].registries.corp: must be a table (`[oci.registries.corp]` '
                              "with `address = \"host:port\"`), not 'r.corp:443'")
    assert Registry.from_option("corp", {"address": "r.corp:443", "insecure": False,
                                         "extra_image_tags": ("a",)}) == \
        Registry("corp", "r.corp:443", extra_image_tags=("a",))


def test_debian_mirrors_are_type_checked() -> None:
    mirrors = {"http://deb.debian.org/debian/": "https://apt.corp/debian/", "http://x": 5}
    assert debian_mirror(mirrors, "http://deb.debian.org/debian") == "https://apt.corp/debian"
    assert debian_mirror(mirrors, "http://other/debian/") == "http://other/debian"
    for url, bad in (("http://x", "5"), ("ftp://y", "'ftp://y'")):
        with pytest.raises(ValueError) as err:
            debian_mirror(mirrors, url)
        assert str(err.value) == (f"[oci].debian_mirrors: the mirror for {url!r} must be an "
                                  f"http:// or https:// URL string, not {bad}")
