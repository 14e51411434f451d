"""The collector's self-telemetry: Prometheus metrics in a per-collector registry.

Each ``Collector`` owns one ``CollectorMetrics`` with its own ``CollectorRegistry`` (never the
global one), so several collectors can run in one process (tests, benchmarks).  Other stages add
their own metrics to ``CollectorMetrics.registry`` (the gateway's analysis stage registers a
collector that reads its counters at scrape time, ``stage._StageMetrics``).  Metric names are
listed in ``docs/collector.md``.  Counters are incremented once per request or batch, never per
span.

The registry also carries the process's own series (``process_*``, ``python_*``: prometheus
client's process, platform and GC collectors), ``podtrace_build_info``, and request-duration
histograms.  Every label value a counter can take from a fixed set (outcomes, drop reasons,
close reasons) is created at zero up front, so that an alert such as
``rate(podtrace_spans_dropped_total[5m]) > 0`` has a series to evaluate before the first drop.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from functools import partial

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "CollectorMetrics"]

# Reasons for podtrace_spans_dropped_total; documented in docs/collector.md.
DROP_FORWARD_QUEUE_FULL = "forward_queue_full"
DROP_FORWARD_REJECTED = "forward_rejected"
DROP_FORWARD_OVER_BUDGET = "forward_over_budget"
DROP_SHUTDOWN = "shutdown"
DROP_REASONS = (
    DROP_FORWARD_QUEUE_FULL,
    DROP_FORWARD_REJECTED,
    DROP_FORWARD_OVER_BUDGET,
    DROP_SHUTDOWN,
)

# Outcomes of podtrace_otlp_requests_total, by transport (receive/status.py and receive/http.py).
_COMMON_OUTCOMES = ("ok", "partial", "bad_request", "unauthorized", "too_large", "overloaded")
OUTCOMES = {
    "grpc": (*_COMMON_OUTCOMES, "busy", "unavailable", "error"),
    "http": (
        *_COMMON_OUTCOMES,
        "busy",
        "unavailable",
        "error",
        "unsupported_media_type",
        "unsupported_encoding",
        "not_found",
        "method_not_allowed",
        "client_gone",
    ),
}
# Servers and reasons of podtrace_http_connections_closed_total (serving.py).
CLOSING_SERVERS = ("otlp-http", "api")
CLOSE_REASONS = ("header_timeout", "body_timeout", "evicted")
SIGNALS = ("traces", "metrics", "logs")
FORWARDED_SIGNALS = ("metrics", "logs")
# Reasons of podtrace_signal_items_dropped_total (metrics and logs).
DROP_NO_DESTINATION = "no_destination"
SIGNAL_DROP_REASONS = (DROP_NO_DESTINATION, DROP_FORWARD_REJECTED, DROP_SHUTDOWN)
# From half a millisecond (a small export) to the 10 s a slow client or store may take.
DURATION_BUCKETS_S = (
    *(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    *(1.0, 2.5, 5.0, 10.0),
)


def build_version() -> str:
    """The installed podtrace version (``unknown`` outside an install)."""
    try:
        from podtrace import __version__
    except ImportError:  # pragma: no cover  (the collector ships inside the podtrace package)
        return "unknown"
    return str(__version__)


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
        self._init_self(r)
        self._init_signals(r)
        self._init_label_values()

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

    def _init_self(self, r: CollectorRegistry) -> None:
        # process_*, python_info and python_gc_*: what the global registry has, on our own.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Info("podtrace_build", "The running podtrace version", registry=r).info(
            {"version": build_version(), "python": platform.python_version()}
        )
        self.otlp_duration = Histogram(
            "podtrace_otlp_request_duration_seconds",
            "OTLP export requests, from their first byte to the answer, by transport and signal",
            ["transport", "signal"],
            buckets=DURATION_BUCKETS_S,
            registry=r,
        )
        self.api_duration = Histogram(
            "podtrace_api_request_duration_seconds",
            "Requests on the API port by route (its path template; unmatched paths as one)",
            ["route"],
            buckets=DURATION_BUCKETS_S,
            registry=r,
        )

    def _init_signals(self, r: CollectorRegistry) -> None:
        """Metrics and logs: taken, stamped and forwarded, counted in items (points, records)."""
        self.signal_received = Counter(
            "podtrace_signal_items_received",
            "Data points (metrics) or log records (logs) in decoded export requests",
            ["signal"],
            registry=r,
        )
        self.signal_accepted = Counter(
            "podtrace_signal_items_accepted",
            "Data points or log records queued for forwarding",
            ["signal"],
            registry=r,
        )
        self.signal_refused = Counter(
            "podtrace_signal_items_refused",
            "Data points or log records in requests refused with a retryable error",
            ["signal"],
            registry=r,
        )
        self.signal_dropped = Counter(
            "podtrace_signal_items_dropped",
            "Data points or log records the collector did not deliver, by reason",
            ["signal", "reason"],
            registry=r,
        )
        labels = ["signal", "target"]
        self.forward_items_queue = Gauge(
            "podtrace_forward_items_queued",
            "Data points or log records queued per forward target",
            labels,
            registry=r,
        )
        self.forward_items_sent = Counter(
            "podtrace_forward_items_sent",
            "Data points or log records delivered per forward target",
            labels,
            registry=r,
        )
        self.forward_items_failed = Counter(
            "podtrace_forward_signal_requests_failed",
            "Failed metrics or logs export attempts per forward target and reason",
            [*labels, "reason"],
            registry=r,
        )
        self.forward_items_retried = Counter(
            "podtrace_forward_signal_retries",
            "Metrics or logs export attempts retried per forward target",
            labels,
            registry=r,
        )
        self.forward_items_dropped = Counter(
            "podtrace_forward_items_dropped",
            "Data points or log records dropped per forward target and reason",
            [*labels, "reason"],
            registry=r,
        )

    def _init_label_values(self) -> None:
        """Create every fixed label value at zero: alerts have a series before the first event."""
        for transport, outcomes in OUTCOMES.items():
            for outcome in outcomes:
                self.requests.labels(transport, outcome)
            for signal in SIGNALS:
                self.otlp_duration.labels(transport, signal)
        for reason in DROP_REASONS:
            self.spans_dropped.labels(reason)
        for server in CLOSING_SERVERS:
            for reason in CLOSE_REASONS:
                self.connections_closed.labels(server, reason)
        for signal in FORWARDED_SIGNALS:
            for family in (self.signal_received, self.signal_accepted, self.signal_refused):
                family.labels(signal)
            for reason in SIGNAL_DROP_REASONS:
                self.signal_dropped.labels(signal, reason)

    def lane_counters(self, target: str, signal: str = "traces") -> LaneCounters:
        """The series a forward lane to ``target`` counts in, created at zero."""
        return LaneCounters(self, target, signal)

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


class LaneCounters:
    """One forward lane's series: spans (traces) or items by ``signal`` (metrics, logs).

    Traces keep their own families (``podtrace_forward_spans_*``, labelled by target); metrics
    and logs count data points or log records in ``podtrace_forward_items_*`` labelled by signal
    and target.  Either way a lost item is also counted once collector-wide, by reason.
    """

    def __init__(self, metrics: CollectorMetrics, target: str, signal: str) -> None:
        m = metrics
        if signal == "traces":
            self._labels: tuple[str, ...] = (target,)
            self._failed, self._dropped = m.forward_failed, m.forward_dropped
            self._queue = m.forward_queue.labels(target)
            self._sent = m.forward_sent.labels(target)
            self._retried = m.forward_retried.labels(target)
            self._lost: Callable[[str], Counter] = m.spans_dropped.labels
            reasons: tuple[str, ...] = (
                DROP_FORWARD_QUEUE_FULL,
                DROP_FORWARD_REJECTED,
                DROP_SHUTDOWN,
            )
        else:
            self._labels = (signal, target)
            self._failed, self._dropped = m.forward_items_failed, m.forward_items_dropped
            self._queue = m.forward_items_queue.labels(signal, target)
            self._sent = m.forward_items_sent.labels(signal, target)
            self._retried = m.forward_items_retried.labels(signal, target)
            self._lost = partial(m.signal_dropped.labels, signal)
            reasons = (DROP_FORWARD_REJECTED, DROP_SHUTDOWN)
        for reason in reasons:
            self._dropped.labels(*self._labels, reason)

    def queued(self, n: int) -> None:
        self._queue.set(n)

    def sent(self, n: int) -> None:
        self._sent.inc(n)

    def retried(self) -> None:
        self._retried.inc()

    def failed(self, reason: str) -> None:
        self._failed.labels(*self._labels, reason).inc()

    def dropped(self, reason: str, n: int) -> None:
        if n:
            self._dropped.labels(*self._labels, reason).inc(n)
            self._lost(reason).inc(n)
