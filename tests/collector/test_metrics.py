"""Self-telemetry: one registry per collector, the documented metric names."""

from __future__ import annotations

from podtrace_collector.metrics import CollectorMetrics

from tests.collector.otlp_helpers import metric

DOCUMENTED = [
    "podtrace_otlp_requests_total",
    "podtrace_spans_received_total",
    "podtrace_spans_accepted_total",
    "podtrace_spans_rejected_total",
    "podtrace_spans_deduplicated_total",
    "podtrace_spans_refused_total",
    "podtrace_spans_dropped_total",
    "podtrace_memory_budget_used_bytes",
    "podtrace_memory_budget_limit_bytes",
    "podtrace_buffered_spans",
    "podtrace_buffered_spans_limit",
    "podtrace_forward_queue_spans",
    "podtrace_forward_spans_sent_total",
    "podtrace_forward_requests_failed_total",
    "podtrace_forward_retries_total",
    "podtrace_forward_spans_dropped_total",
    "podtrace_sink_spans_total",
]


def test_collectors_have_separate_registries() -> None:
    """Two collectors in one process count independently."""
    a, b = CollectorMetrics(), CollectorMetrics()
    a.spans_received.inc(5)
    assert metric(a.render().decode(), "podtrace_spans_received_total") == 5
    assert metric(b.render().decode(), "podtrace_spans_received_total") == 0


def test_documented_names_are_exposed() -> None:
    """Every documented metric family appears in the exposition (labelled ones once used)."""
    m = CollectorMetrics()
    m.requests.labels("http", "ok").inc()
    m.drop("forward_queue_full", 3)
    m.drop("ignored", 0)
    m.forward_queue.labels("t").set(1)
    m.forward_sent.labels("t").inc()
    m.forward_failed.labels("t", "grpc_unavailable").inc()
    m.forward_retried.labels("t").inc()
    m.forward_dropped.labels("t", "shutdown").inc()
    text = m.render().decode()
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    for name in DOCUMENTED:
        base = name.removesuffix("_total")
        assert base in families or name in families, name
    assert metric(text, "podtrace_spans_dropped_total", reason="forward_queue_full") == 3
    assert 'reason="ignored"' not in text


def test_budget_gauges_read_live_values() -> None:
    """The budget gauges call back at scrape time."""
    m = CollectorMetrics()
    used = [10]
    m.watch_budget(lambda: used[0], lambda: 2)
    used[0] = 42
    assert metric(m.render().decode(), "podtrace_memory_budget_used_bytes") == 42
