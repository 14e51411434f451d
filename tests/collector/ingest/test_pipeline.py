"""The receivers' shared pipeline: counting, dedupe, refusal, and forwarding from a gateway."""

from __future__ import annotations

import pytest
from podtrace_collector.budget import MemoryBudget
from podtrace_collector.errors import Overloaded
from podtrace_collector.forward.forwarder import Forwarder
from podtrace_collector.ingest.dedupe import Deduplicator
from podtrace_collector.ingest.pipeline import Ingest, ShuttingDown
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.receive.decode import parse_protobuf

from tests.collector.otlp_helpers import RecordingSink, make_request, metric


def _ingest(sink: RecordingSink | None, forwarder: Forwarder | None = None) -> Ingest:
    return Ingest(metrics=CollectorMetrics(), dedupe=Deduplicator(), sink=sink, forwarder=forwarder)


def test_counts_received_rejected_accepted_deduplicated() -> None:
    """Every span is counted once as received, and once as rejected, duplicate or accepted."""
    sink = RecordingSink()
    ingest = _ingest(sink)
    request = make_request(4)
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = b"short"
    body = request.SerializeToString()
    first = ingest.export(parse_protobuf(body), body=body)
    second = ingest.export(parse_protobuf(body), body=body)
    assert (first.accepted, first.rejected, second.accepted) == (3, 1, 0)
    text = ingest.metrics.render().decode()
    assert metric(text, "podtrace_spans_received_total") == 8
    assert metric(text, "podtrace_spans_rejected_total") == 2
    assert metric(text, "podtrace_spans_deduplicated_total") == 3
    assert metric(text, "podtrace_spans_accepted_total") == 3
    assert len(sink.spans) == 3


def test_refused_request_is_not_remembered() -> None:
    """Overloaded propagates, spans are counted as refused, and a retry is accepted."""
    sink = RecordingSink()
    ingest = _ingest(sink)
    body = make_request(2).SerializeToString()
    sink.overloaded = True
    with pytest.raises(Overloaded):
        ingest.export(parse_protobuf(body))
    sink.overloaded = False
    assert ingest.export(parse_protobuf(body)).accepted == 2
    assert metric(ingest.metrics.render().decode(), "podtrace_spans_refused_total") == 2


def test_stopping_refuses_with_shutting_down() -> None:
    """While stopping, every request is refused with the retryable ShuttingDown."""
    ingest = _ingest(RecordingSink())
    ingest.stopping = True
    with pytest.raises(ShuttingDown):
        ingest.export(parse_protobuf(b""))


def test_gateway_forwarding_over_budget_drops_and_counts() -> None:
    """A gateway keeps the spans for analysis; forward copies past the budget are counted drops."""
    metrics = CollectorMetrics()
    forwarder = Forwarder(
        ["127.0.0.1:9"], hashed=False, metrics=metrics, budget=MemoryBudget(100, 10**6)
    )
    sink = RecordingSink()
    ingest = Ingest(metrics=metrics, dedupe=Deduplicator(), sink=sink, forwarder=forwarder)
    forwarder.start()
    try:
        assert ingest.export(parse_protobuf(make_request(5).SerializeToString())).accepted == 5
    finally:
        forwarder.close(0.0)
    assert len(sink.spans) == 5
    text = metrics.render().decode()
    assert metric(text, "podtrace_spans_dropped_total", reason="forward_over_budget") == 5
