"""Adversarial cases against a real gateway: poison spans, fuzzed bodies, floods of senders."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from podtrace_collector.store import open_store

from tests.collector.otlp_helpers import make_request, metric, running, test_config
from tests.collector.receive.test_decode import POISON

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _now_request(n_spans: int, *, service: str, seed: int) -> ExportTraceServiceRequest:
    """A request of valid spans stamped now (retention would prune older minutes)."""
    resource = {"service.name": service, "k8s.namespace.name": "shop"}
    request = make_request(n_spans, resource=resource | {"k8s.deployment.name": service}, seed=seed)
    now = time.time_ns()
    for i, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        span.start_time_unix_nano = now + i
        span.end_time_unix_nano = now + i + 1_000_000
    return request


def test_poison_span_is_rejected_and_later_writes_persist(tmp_path: Path) -> None:
    """A span ending at 2**63 ns: 200 with partial success; what follows is stored."""
    db = tmp_path / "podtrace.db"
    config = test_config(store=f"sqlite:///{db}", trace_timeout_s=0.2)
    with running(config) as gateway:
        url = f"http://127.0.0.1:{gateway.http_port}/v1/traces"
        answer = httpx.post(url, content=POISON, headers=PROTOBUF)
        assert answer.status_code == 200
        partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
        assert partial.rejected_spans == 1
        assert "end_time_unix_nano 9223372036854775808" in partial.error_message
        good = _now_request(4, service="cart", seed=3).SerializeToString()
        assert httpx.post(url, content=good, headers=PROTOBUF).status_code == 200
        text = gateway.metrics.render().decode()
        assert metric(text, "podtrace_spans_rejected_total") == 1
        assert metric(text, "podtrace_spans_accepted_total") == 4
    # Stopping flushed everything: the good workload is stored, the poison one is not.
    store = open_store(f"sqlite:///{db}")
    try:
        workloads = {key[0] for key in store.revisions()}
    finally:
        store.close()
    assert workloads == {"shop/cart"}
