"""Routing by trace id: rendezvous hashing stability and request splitting."""

from __future__ import annotations

import os
from collections import Counter

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from podtrace_collector.forward.route import count_spans, rendezvous_pick, split_request
from podtrace_collector.receive.decode import parse_protobuf

from tests.collector.otlp_helpers import make_request


def test_rendezvous_moves_few_traces() -> None:
    """Adding a fourth endpoint moves about a quarter of the traces, all onto the new one."""
    seeds = [f"grpc://10.0.0.{i}:4317".encode() for i in range(4)]
    trace_ids = [os.urandom(16) for _ in range(4000)]
    before = [rendezvous_pick(t, seeds[:3]) for t in trace_ids]
    after = [rendezvous_pick(t, seeds) for t in trace_ids]
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert all(a == 3 for _, a in moved)
    assert 0.18 < len(moved) / len(trace_ids) < 0.32
    assert min(Counter(after).values()) > 800


def test_split_request_keeps_traces_together_and_filters() -> None:
    """Splitting routes whole traces, copies resources and drops spans not accepted."""
    request = make_request(12, spans_per_trace=3)
    lean = parse_protobuf(request.SerializeToString())
    spans = request.resource_spans[0].scope_spans[0].spans
    keys = {s.trace_id + s.span_id for s in spans[1:]}
    parts = split_request(lean, keys, lambda tid: tid[0] % 2, 2)
    seen: dict[bytes, int] = {}
    total = 0
    for index, (payload, n) in enumerate(parts):
        part = ExportTraceServiceRequest.FromString(payload)
        got = [s for rs in part.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert len(got) == n
        total += n
        for rs in part.resource_spans:
            assert rs.resource == request.resource_spans[0].resource
        for s in got:
            assert seen.setdefault(s.trace_id, index) == index
    assert total == 11


def test_pick_is_deterministic_and_counts() -> None:
    """The same trace id picks the same endpoint every time; count_spans counts all spans."""
    seeds = [b"grpc://10.0.0.1:4317", b"grpc://10.0.0.2:4317"]
    trace_id = bytes(range(16))
    assert len({rendezvous_pick(trace_id, seeds) for _ in range(10)}) == 1
    assert count_spans(parse_protobuf(make_request(7).SerializeToString())) == 7
