"""InRelease signatures count only when gpgv's status says good, valid and strong.

gpgv exits 0 for a signature by a revoked or expired key and for a SHA-1 one: the keys here
are real (tests/fixtures/openpgp.py makes them with gpg in a temporary GNUPGHOME) and so is
gpgv. The status parser (`gpgv.signers`) is also fed a generated family of status sequences
and compared with a model: only signatures that are each good, valid and strong pass.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocibuild.debian import gpgv
from ocibuild.debian.gpgv import signers, verify_signature
from ocibuild.debian.repository import Mirror
from ocibuild.errors import OciBuildError
from tests.fixtures.debian_repo import DebianRepo, make_deb
from tests.fixtures.openpgp import Keys

TEXT = b"Suite: testing\nCodename: testing\nSHA256:\n"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("gnupg") / "home")


def _keyring(keys: Keys, tmp_path: Path) -> str:
    return str(keys.keyring(tmp_path / "keyring.gpg"))


def test_a_good_signature_is_verified(keys: Keys, tmp_path: Path) -> None:
    signed = keys.sign("good", TEXT)
    verified = verify_signature(signed, _keyring(keys, tmp_path))
    assert verified.text == TEXT.decode()
    assert verified.fingerprints == (keys.fingerprint("good"),)


def test_several_good_signatures_are_all_recorded(keys: Keys, tmp_path: Path) -> None:
    signed = keys.sign_many(["good", "other"], TEXT)
    verified = verify_signature(signed, _keyring(keys, tmp_path))
    assert verified.fingerprints == tuple(sorted([keys.fingerprint("good"),
                                                  keys.fingerprint("other")]))


def _refused(keys: Keys, name: str, tmp_path: Path, **sign) -> str:
    signed = keys.sign(name, TEXT, **sign)
    with pytest.raises(OciBuildError) as err:
        verify_signature(signed, _keyring(keys, tmp_path))
    return str(err.value)


def test_a_revoked_key_does_not_verify(keys: Keys, tmp_path: Path) -> None:
    """gpgv exits 0 and says VALIDSIG for it."""
    keyid = keys.fingerprint("revoked")[-16:]
    assert _refused(keys, "revoked", tmp_path) == (
        f"InRelease: the signature by key {keyid} is by a revoked key (gpgv: REVKEYSIG); "
        "refusing the index")


def test_an_expired_key_does_not_verify(keys: Keys, tmp_path: Path) -> None:
    keyid = keys.fingerprint("expired")[-16:]
    assert _refused(keys, "expired", tmp_path) == (
        f"InRelease: the signature by key {keyid} is by an expired key (gpgv: EXPKEYSIG); "
        "refusing the index")


def test_an_expired_signature_does_not_verify(keys: Keys, tmp_path: Path) -> None:
    keyid = keys.fingerprint("old")[-16:]
    assert _refused(keys, "old", tmp_path, sig_expire="1d") == (
        f"InRelease: the signature by key {keyid} has expired (gpgv: EXPSIG); refusing the "
        "index")


def test_a_sha1_signature_does_not_verify(keys: Keys, tmp_path: Path) -> None:
    """gpgv 2.2 accepts SHA-1 signatures (exit 0, VALIDSIG, GOODSIG); apt does not."""
    assert _refused(keys, "rsa", tmp_path, digest="SHA1") == (
        f"InRelease: the signature by key {keys.fingerprint('rsa')} uses SHA1, a weak digest; "
        "refusing it (apt does too: the archive must sign with SHA-256 or stronger)")


def test_one_signature_by_an_unknown_key_refuses_the_file(keys: Keys, tmp_path: Path) -> None:
    signed = keys.sign_many(["good", "other"], TEXT)
    keyring = str(keys.keyring(tmp_path / "one.gpg", ["good"]))
    with pytest.raises(OciBuildError) as err:
        verify_signature(signed, keyring)
    assert str(err.value) == (
        f"InRelease: the signature by key {keys.fingerprint('other')[-16:]} is by a key that "
        f"is not in {keyring} (gpgv: NO_PUBKEY); refusing the index")


def test_a_hostile_user_id_forges_no_status_line(keys: Keys, tmp_path: Path) -> None:
    """A user ID holding a newline and `[GNUPG:] GOODSIG ...` (gpg escapes it; the parser
    would not believe it either), on an expired key: refused for the expiry."""
    keyid = keys.fingerprint("hostile-uid")[-16:]
    assert _refused(keys, "hostile-uid", tmp_path) == (
        f"InRelease: the signature by key {keyid} is by an expired key (gpgv: EXPKEYSIG); "
        "refusing the index")


def test_status_lines_in_the_signed_text_are_just_text(keys: Keys, tmp_path: Path) -> None:
    """The status comes from its own file descriptor: status lines written in the signed
    text (which gpgv writes to --output) or in the key's user ID are never read as status."""
    fake = (f"[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG {keys.fingerprint('good')[-16:]} x\n"
            f"[GNUPG:] VALIDSIG {keys.fingerprint('good')} 2026-01-01 1 0 4 0 22 8 01 "
            f"{keys.fingerprint('good')}\n").encode()
    signed = keys.sign("expired", TEXT + fake)
    with pytest.raises(OciBuildError, match=r"is by an expired key \(gpgv: EXPKEYSIG\)"):
        verify_signature(signed, _keyring(keys, tmp_path))


def test_a_mirror_signed_by_a_revoked_key_cannot_be_locked(tmp_path: Path) -> None:
    """The whole path: the mirror's InRelease, signed by a key since revoked, is refused by
    `Mirror.release`, so no lockfile says `verified by gpgv`."""
    keys = Keys(tmp_path / "gnupg")
    repo = DebianRepo(tmp_path / "mirror")
    repo.add(make_deb(tmp_path, "app"))
    repo.publish()
    repo.write_inrelease(keys.sign("revoked", repo.release_text()))
    with repo, pytest.raises(OciBuildError, match=r"is by a revoked key \(gpgv: REVKEYSIG\)"):
        Mirror(repo.url, repo.suite, None, _keyring(keys, tmp_path)).release()


# --- the status parser against a model ------------------------------------------------------

FPR = ["A" * 40, "B" * 40, "0123456789ABCDEF0123456789ABCDEF01234567"]
PRIMARY = ["C" * 40, "D" * 40, "E" * 40]
# How one signature's block is made, and whether it passes.
KINDS = ["good", "weak-md5", "weak-sha1", "weak-ripemd", "unknown-digest", "revoked",
         "expired-key", "expired-sig", "bad", "errsig", "no-pubkey", "nodata",
         "good-no-validsig", "validsig-no-goodsig", "mismatched", "two-goodsig",
         "no-primary", "digest-missing"]
NOISE = ["[GNUPG:] KEY_CONSIDERED {f} 0", "[GNUPG:] SIG_ID abc 2026-01-01 1",
         "[GNUPG:] KEYEXPIRED 1600086400", "[GNUPG:] PLAINTEXT 74 0 ", "gpgv: Good signature",
         "GOODSIG {k} not a status line", " [GNUPG:] BADSIG {k} leading space",
         "[GNUPG:] TRUST_UNDEFINED", "[GNUPG:] NOTATION_NAME x"]


def _validsig(fpr: str, digest: str, primary: str) -> str:
    return f"[GNUPG:] VALIDSIG {fpr} 2026-12-06 1796583016 0 4 0 22 {digest} 01 {primary}"


def _block(kind: str, i: int, rng: random.Random) -> Tuple[List[str], bool]:
    fpr, primary = FPR[i % 3], PRIMARY[i % 3]
    keyid = fpr[-16:] if rng.random() < 0.7 else fpr
    good = f"[GNUPG:] GOODSIG {keyid} someone <a@b>"
    valid = _validsig(fpr, "8", primary)
    lines = {
        "good": [good, valid],
        "weak-md5": [good, _validsig(fpr, "1", primary)],
        "weak-sha1": [good, _validsig(fpr, "2", primary)],
        "weak-ripemd": [good, _validsig(fpr, "3", primary)],
        "unknown-digest": [good, _validsig(fpr, str(rng.choice([0, 4, 12, 99, -1])), primary)],
        "revoked": [f"[GNUPG:] REVKEYSIG {keyid} x", valid],
        "expired-key": [f"[GNUPG:] EXPKEYSIG {keyid} x", valid],
        "expired-sig": [f"[GNUPG:] EXPSIG {keyid} x", valid],
        "bad": [f"[GNUPG:] BADSIG {keyid} x"],
        "errsig": [f"[GNUPG:] ERRSIG {fpr[-16:]} 1 10 01 1796583022 9 {fpr}"],
        "no-pubkey": [f"[GNUPG:] ERRSIG {fpr[-16:]} 1 10 01 1 9 {fpr}",
                      f"[GNUPG:] NO_PUBKEY {fpr[-16:]}"],
        "nodata": ["[GNUPG:] NODATA 1"],
        "good-no-validsig": [good],
        "validsig-no-goodsig": [valid],
        "mismatched": [f"[GNUPG:] GOODSIG {FPR[(i + 1) % 3][-16:]} x", valid],
        "two-goodsig": [good, good, valid],
        "no-primary": [good, f"[GNUPG:] VALIDSIG {fpr} 2026-12-06 1 0 4 0 22 8 01 nothex"],
        "digest-missing": [good, f"[GNUPG:] VALIDSIG {fpr} 2026-12-06 1"],
    }[kind]
    # A good signature whose user ID smuggles status text: gpg escapes it, and even
    # unescaped it is one line that starts with GOODSIG.
    if kind == "good" and rng.random() < 0.2:
        lines[0] += " %0A[GNUPG:] BADSIG 0000000000000000 x"
    lines += [n.format(f=fpr, k=keyid) for n in rng.sample(NOISE, rng.randint(0, 3))]
    rng.shuffle(lines)
    return ["[GNUPG:] NEWSIG x@y"] + lines, kind == "good"


GENERATED = [0]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(KINDS), max_size=4), st.integers(0, 2 ** 32))
def test_only_good_valid_strong_signatures_pass(kinds: List[str], seed: int) -> None:
    GENERATED[0] += 1
    rng = random.Random(seed)
    blocks = [_block(kind, i, rng) for i, kind in enumerate(kinds)]
    status = "\n".join(["[GNUPG:] PLAINTEXT 74 0 "] + [l for b, _ in blocks for l in b]) + "\n"
    expected_ok = bool(blocks) and all(ok for _, ok in blocks)
    if expected_ok:
        assert signers(status) == tuple(sorted({PRIMARY[i % 3] for i in range(len(kinds))}))
    else:
        with pytest.raises(OciBuildError, match=r"^InRelease: "):
            signers(status)


def test_the_parser_reads_only_whole_status_lines() -> None:
    """A refusal keyword that is not at the start of a status line is not status; a good
    signature is still good next to it. A refusal before any NEWSIG still refuses."""
    ok = ("[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG " + FPR[0][-16:] + " a [GNUPG:] REVKEYSIG x\n"
          + _validsig(FPR[0], "10", PRIMARY[0]) + "\n")
    assert signers(ok) == (PRIMARY[0],)
    with pytest.raises(OciBuildError, match="is by a revoked key"):
        signers("[GNUPG:] REVKEYSIG " + FPR[0][-16:] + " x\n" + ok)
    with pytest.raises(OciBuildError, match="gpgv reported no signature"):
        signers("[GNUPG:] PLAINTEXT 74 0\n" + _validsig(FPR[0], "8", PRIMARY[0]))


def test_the_status_is_bounded(monkeypatch: pytest.MonkeyPatch, keys: Keys,
                               tmp_path: Path) -> None:
    monkeypatch.setattr(gpgv, "MAX_STATUS_BYTES", 100)
    with pytest.raises(OciBuildError, match="gpgv wrote over 100 bytes of status"):
        verify_signature(keys.sign("good", TEXT), _keyring(keys, tmp_path))


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print(f"\ngenerated gpgv status sequences: {GENERATED[0]}")
