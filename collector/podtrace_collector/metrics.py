"""The collector's self-telemetry: Prometheus metrics in a per-collector registry.

Each ``Collector`` owns one ``CollectorMetrics`` with its own ``CollectorRegistry`` (never the
global one), so several collectors can run in one process (tests, benchmarks).  Other stages add
their own metrics to ``CollectorMetrics.registry`` (the gateway's analysis stage registers a
collector that reads its counters at scrape time, ``gateway._StageMetrics``).  Metric names are
listed in
``docs/collector.md``.  Counters are incremented once per request or batch, never per span.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "CollectorMetrics"]

# Reasons for podtrace_spans_dropped_total; documented in docs/collector.md.
DROP_FORWARD_QUEUE_FULL = "forward_queue_full"
DROP_FORWARD_REJECTED = "forward_rejected"
DROP_FORWARD_OVER_BUDGET = "forward_over_budget"
DROP_SHUTDOWN = "shutdown"


class CollectorMetrics:
    """Every metric of one collector, registered in ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True) if registry is None else registry
        r = self.registry
        self.requests = Counter(
            "podtrace_otlp_requests",
            "OTLP export requests by transport and outcome",
            ["transport", "outcome"],
            registry=r,
        )
        self.spans_received = Counter(
            "podtrace_spans_received", "Spans in OTLP requests that were decoded", registry=r
        )
        self.spans_accepted = Counter(
            "podtrace_spans_accepted", "Spans handed on after validation and dedupe", registry=r
        )
        self.spans_rejected = Counter(
            "podtrace_spans_rejected",
            "Invalid spans rejected with partial success (bad ids, out-of-range times)",
            registry=r,
        )
        self.spans_deduplicated = Counter(
            "podtrace_spans_deduplicated",
            "Spans dropped as duplicates of a span already received (same trace and span id)",
            registry=r,
        )
        self.spans_refused = Counter(
            "podtrace_spans_refused",
            "Spans in requests refused with a retryable error (overload, shutdown)",
            registry=r,
        )
        self.spans_dropped = Counter(
            "podtrace_spans_dropped",
            "Accepted spans the collector lost, by reason",
            ["reason"],
            registry=r,
        )
        self.memory_used = Gauge(
            "podtrace_memory_budget_used_bytes", "Bytes reserved in the memory budget", registry=r
        )
        self.memory_limit = Gauge(
            "podtrace_memory_budget_limit_bytes", "The memory budget (--memory-limit)", registry=r
        )
        self.buffered_spans = Gauge(
            "podtrace_buffered_spans", "Spans held in queues and buffers", registry=r
        )
        self.buffered_spans_limit = Gauge(
            "podtrace_buffered_spans_limit", "The span budget (--max-buffered-spans)", registry=r
        )
        self._init_forward(r)
        self._init_sink(r)
        self._init_admission(r)

    def _init_forward(self, r: CollectorRegistry) -> None:
        self.forward_queue = Gauge(
            "podtrace_forward_queue_spans",
            "Spans queued per forward target",
            ["target"],
            registry=r,
        )
        self.forward_sent = Counter(
            "podtrace_forward_spans_sent",
            "Spans delivered per forward target",
            ["target"],
            registry=r,
        )
        self.forward_failed = Counter(
            "podtrace_forward_requests_failed",
            "Failed export attempts per forward target and reason",
            ["target", "reason"],
            registry=r,
        )
        self.forward_retried = Counter(
            "podtrace_forward_retries",
            "Export attempts retried per forward target",
            ["target"],
            registry=r,
        )
        self.forward_dropped = Counter(
            "podtrace_forward_spans_dropped",
            "Spans dropped per forward target and reason",
            ["target", "reason"],
            registry=r,
        )

    def _init_sink(self, r: CollectorRegistry) -> None:
        self.sink_spans = Counter(
            "podtrace_sink_spans", "Spans submitted to the gateway's analysis stage", registry=r
        )

    def _init_admission(self, r: CollectorRegistry) -> None:
        self.exports_in_progress = Gauge(
            "podtrace_otlp_exports_in_progress",
            "OTLP exports being decoded and handed on, or waiting for a worker",
            registry=r,
        )
        self.exports_limit = Gauge(
            "podtrace_otlp_exports_limit",
            "Exports admitted at once; past it new ones are refused (outcome busy)",
            registry=r,
        )
        self.connections_closed = Counter(
            "podtrace_http_connections_closed",
            "HTTP connections the collector closed on a slow or silent client, by reason",
            ["server", "reason"],
            registry=r,
        )

    def watch_budget(
        self, used_bytes: Callable[[], float], used_spans: Callable[[], float]
    ) -> None:
        """Report a memory budget's use through the gauges, read at scrape time."""
        self.memory_used.set_function(used_bytes)
        self.buffered_spans.set_function(used_spans)

    def drop(self, reason: str, n_spans: int) -> None:
        """Count ``n_spans`` accepted spans lost for ``reason``."""
        if n_spans:
            self.spans_dropped.labels(reason).inc(n_spans)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric in the registry."""
        return generate_latest(self.registry)
