"""The gateway's analysis stage: spans in over OTLP, traces analysed, budget and metrics honest."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from podtrace_collector.budget import DECODED_SPAN_BYTES, MemoryBudget
from podtrace_collector.collector import Collector
from podtrace_collector.errors import Overloaded
from podtrace_collector.receive.decode import Decoded, extract, parse_protobuf
from podtrace_collector.stage import AnalysisStage, _StageMetrics
from podtrace_collector.store.memory import MemoryStore

from tests.collector.analyse.tracebuilder import Trace, deployment
from tests.collector.otlp_helpers import kv, make_request, metric, running, test_config
from tests.collector.store.samples import window

PROTOBUF = {"Content-Type": "application/x-protobuf"}
FE = deployment("shop", "frontend", "fe1")
CART = deployment("shop", "cart", "cart1")


def _decode_pb(body: bytes) -> Decoded:
    return extract(parse_protobuf(body))


def _wait_for(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_spans_are_assembled_analysed_and_counted() -> None:
    """Every span is analysed once, stored and shown in /metrics; the budget returns to 0."""
    # The helper's spans are from 2023: a retention long enough to keep them.
    with running(test_config(trace_timeout_s=0.2, retention_s=10 * 365 * 86400.0)) as c:
        body = make_request(40, spans_per_trace=4).SerializeToString()
        otlp = f"http://127.0.0.1:{c.http_port}/v1/traces"
        assert httpx.post(otlp, content=body, headers=PROTOBUF).status_code == 200
        assert httpx.post(otlp, content=body, headers=PROTOBUF).status_code == 200  # a retry
        api = f"http://127.0.0.1:{c.api_port}"

        def analysed() -> bool:
            text = httpx.get(f"{api}/metrics").text
            return metric(text, "podtrace_spans_analysed_total") == 40

        _wait_for(analysed)
        text = httpx.get(f"{api}/metrics").text
        assert metric(text, "podtrace_traces_analysed_total") == 10
        assert metric(text, "podtrace_spans_deduplicated_total") == 40
        assert metric(text, "podtrace_assembler_buffered_spans") == 0
        assert c.budget.used_spans == 0
        _wait_for(lambda: window(c.store).traces == 10)


def test_full_budget_refuses_retryably_and_holds_nothing() -> None:
    """Past the span budget the sink raises Overloaded and gives its reservation back."""
    budget = MemoryBudget(limit_bytes=10 * DECODED_SPAN_BYTES, limit_spans=10)
    sink = AnalysisStage(MemoryStore(), budget, trace_timeout_s=60.0, retention_s=0)
    decoded = _decode_pb(make_request(8, spans_per_trace=8).SerializeToString())
    sink.submit(decoded.spans)
    assert budget.used_spans == 8
    more = _decode_pb(make_request(8, spans_per_trace=8, seed=2).SerializeToString())
    try:
        sink.submit(more.spans)
    except Overloaded as exc:
        assert exc.retry_after_s > 0
    else:
        raise AssertionError("a submit past the budget was accepted")
    assert budget.used_spans == 8
    sink.start()
    sink.close(5.0)  # flushes the buffered trace to the analyser and the store
    assert budget.used_spans == 0
    assert sink.analyzer.spans == 8


def test_buffer_finishes_oldest_traces_early_before_refusing() -> None:
    """At 80 % of the budget the assembler finishes old traces early instead of refusing."""
    budget = MemoryBudget(limit_bytes=100 * DECODED_SPAN_BYTES, limit_spans=100)
    sink = AnalysisStage(MemoryStore(), budget, trace_timeout_s=60.0, retention_s=0)
    for seed in range(30):  # 30 traces x 5 spans = 150 spans through a 100-span budget
        decoded = _decode_pb(make_request(5, spans_per_trace=5, seed=seed + 10).SerializeToString())
        sink.submit(decoded.spans)
    assert sink.assembler.traces_finished_early > 0
    assert budget.used_spans <= 80
    assert sink.analyzer.spans + sink.assembler.buffered_spans == 150


def _many_workloads(names: list[str]) -> bytes:
    """One OTLP request with one request span from each of ``names`` (namespace ``made``)."""
    request = ExportTraceServiceRequest()
    now_ns = time.time_ns()
    for i, name in enumerate(names):
        rs = request.resource_spans.add()
        for key, value in (
            ("k8s.namespace.name", "made"),
            ("k8s.deployment.name", name),
            ("k8s.replicaset.name", f"{name}-5f7d8c9b4"),
        ):
            rs.resource.attributes.append(kv(key, value))
        span = rs.scope_spans.add().spans.add()
        span.trace_id, span.span_id = (i + 1).to_bytes(16, "big"), (i + 1).to_bytes(8, "big")
        span.name, span.kind = "GET /", 2
        span.start_time_unix_nano, span.end_time_unix_nano = now_ns, now_ns + 1_000_000
    return request.SerializeToString()


def _gateway_counts(c: Collector, analysed: int, stored: int) -> tuple[str, set[str]]:
    """Wait until ``analysed`` traces were analysed or capped and the store counts ``stored``;
    /metrics and the workloads' names."""
    api = f"http://127.0.0.1:{c.api_port}"

    def done() -> bool:
        text = httpx.get(f"{api}/metrics").text
        seen = metric(text, "podtrace_traces_analysed_total")
        return seen + metric(text, "podtrace_traces_over_revision_cap_total") == analysed

    _wait_for(done)
    _wait_for(lambda: window(c.store).traces == stored)
    names = {w["workload"] for w in httpx.get(f"{api}/api/v1/workloads").json()["workloads"]}
    return httpx.get(f"{api}/metrics").text, names


def test_new_workloads_per_minute_are_capped(tmp_path: Path) -> None:
    """One request naming 300 new workloads registers 100 (--max-new-revisions), counts the
    rest in totals and the cap's counters; after a restart the known ones are not new."""
    store = f"sqlite:///{tmp_path / 'podtrace.db'}"
    config = test_config(store=store, trace_timeout_s=0.2, max_new_revisions=100)
    names = [f"w{i:03d}" for i in range(300)]
    with running(config) as c:
        otlp = f"http://127.0.0.1:{c.http_port}/v1/traces"
        assert httpx.post(otlp, content=_many_workloads(names), headers=PROTOBUF).is_success
        text, registered = _gateway_counts(c, 300, 300)
    assert len(registered) == 100 and registered <= {f"made/{n}" for n in names}
    assert metric(text, "podtrace_revisions_registered_total") == 100
    assert metric(text, "podtrace_traces_over_revision_cap_total") == 200
    assert metric(text, "podtrace_spans_over_revision_cap_total") == 200
    known = sorted(n.split("/")[1] for n in registered)
    with running(replace(config, max_new_revisions=10)) as c:
        otlp = f"http://127.0.0.1:{c.http_port}/v1/traces"
        body = _many_workloads([*known, *[f"new{i}" for i in range(50)]])
        assert httpx.post(otlp, content=body, headers=PROTOBUF).is_success
        text, after = _gateway_counts(c, 150, 450)
    assert metric(text, "podtrace_traces_analysed_total") == 110  # the known 100 and 10 new
    assert metric(text, "podtrace_revisions_registered_total") == 10
    assert len(after) == 110


def test_fragments_pair_and_waiting_ones_are_added_at_close() -> None:
    """A trace's pods arriving after its timeout: the callee's times wait for the caller's span
    (the gauge shows it), are paired when it comes; a call nobody answers is added at close."""
    budget = MemoryBudget(limit_bytes=1000 * DECODED_SPAN_BYTES, limit_spans=1000)
    store = MemoryStore()
    sink = AnalysisStage(store, budget, trace_timeout_s=0.05, retention_s=0)
    metrics = _StageMetrics(sink)
    t = Trace()
    fe = t.server(FE, "fe", dur_ms=100)
    t.call(fe, CART, "cart", start_ms=10, dur_ms=40, gap_ms=10)
    t.client(fe, "GET external", start_ms=70, dur_ms=20)
    cart = [s for s in t.spans if s.resource is CART]
    frontend = [s for s in t.spans if s.resource is FE]
    sink.start()
    sink.submit(cart)
    _wait_for(lambda: _sample(metrics, "podtrace_requests_waiting_for_pair") == 1)
    sink.submit(frontend)
    _wait_for(lambda: _sample(metrics, "podtrace_requests_paired_total") == 1)
    assert _sample(metrics, "podtrace_requests_waiting_for_pair") == 1  # the external call
    sink.close(5.0)
    assert _sample(metrics, "podtrace_requests_unpaired_total") == 1
    assert _sample(metrics, "podtrace_requests_waiting_for_pair") == 0
    agg = window(store)
    cart_stats = agg.revisions[("shop/cart", "cart1")]
    assert cart_stats.self_time.quantile(0.5) == pytest.approx(60.0, rel=0.03)  # 40 + 2 x 10
    assert agg.revisions[("shop/frontend", "fe1")].self_time.total == 1
    assert agg.transit[("shop/cart", "cart1", "shop/frontend")].requests == 1


def _sample(metrics: _StageMetrics, name: str) -> float | None:
    for family in metrics.collect():
        for s in family.samples:
            if s.name == name:
                return float(s.value)
    return None
