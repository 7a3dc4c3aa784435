"""Read a Debian suite from a mirror: `InRelease`, its signature checked with `gpgv`, then
`Packages` indexes verified against the SHA-256 sums InRelease lists. Package files are later
verified against the SHA-256 the index gives, so the chain reaches from the keyring to every
byte.

Trust rules (docs/security.md, "Debian mirrors and packages"):
* Only the bytes gpgv verified are parsed: gpgv writes the signed text (`--output`) and
  that is what `parse_release` reads. An InRelease with anything but whitespace before or
  after its one signed message is refused outright, as apt does.
* No keyring, or no gpgv, is an error unless the caller allows an unsigned index
  (`allow_unsigned`, the `allow_unsigned_index` field); the lockfile records which.
* Every download is streamed with a size cap and an overall deadline; a decompressed index
  is capped too (xz bombs). A failed download leaves nothing in the cache.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import hashlib
import lzma
import os
import re
import shutil
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urljoin

import requests
import urllib3

from ocibuild import untrusted
from ocibuild.atomic import atomic_write
from ocibuild.debian.control import paragraphs
from ocibuild.debian.gpgv import verify_signature
from ocibuild.debian.lockfile import UNSIGNED, VERIFIED
from ocibuild.debian.resolve import Index, Package
from ocibuild.errors import OciBuildError
from ocibuild.registry.deadline import Deadline, Watchdog, watch
from ocibuild.registry.origin import origin, refusal

KEYRINGS = ("/usr/share/keyrings/debian-archive-keyring.gpg",)
TIMEOUT_S = (10, 60)  # connect, and each read: a stalled mirror fails, a slow one does not
# The whole of one download, however the server trickles it. Module constants so tests can
# lower them. bookworm's InRelease is ~150 KiB and main/amd64 Packages.xz ~9 MiB.
DEADLINE_S = 600.0
INRELEASE_MAX_BYTES = 16 << 20
PACKAGES_MAX_BYTES = 1 << 30  # decompressed; bookworm main/amd64 is ~45 MiB
# A Packages.xz expands about 5 times (bookworm main/amd64: 8.8 MiB to 45 MiB); more than
# INDEX_RATIO times (or 1 MiB for a tiny one) is a decompression bomb.
INDEX_RATIO = 100
INDEX_MIN_EXPANSION = 1 << 20
CHUNK = 1 << 16
MAX_REDIRECTS = 10

_BEGIN = "-----BEGIN PGP SIGNED MESSAGE-----"
_SIG_BEGIN = "-----BEGIN PGP SIGNATURE-----"
_SIG_END = "-----END PGP SIGNATURE-----"
_SHA256_LINE = re.compile(r"([0-9a-f]{64})\s+([0-9]{1,15})\s+(\S+)")


@dataclass(frozen=True)
class Release:
    suite: str
    sha256: Dict[str, Tuple[str, int]]  # path under dists/SUITE/ -> (hex, size)
    signature: str  # lockfile.VERIFIED + keyring and key, or lockfile.UNSIGNED
    date: str = ""  # the `Date` field, as written ("" when absent)

    @property
    def timestamp(self) -> str:
        """`date` as snapshot archives name an instant (`20251108T103211Z`), or ""."""
        return snapshot_timestamp(self.date)


def snapshot_timestamp(date: str) -> str:
    """An RFC 2822 `Date` (as Release files write it) as `YYYYMMDDTHHMMSSZ` in UTC, or ""
    when it is absent or not a date (the lockfile then offers no `{timestamp}`)."""
    try:
        parsed = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return ""
    if parsed is None:
        return ""
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc)
    return parsed.strftime("%Y%m%dT%H%M%SZ")


def redact(url: str) -> str:
    """`url` without the password of `http://user:password@host/` (private mirrors), for
    messages and nothing else."""
    return re.sub(r"^([a-z]+://)[^/@]*@", r"\1***@", url)


def _get(session: requests.Session, url: str, limit: int, deadline_s: Optional[float] = None,
         *, missing_ok: bool = False) -> Optional[bytes]:
    """The body of `url`, refused past `limit` bytes or past `deadline_s` seconds in all
    (None for a 404 when `missing_ok`)."""
    chunks: List[bytes] = []
    if not fetch_to(session, url, limit, chunks.append, deadline_s, missing_ok=missing_ok):
        return None
    return b"".join(chunks)


def fetch_to(session: requests.Session, url: str, limit: int, sink: Callable[[bytes], object],
             deadline_s: Optional[float] = None, *, missing_ok: bool = False) -> bool:
    """Stream the body of `url` into `sink`, refused past `limit` bytes or past `deadline_s`
    seconds in all, counted from before connecting (a mirror trickling its headers is cut
    too); False for a 404 when `missing_ok`. Errors name the URL without its credentials."""
    shown = redact(url)
    deadline = Deadline(DEADLINE_S if deadline_s is None else deadline_s)
    received = [0]
    try:
        with _follow(watch(session), url, shown, deadline) as response:
            try:
                if response.status_code == 404 and missing_ok:
                    return False
                if response.status_code != 200:
                    raise OciBuildError(f"GET {shown}: {response.status_code}: "
                                        f"{untrusted.shown(str(response.reason or ''), 100)}")
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise OciBuildError(f"GET {shown}: the server announces {declared} bytes, "
                                        f"over the {limit}-byte limit; refusing to download it")
                _stream(response, shown, limit, deadline, received, sink)
                return True
            finally:
                response.close()
                response.watchdog.cancel()
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as err:
        _check(deadline, shown, received[0])  # the watchdog shut the socket: say why
        raise OciBuildError(f"GET {shown}: cannot download: {err.__class__.__name__}") from None


def _follow(session: requests.Session, url: str, shown: str,
            deadline: Deadline) -> requests.Response:
    """GET `url`, following redirects ourselves: each Location must be a URL every parser
    reads alike (`registry.origin.refusal`), https never turns into http, and the mirror
    URL's credentials go to its own origin only."""
    auth = requests.utils.get_auth_from_url(url)
    home = origin(url)
    # The URL is the mirror's and a lockfile's `Filename` (a mirror chose it): parsers must
    # agree on it too (the mirror URL's own credentials are ours, so not counted).
    problem = refusal(_without_userinfo(url))
    if problem:
        raise OciBuildError(f"GET {shown}: the URL {problem}; refusing to fetch it")
    for _ in range(MAX_REDIRECTS + 1):
        _check(deadline, shown, 0)
        left = max(0.01, deadline.remaining())
        watchdog = Watchdog(deadline)  # cancelled once the body is read (`fetch_to`)
        with watchdog:
            # identity: the sizes and digests InRelease gives are of the bytes as stored.
            response = session.get(url, timeout=(min(TIMEOUT_S[0], left),
                                                 min(TIMEOUT_S[1], left)),
                                   stream=True, allow_redirects=False,
                                   auth=auth if any(auth) and origin(url) == home else None,
                                   headers={"Accept-Encoding": "identity"})
        response.watchdog = watchdog  # type: ignore[attr-defined]
        location = response.headers.get("Location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            return response
        response.close()
        watchdog.cancel()
        # Joined to the URL without its credentials: a server's URL never carries any.
        target = urljoin(_without_userinfo(url), location)
        problem = refusal(target)
        if not problem and origin(url).scheme == "https" and origin(target).scheme == "http":
            problem = "is plain HTTP, redirected to from HTTPS (a downgrade)"
        if problem:
            raise OciBuildError(f"GET {shown}: {response.status_code}: the redirect to "
                                f"{target[:200]!r} {problem}; refusing to follow it")
        url = target
    raise OciBuildError(f"GET {shown}: more than {MAX_REDIRECTS} redirects; the mirror is "
                        "redirecting in a loop")


def _without_userinfo(url: str) -> str:
    # No backslash in what is cut: `http://EVIL\@mirror/` has no userinfo for urllib3.
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\\]*@", r"\1", url)


def _check(deadline: Deadline, url: str, received: int) -> None:
    if deadline.remaining() <= 0:
        raise OciBuildError(f"GET {url}: not complete after {received} bytes when the "
                            f"deadline of {deadline.seconds:g} s passed; the mirror is too "
                            "slow or stalled, retry or use another mirror")


def _stream(response: requests.Response, url: str, limit: int, deadline: Deadline,
            received: List[int], sink: Callable[[bytes], object]) -> None:
    # read1 returns what one receive brings, so the deadline is checked between receives
    # (each bounded by the read timeout, and a read stuck in a trickled chunk-size line by
    # the watchdog) and a server trickling bytes cannot stretch it.
    read = getattr(response.raw, "read1", None) or response.raw.read
    while True:
        _check(deadline, url, received[0])
        chunk = read(CHUNK)
        _check(deadline, url, received[0])  # a socket the watchdog shut may read as an end
        if not chunk:
            return
        received[0] += len(chunk)
        if received[0] > limit:
            raise OciBuildError(f"GET {url}: more than {limit} bytes arrived; refusing it")
        sink(chunk)


def _framing(inrelease: bytes) -> None:
    """One clear-signed message and nothing but whitespace around it (as apt requires):
    gpgv ignores text outside the signed part, and so must whatever reads the file."""
    lines = [line.rstrip() for line in inrelease.decode("utf-8", "replace").splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if not lines or lines[0] != _BEGIN:
        raise OciBuildError(f"InRelease does not start with `{_BEGIN}`; refusing a file with "
                            "unsigned text before (or instead of) its signed message")
    if lines.count(_BEGIN) != 1 or lines.count(_SIG_BEGIN) != 1:
        raise OciBuildError("InRelease holds more than one signed message; refusing it")
    if lines[-1] != _SIG_END:
        raise OciBuildError(f"InRelease does not end with `{_SIG_END}`; refusing a file with "
                            "text after its signature")


def unverified_text(inrelease: bytes) -> str:
    """The body of a clear-signed InRelease, not verified (only for `allow_unsigned`): the
    lines between the armor headers and the signature, dash-escaping undone (RFC 4880 7.1)."""
    _framing(inrelease)
    lines = inrelease.decode("utf-8", "replace").strip().splitlines()
    try:
        start = lines.index("", 1) + 1  # the armor headers (`Hash: ...`) end at a blank line
        end = lines.index(_SIG_BEGIN)
    except ValueError:
        raise OciBuildError("InRelease is not a well-formed clear-signed message") from None
    return "\n".join(line[2:] if line.startswith("- ") else line for line in lines[start:end])


def parse_release(text: str, suite: str, signature: str) -> Release:
    """The SHA256 sums of a Release body (`text`, as gpgv verified it)."""
    fields = next(paragraphs(text), {})
    named = {fields.get("Suite"), fields.get("Codename")} - {None}
    if named and suite not in named:
        # A validly signed InRelease of another suite replayed under this URL.
        raise OciBuildError(f"InRelease of {suite} is signed for {' / '.join(sorted(named))}, "
                            "not for this suite; the mirror serves the wrong file")
    sums: Dict[str, Tuple[str, int]] = {}
    for line in fields.get("SHA256", "").splitlines():
        if not line.strip():
            continue
        match = _SHA256_LINE.fullmatch(line.strip())
        if not match:
            raise OciBuildError(f"InRelease of {suite}: the SHA256 line {line.strip()[:120]!r} "
                                "is not `HEX SIZE PATH`")
        sums[match.group(3)] = (match.group(1), int(match.group(2)))
    if not sums:
        raise OciBuildError(f"InRelease of {suite} lists no SHA256 sums")
    date = fields.get("Date", "")
    return Release(suite, sums, signature, date if len(date) < 100 and date.isprintable() else "")


def _decompress_xz(data: bytes, url: str, limit: int) -> bytes:
    """`data` decompressed, at most `limit` bytes and INDEX_RATIO times its size: the
    decompressor stops one byte past the bound, so no more is ever held."""
    total, limit = limit, min(limit, max(INDEX_MIN_EXPANSION, INDEX_RATIO * len(data)))
    decompressor = lzma.LZMADecompressor()
    try:
        out = decompressor.decompress(data, max_length=limit + 1)
    except lzma.LZMAError as err:
        raise OciBuildError(f"{url} is corrupt or truncated: {err}") from None
    if len(out) > limit:
        raise OciBuildError(f"{url} decompresses to more than {limit} bytes (at most "
                            f"{INDEX_RATIO} times its {len(data)} bytes, {total} in all); "
                            "refusing a decompression bomb")
    if not decompressor.eof:
        raise OciBuildError(f"{url} is corrupt or truncated: the xz stream does not end")
    return out


class Mirror:
    def __init__(self, url: str, suite: str, cache_dir: Optional[str] = None,
                 keyring: Optional[str] = None, *, allow_unsigned: bool = False,
                 keyring_name: Optional[str] = None, origin: Optional[str] = None) -> None:
        """`keyring`: the keyring file to verify with (default: the Debian archive keyring);
        `keyring_name`: how the lockfile names it (default: its path). `allow_unsigned`
        without `keyring`: read the index without verifying it (InRelease, or Release when
        the repository has no InRelease). `origin`: the mirror as the BUILD file names it,
        when `url` is another mirror serving the same files (`[oci].debian_mirrors`); the
        packages carry it, so lockfiles do not depend on where they were made."""
        self.url = url.rstrip("/")
        self.origin = (origin or url).rstrip("/")
        self.suite = suite
        self.cache_dir = cache_dir
        self.keyring = keyring or (None if allow_unsigned else _default_keyring())
        self.keyring_name = keyring_name or self.keyring
        if self.keyring and not os.path.isfile(self.keyring):
            raise OciBuildError(f"the keyring {self.keyring_name} does not exist")
        if self.keyring and shutil.which("gpgv") is None:
            raise OciBuildError(f"gpgv is not installed to check the InRelease signature "
                                f"with {self.keyring_name}; install gpgv")
        self.session = requests.Session()
        self.session.trust_env = True  # a mirror is reached as apt reaches it (proxies)

    def release(self) -> Release:
        url = f"{self.url}/dists/{self.suite}/InRelease"
        if self.keyring is None:
            return self._unsigned_release(url)
        data = _get(self.session, url, INRELEASE_MAX_BYTES)
        assert data is not None
        _framing(data)
        verified = verify_signature(data, self.keyring)
        return parse_release(verified.text, self.suite,
                             f"{VERIFIED}{self.keyring_name} "
                             f"(key {', '.join(verified.fingerprints)})")

    def _unsigned_release(self, url: str) -> Release:
        """An unverified InRelease, or for a repository that is not signed at all (no
        InRelease), its plain `Release`."""
        data = _get(self.session, url, INRELEASE_MAX_BYTES, missing_ok=True)
        if data is not None:
            return parse_release(unverified_text(data), self.suite, UNSIGNED)
        plain = _get(self.session, f"{self.url}/dists/{self.suite}/Release", INRELEASE_MAX_BYTES)
        assert plain is not None
        return parse_release(plain.decode("utf-8", "replace"), self.suite, UNSIGNED)

    def _cached(self, hex_: str, size: int) -> Optional[bytes]:
        if not self.cache_dir:
            return None
        path = os.path.join(self.cache_dir, hex_)
        try:
            if os.path.getsize(path) != size:
                return None
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data if hashlib.sha256(data).hexdigest() == hex_ else None

    def packages(self, release: Release, component: str, arch: str) -> List[Package]:
        for suffix in (".xz", ""):
            path = f"{component}/binary-{arch}/Packages{suffix}"
            if path in release.sha256:
                break
        else:
            raise OciBuildError(f"{redact(self.url)}/dists/{self.suite}: no Packages index for "
                                f"{component}/{arch} (check `components` and `architectures`)")
        hex_, size = release.sha256[path]
        url = f"{self.url}/dists/{self.suite}/{path}"
        shown = redact(url)
        data = self._cached(hex_, size)
        if data is None:
            # InRelease gives the size: a byte more is already a wrong file.
            data = _get(self.session, url, min(size, PACKAGES_MAX_BYTES))
            assert data is not None
            if (hashlib.sha256(data).hexdigest(), len(data)) != (hex_, size):
                raise OciBuildError(f"{shown} does not match the SHA256 in InRelease; the mirror "
                                    "is inconsistent, retry later")
            if self.cache_dir:
                atomic_write(os.path.join(self.cache_dir, hex_), data)
        if suffix == ".xz":
            data = _decompress_xz(data, shown, PACKAGES_MAX_BYTES)
        text = data.decode("utf-8", "replace")
        return [dataclasses.replace(Package.from_paragraph(p, shown), suite=self.suite,
                                    mirror=self.origin) for p in paragraphs(text)]

    def index(self, release: Release, components: Sequence[str], arch: str) -> Index:
        return Index(p for c in components for p in self.packages(release, c, arch))


def _default_keyring() -> str:
    found = next((k for k in KEYRINGS if os.path.isfile(k)), None)
    if found is None:
        raise OciBuildError(
            f"no keyring to check the suite's InRelease signature with: {', '.join(KEYRINGS)} "
            "does not exist. Install the Debian archive keyring (package "
            "`debian-archive-keyring`), set the target's `keyring`, or, accepting that anyone "
            "between you and the mirror can then choose the packages, set "
            "`allow_unsigned_index=True`")
    return found
