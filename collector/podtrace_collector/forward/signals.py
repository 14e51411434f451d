"""Forwarding metrics or logs: every request, as it is, to every endpoint of its flag.

``--forward-metrics`` and ``--forward-logs`` each name one or more OTLP endpoints (an OpenTelemetry
Collector, Prometheus' OTLP receiver, a vendor); every request goes to every one of them.  Each
endpoint has a ``Lane`` (the same bounded retrying queue as span forwarding, counting data points
or log records instead of spans) whose bytes are reserved in the shared ``MemoryBudget``.  These
signals have no other destination, so a request a queue or the budget cannot take is refused
(retryably when full now, for good when larger than a whole queue) and the client keeps it;
what is accepted is lost only when an upstream refuses it for good or at shutdown (counted).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from podtrace_collector.budget import MemoryBudget
from podtrace_collector.config import CollectorConfig
from podtrace_collector.errors import Overloaded, ShuttingDown, TooLarge
from podtrace_collector.forward.lane import ITEM_OVERHEAD_BYTES, Lane
from podtrace_collector.forward.upstream import Target, make_exporter, parse_target
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.signals import FORWARDED, LOGS, METRICS, Signal

# As for spans: batches stay under the 4 MiB that OTLP/gRPC servers accept by default.
MAX_BATCH_BYTES = 4 * 1024 * 1024


class SignalForwarder:
    """Forwards one signal's serialized export requests to every configured endpoint.

    Args:
        signal: ``METRICS`` or ``LOGS``.
        urls: the endpoints (``--forward-metrics`` / ``--forward-logs``).
        metrics: where counts go.
        budget: the shared memory budget.
        queue_items: each endpoint's queue bound, in data points or log records.
        token: bearer token sent upstream.
        max_message_bytes: the largest request sent.

    Raises:
        ConfigError: a URL does not parse.
    """

    def __init__(
        self,
        signal: Signal,
        urls: Sequence[str],
        *,
        metrics: CollectorMetrics,
        budget: MemoryBudget,
        queue_items: int = 100_000,
        token: str | None = None,
        max_message_bytes: int = 4 * 1024 * 1024,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        self.signal = signal
        self.targets = [parse_target(url, signal=signal) for url in urls]
        self._metrics = metrics
        self._budget = budget
        self._queue_items = queue_items
        self._token = token
        self._max_message_bytes = max_message_bytes
        self._retry = (retry_initial_s, retry_max_s)
        self.lanes: tuple[Lane, ...] = ()
        self._closing = False

    def start(self) -> None:
        """Start one sender thread per endpoint."""
        self.lanes = tuple(self._lane(target) for target in self.targets)
        for lane in self.lanes:
            lane.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, drain every queue for at most ``timeout_s``, count what is left."""
        self._closing = True
        deadline = time.monotonic() + timeout_s
        for lane in self.lanes:
            lane.close(deadline)
        for lane in self.lanes:
            lane.join(deadline)

    def forward(self, payload: bytes, n_items: int) -> None:
        """Queue one serialized request for every endpoint, all or nothing.

        Raises:
            ShuttingDown: the collector is stopping.
            Overloaded: the budget is exhausted or a queue is full now; nothing was queued.
            TooLarge: the request is larger than a whole queue or the whole budget.
        """
        if self._closing:
            raise ShuttingDown(f"not taking {self.signal.name}: shutting down")
        lanes = self.lanes
        n_bytes = (len(payload) + ITEM_OVERHEAD_BYTES) * len(lanes)
        self._budget.reserve(n_bytes, n_items * len(lanes))
        held: list[Lane] = []
        try:
            for lane in lanes:
                if n_items > lane.queue_spans:
                    raise TooLarge(
                        f"a request of {n_items} {self.signal.items} is larger than the whole"
                        f" forward queue of {lane.target.url} ({lane.queue_spans}); send smaller"
                        " batches"
                    )
                if not lane.reserve(n_items):
                    raise Overloaded(f"the {self.signal.name} queue for {lane.target.url} is full")
                held.append(lane)
        except (Overloaded, TooLarge):
            for lane in held:
                lane.cancel(n_items)
            self._budget.release(n_bytes, n_items * len(lanes))
            raise
        for lane in lanes:
            lane.put(payload, n_items)

    def _lane(self, target: Target) -> Lane:
        exporter = make_exporter(
            target, token=self._token, max_message_bytes=self._max_message_bytes, signal=self.signal
        )
        return Lane(
            target,
            exporter,
            metrics=self._metrics,
            budget=self._budget,
            queue_spans=self._queue_items,
            max_batch_bytes=min(self._max_message_bytes, MAX_BATCH_BYTES),
            retry_initial_s=self._retry[0],
            retry_max_s=self._retry[1],
            signal=self.signal.name,
        )


def signal_forwarders(
    config: CollectorConfig, metrics: CollectorMetrics, budget: MemoryBudget
) -> dict[str, SignalForwarder]:
    """A forwarder for each signal with endpoints (``--forward-metrics``, ``--forward-logs``).

    The queue bound and retry settings are the span forwarding's (``--forward-queue-spans``
    counts data points or log records here).
    """
    urls = {METRICS.name: config.forward_metrics, LOGS.name: config.forward_logs}
    return {
        signal.name: SignalForwarder(
            signal,
            urls[signal.name],
            metrics=metrics,
            budget=budget,
            queue_items=config.forward_queue_spans,
            token=config.forward_token,
            max_message_bytes=config.max_body_bytes,
            retry_initial_s=min(0.1, config.forward_retry_max_s),
            retry_max_s=config.forward_retry_max_s,
        )
        for signal in FORWARDED
        if urls[signal.name]
    }
