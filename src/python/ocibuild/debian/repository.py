"""Read a Debian suite from a mirror: `InRelease` (signature checked with `gpgv` against the
Debian archive keyring when both are there), then `Packages` indexes verified against the
SHA-256 sums InRelease lists. Package files are later verified against the SHA-256 the
index gives, so with a good signature the chain reaches from the keyring to every byte.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import requests

from ocibuild.atomic import atomic_write
from ocibuild.debian.control import paragraphs
from ocibuild.debian.resolve import Index, Package
from ocibuild.errors import OciBuildError

KEYRINGS = ("/usr/share/keyrings/debian-archive-keyring.gpg",)
TIMEOUT_S = (10, 120)


@dataclass(frozen=True)
class Release:
    suite: str
    sha256: Dict[str, tuple]  # path under dists/SUITE/ -> (hex, size)
    signature: str  # "verified by gpgv with KEYRING" or why it was not


def _get(session: requests.Session, url: str) -> bytes:
    try:
        response = session.get(url, timeout=TIMEOUT_S)
    except requests.exceptions.RequestException as err:
        raise OciBuildError(f"GET {url}: cannot connect: {err.__class__.__name__}") from None
    if response.status_code != 200:
        raise OciBuildError(f"GET {url}: {response.status_code}: {response.reason}")
    return response.content


def verify_signature(inrelease: bytes, keyrings: Sequence[str] = KEYRINGS) -> str:
    gpgv = shutil.which("gpgv")
    keyring = next((k for k in keyrings if os.path.isfile(k)), None)
    if gpgv is None or keyring is None:
        return ("NOT verified: " + ("gpgv is not installed" if gpgv is None else
                                    f"no keyring at {', '.join(keyrings)}"))
    with tempfile.NamedTemporaryFile(suffix=".InRelease") as f:
        f.write(inrelease)
        f.flush()
        # gpgv would otherwise create ~/.gnupg; it needs no state.
        with tempfile.TemporaryDirectory() as home:
            done = subprocess.run([gpgv, "--homedir", home, "--keyring", keyring, f.name],
                                  capture_output=True)
    if done.returncode != 0:
        raise OciBuildError("InRelease: the signature does not verify against "
                            f"{keyring}: {done.stderr.decode(errors='replace')[-300:]}")
    return f"verified by gpgv with {keyring}"


def parse_release(inrelease: bytes, suite: str, signature: str) -> Release:
    text = inrelease.decode("utf-8", "replace")
    if text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        text = text.split("\n\n", 1)[1].split("-----BEGIN PGP SIGNATURE-----", 1)[0]
    fields = next(paragraphs(text), {})
    sums: Dict[str, tuple] = {}
    for line in fields.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            sums[parts[2]] = (parts[0], int(parts[1]))
    if not sums:
        raise OciBuildError(f"InRelease of {suite} lists no SHA256 sums")
    return Release(suite, sums, signature)


class Mirror:
    def __init__(self, url: str, suite: str, cache_dir: Optional[str] = None,
                 keyring: Optional[str] = None) -> None:
        self.url = url.rstrip("/")
        self.keyrings = (keyring,) if keyring else KEYRINGS
        if keyring and not os.path.isfile(keyring):
            raise OciBuildError(f"the keyring {keyring} does not exist")
        if keyring and shutil.which("gpgv") is None:
            raise OciBuildError(f"a keyring is given ({keyring}) but gpgv is not installed to "
                                "check the signature with it; install gpgv")
        self.suite = suite
        self.cache_dir = cache_dir
        self.session = requests.Session()
        self.session.trust_env = True  # a mirror is reached as apt reaches it (proxies)

    def release(self) -> Release:
        url = f"{self.url}/dists/{self.suite}/InRelease"
        data = _get(self.session, url)
        return parse_release(data, self.suite, verify_signature(data, self.keyrings))

    def _cached(self, hex_: str) -> Optional[bytes]:
        if not self.cache_dir:
            return None
        try:
            with open(os.path.join(self.cache_dir, hex_), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data if hashlib.sha256(data).hexdigest() == hex_ else None

    def packages(self, release: Release, component: str, arch: str) -> List[Package]:
        for suffix, decompress in ((".xz", lzma.decompress), ("", lambda b: b)):
            path = f"{component}/binary-{arch}/Packages{suffix}"
            if path in release.sha256:
                break
        else:
            raise OciBuildError(f"{self.url}/dists/{self.suite}: no Packages index for "
                                f"{component}/{arch} (check `components` and `architectures`)")
        hex_, size = release.sha256[path]
        data = self._cached(hex_)
        if data is None:
            data = _get(self.session, f"{self.url}/dists/{self.suite}/{path}")
            if (hashlib.sha256(data).hexdigest(), len(data)) != (hex_, size):
                raise OciBuildError(f"{self.url}/dists/{self.suite}/{path} does not match the "
                                    "SHA256 in InRelease; the mirror is inconsistent, retry later")
            if self.cache_dir:
                os.makedirs(self.cache_dir, exist_ok=True)
                atomic_write(os.path.join(self.cache_dir, hex_), data)
        text = decompress(data).decode("utf-8", "replace")
        return [Package.from_paragraph(p) for p in paragraphs(text)]

    def index(self, release: Release, components: Sequence[str], arch: str) -> Index:
        return Index(p for c in components for p in self.packages(release, c, arch))
