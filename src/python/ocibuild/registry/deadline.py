"""Deadlines for registry requests: each attempt must be complete by a set time.

requests' read timeout restarts with every byte, so it bounds a silent server but not one
that trickles: one byte a second keeps a client forever. `Deadline` is checked while a body
streams (`Transport.chunks`), between reads; `Watchdog` covers what one read can block in:
the status line and headers, which http.client reads before we get the response (100 lines
of 64 KiB each), and a chunk-size line of the body (64 KiB too), by shutting the request's
socket when the deadline passes, so the blocked read fails at once.

The watchdog finds the socket through the connection pools of `watched_session`: they record
the connections a request on this thread takes.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Optional

import requests
import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ocibuild.registry.errors import RegistryError


# No request waits longer than this, whatever a size or an option says: a day. Also keeps
# every timer value one `threading.Timer` takes (a value past ~292 years is OverflowError).
MAX_DEADLINE_S = 24 * 3600.0


def safe_seconds(seconds: float) -> float:
    """`seconds` within [0, MAX_DEADLINE_S]; NaN is 0 (no time, rather than forever)."""
    return max(0.0, min(seconds, MAX_DEADLINE_S)) if seconds == seconds else 0.0


class Deadline:
    """When one attempt of a request must be complete (its body read); it starts when made,
    that is before the connection is opened, so connecting and the headers count too."""

    def __init__(self, seconds: float) -> None:
        self.seconds = safe_seconds(seconds)
        self.at = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self, method: str, url: str) -> None:
        if self.remaining() <= 0:
            raise RegistryError(method, url, 0, f"no complete answer within {self.seconds:g} s, "
                                "the deadline for this request; the registry or the network "
                                "is stalling (a blob's deadline grows with its size)")


class _Watched(threading.local):
    # The connections this thread's current request uses, for `Watchdog`.
    connections: Optional[list] = None


_watched = _Watched()


class _WatchedPool(HTTPConnectionPool):
    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        if _watched.connections is not None:
            _watched.connections.append(conn)
        return conn


class _WatchedTlsPool(HTTPSConnectionPool, _WatchedPool):
    pass


class Watchdog:
    """`with Watchdog(deadline): response = session.request(...)`: the request's socket is
    shut when the deadline passes, until `cancel` (call it once the body is read or the
    response closed). While the head is read, it finds the socket through the connection
    the pool handed out; from the moment the head is in, it holds that socket object itself,
    so a connection reconnected for another request later is never touched (a closed socket
    object cannot be shut: its descriptor is gone, not reused)."""

    def __init__(self, deadline: Deadline) -> None:
        self.connections: list = []
        self.sockets: Optional[list] = None
        self._timer = threading.Timer(safe_seconds(deadline.remaining()), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> "Watchdog":
        _watched.connections = self.connections
        self._timer.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        _watched.connections = None
        if exc_type is not None:
            self.cancel()
        else:  # the body is still to come: a trickled chunk-size line must be cut too
            self.sockets = [c.sock for c in self.connections if getattr(c, "sock", None)]

    def cancel(self) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        sockets = self.sockets
        if sockets is None:
            sockets = [getattr(conn, "sock", None) for conn in self.connections]
        for sock in sockets:
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """Its pools, direct or through a proxy, record connections for `Watchdog`."""

    _POOLS = {"http": _WatchedPool, "https": _WatchedTlsPool}

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # SOCKS keeps its own pools (unwatched)
            manager.pool_classes_by_scheme = self._POOLS
        return manager


def watch(session: requests.Session) -> requests.Session:
    """`session`, its http(s) connections made visible to `Watchdog` (done once)."""
    if not isinstance(session.get_adapter("http://x/"), _WatchedAdapter):
        adapter = _WatchedAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


def watched_session() -> requests.Session:
    """A session whose connections `Watchdog` can shut."""
    return watch(requests.Session())
