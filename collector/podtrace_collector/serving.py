"""The HTTP servers (OTLP/HTTP, API) on uvicorn: read deadlines, a connection cap, descriptors.

uvicorn closes idle keep-alive connections but sets no deadline on *reading* a request: a client
that sends its headers or body slowly, or nothing at all, holds a connection and a file
descriptor for as long as it likes, and enough of them exhaust the process's descriptors, after
which no port accepts anyone.  ``guarded_protocol`` (uvicorn's httptools protocol) adds

* a header deadline: the request line and headers within ``HEADER_TIMEOUT_S`` of the connection
  (or of the previous response, on a kept-alive connection);
* a body deadline: the body within ``BODY_TIMEOUT_S`` of the headers;
* a connection cap per server: past it, the connection that has waited longest for its client
  (headers or body still incomplete) is closed to make room, so a new client is served at once.

Closed connections are counted in ``podtrace_http_connections_closed_total{server,reason}``.
``raise_fd_limit`` lifts the soft descriptor limit to the hard one at ``podtrace collector``
start, and ``connection_cap`` shares the descriptors between the three ports.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
# Descriptors kept for everything but client connections: the store, the event loops, gRPC's
# internals, forward channels, logs.
RESERVED_FDS = 128
MIN_CONNECTIONS = 16

OnClose = Callable[[str], None]


def fd_limit() -> int:
    """The process's soft limit on open file descriptors."""
    return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def raise_fd_limit() -> int:
    """Raise the soft descriptor limit to the hard limit where allowed; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # a container may forbid it: keep what there is
            logger.warning("cannot raise the open-file limit", extra={"error": str(exc)})
    return fd_limit()


def connection_cap(soft_limit: int) -> int:
    """Client connections allowed per port: a third each of what the reserve leaves."""
    return max(MIN_CONNECTIONS, (soft_limit - RESERVED_FDS) // 3)


class _GuardedProtocol(HttpToolsProtocol):
    max_connections = 1024
    on_close: OnClose = staticmethod(lambda reason: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self.waiting_since: float | None = None  # waiting on the client's request since then
        self._request_complete = True
        self._response_complete = True

    # -- uvicorn's callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_request()
        if len(self.connections) > self.max_connections:
            self._evict()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.waiting_since = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_complete = self._response_complete = False

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(BODY_TIMEOUT_S, "body_timeout")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._request_complete = True
        if self._response_complete:  # answered before the body ended: the next request
            self._wait_for_request()
        else:  # the application is working: nothing to wait for from the client
            self._cancel()
            self.waiting_since = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._response_complete = True
        if self._request_complete and not self.transport.is_closing():
            self._wait_for_request()

    # -- deadlines -------------------------------------------------------------------------

    def _wait_for_request(self) -> None:
        self.waiting_since = time.monotonic()
        self._arm(HEADER_TIMEOUT_S, "header_timeout")

    def _arm(self, timeout_s: float, reason: str) -> None:
        self._cancel()
        self._timer = self.loop.call_later(timeout_s, self._close, reason)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close(self, reason: str) -> None:
        self._timer = None
        self.waiting_since = None
        if not self.transport.is_closing():
            self.on_close(reason)
            self.transport.close()

    def _evict(self) -> None:
        """Close the connection that has waited longest for its client (this one at worst)."""
        waiting = [
            c
            for c in self.connections
            if isinstance(c, _GuardedProtocol) and c.waiting_since is not None
        ]
        victim = min(waiting, key=lambda c: c.waiting_since or 0.0, default=self)
        victim._cancel()
        victim._close("evicted")


def guarded_protocol(*, max_connections: int, on_close: OnClose) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with read deadlines and a cap of ``max_connections``."""
    attrs = {"max_connections": max_connections, "on_close": staticmethod(on_close)}
    return type("GuardedHttpProtocol", (_GuardedProtocol,), attrs)
