"""The HTTP servers' read deadlines and connection cap, on a real collector over real sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from podtrace_collector import collector as collector_module
from podtrace_collector import serving
from podtrace_collector.collector import Collector
from podtrace_collector.serving import connection_cap

from tests.collector.otlp_helpers import make_request, metric, running

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """A collector whose HTTP servers give clients 0.5 s for headers and 1 s for a body."""
    monkeypatch.setattr(serving, "HEADER_TIMEOUT_S", 0.5)
    monkeypatch.setattr(serving, "BODY_TIMEOUT_S", 1.0)
    with running() as collector:
        yield collector


def _closed_by_server(conn: socket.socket, within_s: float) -> float:
    """Seconds until the server closes ``conn`` (reads until EOF); fails after ``within_s``."""
    conn.settimeout(within_s)
    start = time.monotonic()
    while conn.recv(4096):
        pass
    return time.monotonic() - start


def _closed(collector: Collector, server: str, reason: str) -> float:
    text = collector.metrics.render().decode()
    return metric(text, "podtrace_http_connections_closed_total", server=server, reason=reason)


@pytest.mark.parametrize(("port", "server"), [("http_port", "otlp-http"), ("api_port", "api")])
def test_unfinished_headers_are_closed_at_the_deadline(
    quick: Collector, port: str, server: str
) -> None:
    """A client that never finishes its headers (or sends nothing) is closed, and counted."""
    with (
        socket.create_connection(("127.0.0.1", getattr(quick, port))) as partial,
        socket.create_connection(("127.0.0.1", getattr(quick, port))) as silent,
    ):
        partial.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        assert 0.3 < _closed_by_server(partial, 5) < 3
        assert _closed_by_server(silent, 5) < 3
    assert _closed(quick, server, "header_timeout") == 2


def test_an_unfinished_body_is_closed_at_the_deadline(quick: Collector) -> None:
    """A body that stops arriving is closed at its deadline; the request counts as client_gone."""
    body = make_request(4).SerializeToString()
    head = (
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", quick.http_port)) as conn:
        conn.sendall(head + body[:10])
        assert 0.8 < _closed_by_server(conn, 5) < 4
    assert _closed(quick, "otlp-http", "body_timeout") == 1

    def client_gone() -> float:
        text = quick.metrics.render().decode()
        return metric(text, "podtrace_otlp_requests_total", transport="http", outcome="client_gone")

    # The server closes the socket first and the application counts the request as its body
    # read ends: on a loaded machine that can come a moment after the close is seen.
    deadline = time.monotonic() + 5
    while client_gone() < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client_gone() == 1


def test_a_kept_alive_connection_waits_for_its_next_request_only_so_long(quick: Collector) -> None:
    """After an answer, the next request's headers are due within the header deadline too."""
    with httpx.Client() as client:
        url = f"http://127.0.0.1:{quick.http_port}/v1/traces"
        body = make_request(2).SerializeToString()
        assert client.post(url, content=body, headers=PROTOBUF).status_code == 200
        time.sleep(1.0)
    assert _closed(quick, "otlp-http", "header_timeout") == 1


def test_past_the_cap_the_longest_waiting_connection_makes_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At the connection cap a new client is served at once: the connection that has waited
    longest for its client is closed to make room, and counted."""
    monkeypatch.setattr(collector_module, "connection_cap", lambda limit: 4)
    with running() as collector:
        port = collector.http_port
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        try:
            time.sleep(0.2)
            url = f"http://127.0.0.1:{port}/v1/traces"
            start = time.monotonic()
            answer = httpx.post(url, content=make_request(2).SerializeToString(), headers=PROTOBUF)
            assert answer.status_code == 200 and time.monotonic() - start < 1.0
            assert _closed_by_server(idle[0], 2) < 2  # the oldest went first
        finally:
            for conn in idle:
                conn.close()
        assert _closed(collector, "otlp-http", "evicted") == 1


def test_the_connection_cap_shares_the_descriptors_between_the_ports() -> None:
    """Three ports' caps and the reserve fit the open-file limit; never under the minimum."""
    for limit in (256, 1024, 65536):
        assert 3 * connection_cap(limit) + serving.RESERVED_FDS <= limit
    assert connection_cap(64) == serving.MIN_CONNECTIONS
