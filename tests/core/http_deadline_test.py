"""Every HTTP request ocibuild makes has a deadline from before it connects, and bounded timers.

Servers on loopback trickle their response headers one byte a second (the read timeout
never fires): a Debian index fetch (`ocibuild lock`), a .deb download and a registry blob
pull are each cut at their deadline, with the exact error. A declared blob size of any
magnitude gives a deadline of at most `MAX_BLOB_DEADLINE_S`, and no watchdog thread dies.
"""

from __future__ import annotations

import functools
import itertools
import math
import socket
from contextlib import contextmanager
import threading
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Iterator, List

import pytest
import requests

from ocibuild import mediatypes
from ocibuild.debian import repository
from ocibuild.debian.download import fetch_deb
from ocibuild.debian.repository import Mirror
from ocibuild.errors import OciBuildError
from ocibuild.image.manifest import Descriptor
from ocibuild.reference import parse_reference
from ocibuild.registry.deadline import MAX_DEADLINE_S, Deadline, Watchdog
from ocibuild.registry.errors import RegistryError
from ocibuild.registry.pull import download_blob, fetch_manifest
from ocibuild.registry.transport import MAX_BLOB_DEADLINE_S, Transport
from tests.fixtures.hostile_registry import HostileRegistry, answer, elapsed, trickle_headers
from tests.fixtures.time_limit import within


@pytest.fixture
def trickling() -> Iterator[HostileRegistry]:
    """Answers every GET with headers trickled one byte a second."""
    with HostileRegistry() as server:
        server.on("GET", "/", trickle_headers(1.0))
        yield server


@contextmanager
def thread_errors() -> Iterator[List[BaseException]]:
    """What threads started inside raised (set in the test body: pytest sets its own hook
    around each test call)."""
    errors: List[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        yield errors
    finally:
        threading.excepthook = previous


def test_a_mirror_trickling_its_headers_meets_the_deadline(
        trickling: HostileRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository, "DEADLINE_S", 1.5)
    mirror = Mirror(trickling.url + "/debian", "bookworm", allow_unsigned=True)
    start = time.monotonic()
    with within(20), pytest.raises(OciBuildError) as err:
        mirror.release()
    assert elapsed(start) < 4
    assert str(err.value) == (f"GET {trickling.url}/debian/dists/bookworm/InRelease: not "
                              "complete after 0 bytes when the deadline of 1.5 s passed; the "
                              "mirror is too slow or stalled, retry or use another mirror")


def test_a_deb_download_trickling_its_headers_meets_the_deadline(
        trickling: HostileRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository, "DEADLINE_S", 1.5)
    url = trickling.url + "/pool/main/h/hello.deb"
    start = time.monotonic()
    with within(20), pytest.raises(OciBuildError) as err:
        # A plain session, as `ocibuild build` passes: fetch_deb must watch it itself.
        fetch_deb(requests.Session(), [url], "a" * 64, 100, str(tmp_path))
    assert elapsed(start) < 4
    assert str(err.value) == (f"GET {url}: not complete after 0 bytes when the deadline of "
                              "1.5 s passed; the mirror is too slow or stalled, retry or use "
                              "another mirror")
    assert list(tmp_path.iterdir()) == []


def test_a_blob_pull_trickling_its_headers_meets_the_deadline(
        trickling: HostileRegistry, tmp_path: Path) -> None:
    descriptor = Descriptor(mediatypes.OCI_LAYER_GZIP, "sha256:" + "b" * 64, 100)
    transport = Transport(trickling.host, insecure=True, deadline_s=1.0, min_rate=200)
    start = time.monotonic()
    with within(20), pytest.raises(RegistryError, match=r"^GET .*/v2/app/blobs/sha256:b{64}: 0: "
                                                        r"no complete answer within 1.5 s"):
        download_blob(transport, parse_reference(f"{trickling.host}/app"), descriptor,
                      str(tmp_path / "blob"))
    assert elapsed(start) < 4


@pytest.mark.parametrize("size", [0, 1 << 30, 10 << 30, 2 ** 63 - 1, 10 ** 30, 10 ** 400])
def test_a_blob_deadline_is_capped_whatever_its_declared_size(size: int) -> None:
    seconds = Transport("registry.example").blob_deadline_s(size)
    assert seconds == min(120 + size / (64 << 10), MAX_BLOB_DEADLINE_S) if size < 10 ** 100 \
        else seconds == MAX_BLOB_DEADLINE_S
    assert MAX_BLOB_DEADLINE_S == 6 * 3600


@pytest.mark.parametrize("seconds", [1e30, math.inf, -5.0, math.nan, 10.0 ** 300])
def test_every_deadline_makes_a_timer_that_works(seconds: float) -> None:
    deadline = Deadline(seconds)
    with thread_errors() as errors, Watchdog(deadline):
        time.sleep(0.05)  # the timer thread has started waiting (or fired, for <= 0)
    assert errors == []
    assert 0 <= deadline.seconds <= MAX_DEADLINE_S


def test_a_huge_declared_blob_size_keeps_the_watchdog_alive(tmp_path: Path) -> None:
    descriptor = Descriptor(mediatypes.OCI_LAYER_GZIP, "sha256:" + "b" * 64, 10 ** 30)
    with HostileRegistry() as registry:
        # A moment before answering, so the watchdog's timer is waiting when it is cancelled.
        registry.on("GET", "/v2/app/blobs/",
                    lambda handler: (time.sleep(0.2), answer(200, b"short")(handler)))
        transport = Transport(registry.host, insecure=True)
        with thread_errors() as errors, pytest.raises(
                OciBuildError, match=r"the blob has digest sha256:[0-9a-f]{64} and size 5, not "
                                     r"sha256:b{64} and 10{30}; not using"):
            download_blob(transport, parse_reference(f"{registry.host}/app"), descriptor,
                          str(tmp_path / "blob"))
    assert errors == []


@functools.lru_cache(maxsize=None)
def _gzip_bomb(size: int) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    return b"".join(squeeze.compress(block) for _ in range(size >> 20)) + squeeze.flush()


@pytest.mark.parametrize("what", ["manifest", "token"])
def test_a_gzip_bomb_is_cut_at_the_cap_of_decoded_bytes(what: str) -> None:
    """requests decodes Content-Encoding: the caps count decoded bytes, read a bounded
    amount at a time, so 1 GiB never exists in memory."""
    bomb = _gzip_bomb(1 << 30)  # 1 GiB of zeros in ~1 MiB
    with HostileRegistry() as registry:
        gzipped = {"Content-Encoding": "gzip", "Content-Type": mediatypes.OCI_MANIFEST}
        if what == "token":
            registry.require(f'Bearer realm="{registry.url}/token",service="s"')
            registry.on("GET", "/token", answer(200, bomb, gzipped))
            expected = (rf"^GET {registry.url}/token: 200: the token server's answer is over "
                        r"1048576 bytes; refusing to parse it$")
        else:
            registry.on("GET", "/v2/app/manifests/1", answer(200, bomb, gzipped))
            expected = (rf"^{registry.host}/app:1: the manifest is over 4194304 bytes; "
                        "refusing it$")
        tracemalloc.start()
        try:
            with pytest.raises(OciBuildError, match=expected):
                fetch_manifest(Transport(registry.host, insecure=True),
                               parse_reference(f"{registry.host}/app"), "1")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 32 << 20


def _header_flood(lines: int, width: int):
    def respond(handler) -> None:
        handler.close_connection = True
        head = (b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * width)
                                                  for i in range(lines))
                + b"Content-Length: 0\r\n\r\n")
        handler.write_body([head])
    return respond


@pytest.mark.parametrize("lines, width", [(100_000, 10), (1, 200_000)],
                         ids=["100000-header-lines", "one-200-KB-line"])
def test_a_header_flood_is_refused_at_once(lines: int, width: int) -> None:
    with HostileRegistry() as server:
        server.on("GET", "/", _header_flood(lines, width))
        start = time.monotonic()
        with pytest.raises(RegistryError) as registry_err:
            fetch_manifest(Transport(server.host, insecure=True, attempts=1),
                           parse_reference(f"{server.host}/app"), "1")
        with pytest.raises(OciBuildError) as mirror_err:
            Mirror(server.url, "s", allow_unsigned=True).release()
        assert elapsed(start) < 5
    assert str(registry_err.value) == (f"GET {server.url}/v2/app/manifests/1: 0: cannot "
                                       "connect, or no well-formed status line and headers "
                                       "came back: ConnectionError")
    assert str(mirror_err.value) == (f"GET {server.url}/dists/s/InRelease: cannot download: "
                                     "ConnectionError")


def _stall_then_drop(seconds: float):
    """Half a status line, a byte at a time over `seconds`, then the connection closes."""
    def respond(handler) -> None:
        handler.close_connection = True
        part = b"HTTP/1.1 20"
        handler.write_body((part[i:i + 1] for i in range(len(part))), seconds / len(part))
    return respond


def test_retries_share_a_budget_of_two_deadlines() -> None:
    """Each try stalls until just before its 1 s deadline and drops: retried, but all tries
    of the request end by 2 s, not 5 tries x 1 s."""
    with HostileRegistry() as server:
        server.on("GET", "/v2/app/manifests/1", _stall_then_drop(0.8))
        transport = Transport(server.host, insecure=True, deadline_s=1.0, sleep=lambda s: None)
        start = time.monotonic()
        with pytest.raises(RegistryError, match=r"^GET .*/v2/app/manifests/1: 0: "):
            fetch_manifest(transport, parse_reference(f"{server.host}/app"), "1")
        assert elapsed(start) < 2.6
        assert 2 <= len(server.seen) <= 3


def _trickled_chunk_size_line(handler) -> None:
    """Chunked, then a chunk-size line that never ends, a byte every 0.1 s: each byte
    restarts the read timeout, and the read of that one line never returns."""
    handler.close_connection = True
    handler.write_body([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"])
    handler.write_body(itertools.repeat(b"0", 600), 0.1)


def test_a_trickled_chunk_size_line_meets_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository, "DEADLINE_S", 1.5)
    with HostileRegistry() as server:
        server.on("GET", "/", _trickled_chunk_size_line)
        start = time.monotonic()
        with within(20), pytest.raises(RegistryError) as registry_err:
            fetch_manifest(Transport(server.host, insecure=True, deadline_s=1.5, attempts=1),
                           parse_reference(f"{server.host}/app"), "1")
        assert elapsed(start) < 4
        with within(20), pytest.raises(OciBuildError) as mirror_err:
            Mirror(server.url, "s", allow_unsigned=True).release()
        assert elapsed(start) < 8
    assert str(registry_err.value).startswith(f"GET {server.url}/v2/app/manifests/1: 0: no "
                                              "complete answer within 1.5 s, the deadline")
    assert str(mirror_err.value) == (f"GET {server.url}/dists/s/InRelease: not complete after "
                                     "0 bytes when the deadline of 1.5 s passed; the mirror is "
                                     "too slow or stalled, retry or use another mirror")


def test_an_upload_the_server_stops_reading_meets_the_deadline() -> None:
    """The watchdog is armed while the body is sent too: a registry that accepts the
    connection and never reads cannot hold a push (256 MiB fills every socket buffer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    accepted: List[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    host = f"127.0.0.1:{listener.getsockname()[1]}"
    start = time.monotonic()
    try:
        with within(20), pytest.raises(RegistryError) as err:
            Transport(host, insecure=True, attempts=1, deadline_s=1.5).request(
                "PUT", "/v2/app/blobs/uploads/1", scope="s", expected=(201,),
                data=b"x" * (256 << 20))
    finally:
        for sock in accepted + [listener]:
            sock.close()
    assert elapsed(start) < 4
    assert str(err.value).startswith(f"PUT http://{host}/v2/app/blobs/uploads/1: 0: no complete "
                                     "answer within 1.5 s, the deadline for this request")
