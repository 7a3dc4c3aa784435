"""Check an InRelease signature with `gpgv`, reading its verdict as apt does.

gpgv's exit status is not a verdict: it exits 0, and says VALIDSIG, for a signature by a
revoked key, by an expired key, and for one over a SHA-1 digest. Only its status lines
(`--status-fd`, GnuPG's doc/DETAILS) say which signature is which, so `signers` reads them,
and `verify_signature` takes them from a file of their own, never from gpgv's stdout or
stderr, which carry text that others chose (the signed text, key user IDs).

The rule (`signers`, a pure function): every signature gpgv reports (one `NEWSIG` block
each) must be good (`GOODSIG`) and valid (`VALIDSIG` of the same key) over a strong digest
(SHA-224 or longer SHA-2); a block saying BADSIG, ERRSIG, NO_PUBKEY, EXPKEYSIG, EXPSIG,
REVKEYSIG or NODATA refuses the whole file. Stricter than apt, which ignores a signature it
cannot check beside a good one: gpgv itself fails then, and the Debian archive keyring
holds every key Debian signs with.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Tuple

from ocibuild.errors import OciBuildError
from ocibuild.untrusted import shown

_PREFIX = "[GNUPG:] "
# A status file of a few signatures is a few KiB; a bound keeps a hostile keyring cheap.
MAX_STATUS_BYTES = 1 << 20
_HEX = re.compile(r"[0-9A-F]{16}|[0-9A-F]{40}|[0-9A-F]{64}")
# OpenPGP hash algorithm ids (RFC 4880 9.4): SHA256, SHA384, SHA512, SHA224. MD5 (1),
# SHA-1 (2), RIPEMD-160 (3) and anything unknown are not trusted, as apt does.
STRONG_DIGESTS = {"8": "SHA256", "9": "SHA384", "10": "SHA512", "11": "SHA224"}
_WEAK_NAMES = {"1": "MD5", "2": "SHA1", "3": "RIPEMD160"}
# Why a signature does not count, by the status keyword that says so.
REFUSED = {
    "BADSIG": "is bad (the text was changed after signing)",
    "NO_PUBKEY": "is by a key that is not in {keyring}",
    "ERRSIG": "could not be checked",
    "EXPKEYSIG": "is by an expired key",
    "EXPSIG": "has expired",
    "REVKEYSIG": "is by a revoked key",
    "NODATA": "holds no signed data",
}


@dataclass(frozen=True)
class Verified:
    """The text gpgv verified, and the fingerprints of the primary keys that signed it
    (Debian signs each InRelease with two or three keys)."""

    text: str
    fingerprints: Tuple[str, ...]


def _blocks(status: str) -> List[List[List[str]]]:
    """The status lines of each signature (from its NEWSIG to the next), as words."""
    blocks: List[List[List[str]]] = []
    for line in status.split("\n"):
        if not line.startswith(_PREFIX):
            continue  # gpgv writes nothing else here; a stray line is no evidence
        words = line[len(_PREFIX):].split(" ")
        if words[0] == "NEWSIG":
            blocks.append([])
        elif blocks:
            blocks[-1].append(words)
        elif words[0] in REFUSED:
            blocks.append([words])  # a refusal before any NEWSIG still refuses
    return blocks


def _key(words: List[str], keyword: str) -> str:
    if len(words) < 2 or not _HEX.fullmatch(words[1]):
        raise OciBuildError(f"InRelease: gpgv's {keyword} line {shown(' '.join(words), 120)} "
                            "names no key; refusing it")
    return words[1]


def _same_key(fingerprint: str, keyid: str) -> bool:
    # GOODSIG names the long key id (16 hex digits) or the fingerprint; VALIDSIG the latter.
    return fingerprint.endswith(keyid)


def _signer(block: List[List[str]], keyring: str) -> str:
    """The primary-key fingerprint of one signature's block, if it counts."""
    by_word: Dict[str, List[List[str]]] = {}
    for words in block:
        by_word.setdefault(words[0], []).append(words)
    for keyword, why in REFUSED.items():
        if keyword in by_word:
            key = by_word[keyword][0][1] if len(by_word[keyword][0]) > 1 else "?"
            why = why.format(keyring=keyring)
            raise OciBuildError(f"InRelease: the signature by key {shown(key, 70)} {why} "
                                f"(gpgv: {keyword}); refusing the index")
    good, valid = by_word.get("GOODSIG", []), by_word.get("VALIDSIG", [])
    if len(good) != 1 or len(valid) != 1:
        raise OciBuildError(f"InRelease: gpgv reported {len(good)} GOODSIG and {len(valid)} "
                            "VALIDSIG lines for one signature, not one of each; refusing it")
    keyid, fields = _key(good[0], "GOODSIG"), valid[0]
    fingerprint = _key(fields, "VALIDSIG")
    if not _same_key(fingerprint, keyid):
        raise OciBuildError(f"InRelease: gpgv's GOODSIG ({keyid}) and VALIDSIG "
                            f"({fingerprint}) name different keys; refusing it")
    digest = fields[8] if len(fields) > 8 else "?"
    if digest not in STRONG_DIGESTS:
        name = _WEAK_NAMES.get(digest, f"digest algorithm {shown(digest, 10)}")
        raise OciBuildError(f"InRelease: the signature by key {fingerprint} uses {name}, a "
                            "weak digest; refusing it (apt does too: the archive must sign "
                            "with SHA-256 or stronger)")
    primary = fields[10] if len(fields) > 10 else fingerprint
    if not _HEX.fullmatch(primary):
        raise OciBuildError(f"InRelease: gpgv's VALIDSIG names the primary key "
                            f"{shown(primary, 70)}, not a fingerprint; refusing it")
    return primary


def signers(status: str, keyring: str = "the keyring") -> Tuple[str, ...]:
    """The primary-key fingerprints of an InRelease's signatures, from gpgv's status lines:
    every signature good, valid and over a strong digest, at least one; else an error."""
    blocks = _blocks(status)
    if not blocks:
        raise OciBuildError("InRelease: gpgv reported no signature; refusing it")
    return tuple(sorted({_signer(block, keyring) for block in blocks}))


def verify_signature(inrelease: bytes, keyring: str) -> Verified:
    """Run gpgv on `inrelease` with `keyring` and return what it verified: `--output` writes
    the signed text itself, so nothing outside the signature can reach the parser."""
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise OciBuildError("gpgv is not installed, so the InRelease signature cannot be "
                            "checked; install gpgv (package `gpgv`)")
    # gpgv would otherwise create ~/.gnupg; it needs no state.
    with tempfile.TemporaryDirectory() as home:
        signed, text = os.path.join(home, "InRelease"), os.path.join(home, "Release")
        with open(signed, "wb") as f:
            f.write(inrelease)
        # The status goes to a file of its own (an fd gpgv inherits): a pipe could fill and
        # block gpgv, and stdout or stderr may carry others' text.
        with tempfile.TemporaryFile(dir=home) as status_file:
            fd = status_file.fileno()
            done = subprocess.run([gpgv, "--homedir", home, "--keyring", keyring,
                                   "--status-fd", str(fd), "--output", text, signed],
                                  pass_fds=(fd,), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            status_file.seek(0)
            status = status_file.read(MAX_STATUS_BYTES + 1)
        if len(status) > MAX_STATUS_BYTES:
            raise OciBuildError(f"InRelease: gpgv wrote over {MAX_STATUS_BYTES} bytes of "
                                "status; refusing it")
        fingerprints = signers(status.decode("utf-8", "replace"), keyring)
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace")[-300:].strip()
            raise OciBuildError("InRelease: the signature does not verify against "
                                f"{keyring}: {shown(said, 300)}")
        with open(text, "rb") as f:
            verified = f.read()
    return Verified(verified.decode("utf-8", "replace"), fingerprints)
