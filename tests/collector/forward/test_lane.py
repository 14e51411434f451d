"""One endpoint's queue: bound, batching into one request, drain and counted drops on shutdown."""

from __future__ import annotations

import time

from podtrace_collector.budget import MemoryBudget
from podtrace_collector.forward.lane import ITEM_OVERHEAD_BYTES, Lane, retry_wait_s
from podtrace_collector.forward.upstream import Outcome, Target, make_exporter
from podtrace_collector.metrics import CollectorMetrics

from tests.collector.otlp_helpers import RecordingSink, make_request, metric, running


def _lane(
    target: Target, metrics: CollectorMetrics, budget: MemoryBudget, bound: int = 100
) -> Lane:
    exporter = make_exporter(target, token=None, max_message_bytes=1 << 20)
    return Lane(
        target, exporter, metrics=metrics, budget=budget, queue_spans=bound, max_batch_bytes=1 << 20
    )


def test_bound_refuses_past_it() -> None:
    """offer() refuses an item that would take the queue past its span bound."""
    lane = _lane(
        Target("grpc", "127.0.0.1", 9), CollectorMetrics(), MemoryBudget(1 << 30, 1 << 30), 10
    )
    assert lane.offer(b"x", 6)
    assert not lane.offer(b"y", 5)
    assert lane.offer(b"z", 4) and lane.spans == 10
    lane.join(time.monotonic())  # never started: what is queued is dropped and counted
    assert lane.spans == 0


def test_queued_items_go_out_as_one_request() -> None:
    """Items queued together are concatenated into a single export request."""
    sink = RecordingSink()
    with running(sink=sink) as gateway:
        metrics, budget = CollectorMetrics(), MemoryBudget(1 << 30, 1 << 30)
        lane = _lane(Target("grpc", "127.0.0.1", gateway.grpc_port or 0), metrics, budget)
        payloads = [make_request(4, seed=s).SerializeToString() for s in range(5)]
        for payload in payloads:
            budget.reserve(len(payload) + ITEM_OVERHEAD_BYTES, 4)
            assert lane.offer(payload, 4)
        lane.start()
        lane.close(time.monotonic() + 5)
        lane.join(time.monotonic() + 5)
        requests = metric(
            gateway.metrics.render().decode(),
            "podtrace_otlp_requests_total",
            outcome="ok",
            transport="grpc",
        )
    assert len(sink.spans) == 20 and requests == 1
    assert (
        metric(
            metrics.render().decode(), "podtrace_forward_spans_sent_total", target=lane.target.url
        )
        == 20
    )
    assert (budget.used_bytes, budget.used_spans, lane.spans) == (0, 0, 0)


def test_unreachable_upstream_drops_on_shutdown_and_counts() -> None:
    """With the upstream down, close() retries until its deadline, then drops and counts."""
    metrics, budget = CollectorMetrics(), MemoryBudget(1 << 30, 1 << 30)
    lane = _lane(Target("grpc", "127.0.0.1", 9), metrics, budget)
    payload = make_request(3).SerializeToString()
    for _ in range(2):
        budget.reserve(len(payload) + ITEM_OVERHEAD_BYTES, 3)
        lane.offer(payload, 3)
    lane.start()
    time.sleep(0.3)
    started = time.monotonic()
    lane.close(started + 0.5)
    lane.join(started + 0.5)
    assert time.monotonic() - started < 3
    text = metrics.render().decode()
    assert metric(text, "podtrace_spans_dropped_total", reason="shutdown") == 6
    assert metric(text, "podtrace_forward_retries_total", target=lane.target.url) >= 1
    assert (budget.used_bytes, budget.used_spans, lane.spans) == (0, 0, 0)


def test_backoff_is_jittered_and_retry_after_is_obeyed() -> None:
    """Backoff waits between half and all of the delay, spread out; an asked delay is kept."""
    waits = [retry_wait_s(Outcome(False, retryable=True), 2.0, 5.0) for _ in range(200)]
    assert all(1.0 <= w <= 2.0 for w in waits)
    assert max(waits) - min(waits) > 0.5  # not in lockstep
    asked = Outcome(False, retryable=True, retry_after_s=7.0)
    assert retry_wait_s(asked, 2.0, 5.0) == 7.0  # the upstream's wish, up to 30 s
    assert retry_wait_s(Outcome(False, retryable=True, retry_after_s=99.0), 2.0, 5.0) == 30.0
