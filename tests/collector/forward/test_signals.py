"""Forwarding metrics and logs: every endpoint gets every request, refusals instead of losses."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from podtrace_collector.budget import MemoryBudget
from podtrace_collector.errors import Overloaded, ShuttingDown, TooLarge
from podtrace_collector.forward.signals import SignalForwarder
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.signals import LOGS

from tests.collector.otlp_helpers import metric
from tests.collector.signal_receiver import SignalReceiver


def _logs(n: int) -> bytes:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for i in range(n):
        records.add().body.string_value = f"line {i}"
    return request.SerializeToString()


def _forwarder(
    urls: list[str], **kw: int
) -> tuple[SignalForwarder, CollectorMetrics, MemoryBudget]:
    metrics, budget = CollectorMetrics(), MemoryBudget(1 << 24, 10_000)
    fwd = SignalForwarder(LOGS, urls, metrics=metrics, budget=budget, retry_max_s=0.2, **kw)
    fwd.start()
    return fwd, metrics, budget


def test_every_endpoint_gets_every_request() -> None:
    """Two endpoints (gRPC and HTTP): both receive the request, byte for byte."""
    with SignalReceiver() as a, SignalReceiver() as b:
        fwd, metrics, budget = _forwarder([a.grpc_url, b.http_url])
        fwd.forward(_logs(3), 3)
        got_a = a.wait_for("logs", lambda r: len(r) == 1)
        got_b = b.wait_for("logs", lambda r: len(r) == 1)
        fwd.close(5)
    assert got_a[0].body == got_b[0].body == _logs(3)
    assert (got_a[0].transport, got_b[0].transport) == ("grpc", "http")
    text = metrics.render().decode()
    sent = "podtrace_forward_items_sent_total"
    assert metric(text, sent, signal="logs", target=a.grpc_url) == 3
    assert metric(text, sent, signal="logs", target=f"{b.http_url}/v1/logs") == 3
    assert budget.used_bytes == 0 and budget.used_spans == 0


def test_larger_than_a_queue_is_too_large_and_holds_nothing() -> None:
    """More records than a whole queue: TooLarge (never retryable), nothing reserved."""
    fwd, _, budget = _forwarder(["http://127.0.0.1:9"], queue_items=2)
    with pytest.raises(TooLarge, match="larger than the whole forward queue"):
        fwd.forward(_logs(3), 3)
    assert budget.used_bytes == 0
    fwd.close(0.1)


def test_full_queue_is_overloaded_all_or_nothing() -> None:
    """One endpoint's queue full: refused retryably, and the other endpoint queued nothing."""
    fwd, _, budget = _forwarder(["http://127.0.0.1:9", "http://127.0.0.1:10"], queue_items=4)
    fwd.forward(_logs(3), 3)
    used = budget.used_bytes
    with pytest.raises(Overloaded):
        fwd.forward(_logs(3), 3)
    assert budget.used_bytes == used
    assert [lane.spans for lane in fwd.lanes] == [3, 3]
    fwd.close(0.1)


def test_closing_refuses_and_counts_what_is_left() -> None:
    """After close nothing is taken; what could not be sent is counted as dropped at shutdown."""
    fwd, metrics, _ = _forwarder(["http://127.0.0.1:9"])
    fwd.forward(_logs(2), 2)
    fwd.close(0.2)
    with pytest.raises(ShuttingDown):
        fwd.forward(_logs(1), 1)
    text = metrics.render().decode()
    assert (
        metric(text, "podtrace_signal_items_dropped_total", signal="logs", reason="shutdown") == 2
    )


@pytest.fixture
def refusing() -> Iterator[str]:
    """An upstream that answers every export with 400 (a permanent refusal)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_permanent_refusal_is_counted(refusing: str) -> None:
    """An upstream's 400: the records are dropped (not retried) and counted by reason."""
    fwd, metrics, _ = _forwarder([refusing])
    fwd.forward(_logs(4), 4)
    fwd.close(5)
    text = metrics.render().decode()
    dropped = "podtrace_signal_items_dropped_total"
    assert metric(text, dropped, signal="logs", reason="forward_rejected") == 4
    failed = "podtrace_forward_signal_requests_failed_total"
    assert metric(text, failed, signal="logs", target=f"{refusing}/v1/logs", reason="http_400") == 1
