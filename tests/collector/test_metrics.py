"""Self-telemetry: one registry per collector, the documented metric names."""

from __future__ import annotations

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from podtrace_collector.metrics import (
    CLOSE_REASONS,
    CLOSING_SERVERS,
    DROP_REASONS,
    OUTCOMES,
    CollectorMetrics,
)
from podtrace_collector.receive import status

import podtrace
from tests.collector.otlp_helpers import (
    RecordingSink,
    make_request,
    metric,
    running,
    test_config,
)

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


def test_process_and_python_series() -> None:
    """The process's own series (CPU, memory, fds, GC, the Python version) are on the registry."""
    text = CollectorMetrics().render().decode()
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "python_gc_collections_total",
    ):
        assert any(line.startswith(name) for line in text.splitlines()), name
    assert 'python_info{implementation="CPython"' in text
    assert metric(text, "process_resident_memory_bytes") > 1e6


def test_build_info() -> None:
    """podtrace_build_info carries the installed version, value 1."""
    text = CollectorMetrics().render().decode()
    line = next(line for line in text.splitlines() if line.startswith("podtrace_build_info{"))
    assert f'version="{podtrace.__version__}"' in line and line.endswith(" 1.0")


def test_fixed_label_values_start_at_zero() -> None:
    """Every drop reason, request outcome and close reason has a series before it happens."""
    text = CollectorMetrics().render().decode()
    for reason in DROP_REASONS:
        assert f'podtrace_spans_dropped_total{{reason="{reason}"}} 0.0' in text
    for transport, outcomes in OUTCOMES.items():
        for outcome in outcomes:
            sample = f'podtrace_otlp_requests_total{{outcome="{outcome}",transport="{transport}"}}'
            assert f"{sample} 0.0" in text
    for server in CLOSING_SERVERS:
        for reason in CLOSE_REASONS:
            sample = (
                f'podtrace_http_connections_closed_total{{reason="{reason}",server="{server}"}}'
            )
            assert f"{sample} 0.0" in text


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_every_answered_outcome_is_initialised(transport: str) -> None:
    """The outcomes the receivers count (receive/status.py's table) are all created at zero."""
    answers = [answer for _, answer in status._TABLE] + [status.INTERNAL, status.UNAUTHORIZED]
    assert {a.outcome for a in answers} <= set(OUTCOMES[transport])
    assert {"ok", "partial"} <= set(OUTCOMES[transport])


def test_forward_targets_start_at_zero() -> None:
    """A sidecar's forward target has its sent and dropped series before any span."""
    config = test_config(mode="sidecar", forward=("127.0.0.1:9",))
    with running(config, pod_attributes={}) as collector:
        text = httpx.get(f"http://127.0.0.1:{collector.api_port}/metrics").text
    target = "grpc://127.0.0.1:9"
    assert f'podtrace_forward_spans_sent_total{{target="{target}"}} 0.0' in text
    for reason in ("forward_queue_full", "forward_rejected", "shutdown"):
        sample = f'podtrace_forward_spans_dropped_total{{reason="{reason}",target="{target}"}}'
        assert f"{sample} 0.0" in text


def test_request_durations_per_transport_and_route() -> None:
    """Exports are timed per transport, API requests per route template (unmatched as one)."""
    with running(test_config(), sink=RecordingSink()) as collector:
        body = make_request(4).SerializeToString()
        headers = {"Content-Type": "application/x-protobuf"}
        httpx.post(
            f"http://127.0.0.1:{collector.http_port}/v1/traces", content=body, headers=headers
        )
        with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(make_request(2), timeout=10)
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(make_request(3), timeout=10)
        api = f"http://127.0.0.1:{collector.api_port}"
        for path in ("/api/v1/graph", "/api/v1/graph?since=1h", "/nothing/1", "/nothing/2"):
            httpx.get(api + path)
        text = httpx.get(f"{api}/metrics").text
    name = "podtrace_otlp_request_duration_seconds_count"
    assert metric(text, name, transport="http", signal="traces") == 1
    assert metric(text, name, transport="grpc", signal="traces") == 2
    name = "podtrace_api_request_duration_seconds_count"
    assert metric(text, name, route="/api/v1/graph") == 2
    assert metric(text, name, route="unmatched") == 2
    assert 'route="/nothing' not in text
