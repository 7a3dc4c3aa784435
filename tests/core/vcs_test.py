"""`ocibuild.vcs`: what a git checkout may put into an image's annotations."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ocibuild.vcs import CREATED, REVISION, SOURCE, public_source_url, vcs_annotations

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("remote, public", [
    ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
    ("https://x-access-token:ghs_SECRET@github.com/org/repo.git", "https://github.com/org/repo.git"),
    ("https://ghp_SECRET@github.com/org/repo", "https://github.com/org/repo"),
    ("HTTPS://gitlab.example:8443/g/r.git?private_token=SECRET#frag", "https://gitlab.example:8443/g/r.git"),
    ("ssh://git:pw@git.example:2222/srv/repo.git", "ssh://git.example:2222/srv/repo.git"),
    ("git://[::1]/repo", "git://[::1]/repo"),
    ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    ("github.com:org/repo.git", "github.com:org/repo.git"),
    # This machine's: a different path in every clone.
    ("/srv/git/repo.git", None),
    ("../repo", None),
    ("./repo", None),
    ("file:///srv/git/repo.git", None),
    ("C:/repo", None),
    ("https:///no-host", None),
    ("https://host:notaport/x", None),
    ("https://github.com/org/repo\n.git", None),
    ("", None),
])
def test_public_source_url(remote: str, public: str | None) -> None:
    assert public_source_url(remote) == public


@given(st.text(max_size=80))
def test_no_secret_survives(text: str) -> None:
    """Whatever the remote, the password and user of a URL never come out."""
    remote = f"https://user:S3CRET-{text}@host.example/repo"
    out = public_source_url(remote)
    assert out is None or "S3CRET" not in out


def test_a_clean_checkout_gets_all_three() -> None:
    assert vcs_annotations("https://tok@github.com/org/repo", COMMIT, True, 1700000000) == {
        SOURCE: "https://github.com/org/repo",
        REVISION: COMMIT,
        CREATED: "2023-11-14T22:13:20Z",
    }


def test_a_dirty_tree_has_no_revision_and_no_epoch_no_created() -> None:
    assert vcs_annotations("git@github.com:org/repo.git", COMMIT, False, None) == {
        SOURCE: "git@github.com:org/repo.git"}


def test_a_local_origin_gives_only_the_revision() -> None:
    assert vcs_annotations("/home/me/repo", COMMIT, True, None) == {REVISION: COMMIT}


def test_not_a_checkout_gives_nothing_but_created() -> None:
    assert vcs_annotations(None, None, False, None) == {}
    assert vcs_annotations(None, None, True, 0) == {CREATED: "1970-01-01T00:00:00Z"}


def test_what_is_not_a_commit_is_not_a_revision() -> None:
    assert vcs_annotations(None, "HEAD", True, None) == {}
    assert vcs_annotations(None, "a" * 64, True, None) == {REVISION: "a" * 64}  # sha256 repos
