"""One forward endpoint's bounded queue and the thread that sends it, with retries.

Items are serialized export requests (``ExportTraceServiceRequest``; a metrics or logs lane,
``signal``, holds those requests and counts their data points or log records); since repeated
protobuf fields concatenate, a batch is the byte-concatenation of queued items, sent as one
request.  A batch that fails with a retryable answer stays in flight and is retried with
exponential backoff (``retry_initial_s`` doubling up to ``retry_max_s``, or the upstream's
``Retry-After``/``RetryInfo`` when it gives one) for as long as the collector runs: the queue's
bound, not a time limit, is what caps memory, and new items past the bound are dropped and counted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque

from podtrace_collector.budget import MemoryBudget
from podtrace_collector.forward.upstream import Exporter, Outcome, Target
from podtrace_collector.metrics import DROP_FORWARD_REJECTED, DROP_SHUTDOWN, CollectorMetrics

logger = logging.getLogger(__name__)

# Reserved per queued item on top of its bytes: the deque slot, the tuple, the bytes header.
ITEM_OVERHEAD_BYTES = 120
EXPORT_TIMEOUT_S = 5.0
LOG_EVERY_S = 60.0


class Lane:
    """A bounded retrying queue for one endpoint; thread-safe."""

    def __init__(
        self,
        target: Target,
        exporter: Exporter,
        *,
        metrics: CollectorMetrics,
        budget: MemoryBudget,
        queue_spans: int,
        max_batch_bytes: int,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        signal: str = "traces",
    ) -> None:
        self.target = target
        self._exporter = exporter
        self._budget = budget
        self._queue_spans = queue_spans
        self._max_batch_bytes = max_batch_bytes
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._items: deque[tuple[bytes, int]] = deque()
        self._spans = 0  # queued plus in flight
        self._cond = threading.Condition()
        self._deadline: float | None = None  # set by close(): drain until then
        self._retiring = False  # set by retire(): hand everything back, send nothing more
        self._logged_at: dict[str, float] = {}  # reason -> when last logged (rate limit)
        self._thread = threading.Thread(
            target=self._run, name=f"podtrace-forward {target.url}", daemon=True
        )
        self._counts = metrics.lane_counters(target.url, signal)

    @property
    def spans(self) -> int:
        """Spans queued or in flight."""
        return self._spans

    def start(self) -> None:
        self._thread.start()

    @property
    def queue_spans(self) -> int:
        """The queue's bound, in spans."""
        return self._queue_spans

    def offer(self, payload: bytes, n_spans: int) -> bool:
        """Queue a serialized request; ``False`` (nothing queued) when the bound is reached."""
        if not self.reserve(n_spans):
            return False
        self.put(payload, n_spans)
        return True

    def reserve(self, n_spans: int) -> bool:
        """Hold room for ``n_spans`` (``put`` them, or ``cancel``); ``False`` past the bound."""
        with self._cond:
            if self._deadline is not None or self._spans + n_spans > self._queue_spans:
                return False
            self._spans += n_spans
        return True

    def cancel(self, n_spans: int) -> None:
        """Give back room held with ``reserve``."""
        with self._cond:
            self._spans -= n_spans

    def put(self, payload: bytes, n_spans: int) -> None:
        """Queue a serialized request into room held with ``reserve``."""
        with self._cond:
            self._items.append((payload, n_spans))
            self._cond.notify()
        self._counts.queued(self._spans)

    def take_all(self) -> list[tuple[bytes, int]]:
        """Remove and return every queued item (not the batch in flight)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._spans -= sum(n for _, n in items)
        self._counts.queued(self._spans)
        return items

    def close(self, deadline: float) -> None:
        """Send what is queued until ``deadline`` (monotonic), then drop and count the rest."""
        with self._cond:
            if self._deadline is None or deadline < self._deadline:
                self._deadline = deadline
            self._cond.notify_all()

    def retire(self) -> list[tuple[bytes, int]]:
        """Stop sending and return every item, including the batch in flight (for re-routing).

        Waits for the attempt in progress, at most the export timeout.
        """
        with self._cond:
            self._retiring = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(EXPORT_TIMEOUT_S + 1.0)
        self._exporter.close()
        return self.take_all()

    def join(self, deadline: float) -> None:
        """Wait for the sender to finish draining; count whatever it could not send."""
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()) + 0.5)
        with self._cond:
            self._drop_queued_locked()
        self._exporter.close()

    # -- the sender thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._deliver(batch)

    def _next_batch(self) -> list[tuple[bytes, int]] | None:
        with self._cond:
            while not self._items or self._retiring:
                if self._deadline is not None or self._retiring:
                    return None
                self._cond.wait()
            if self._past_deadline():
                self._drop_queued_locked()
                return None
            batch: list[tuple[bytes, int]] = []
            size = 0
            while self._items and (
                not batch or size + len(self._items[0][0]) <= self._max_batch_bytes
            ):
                batch.append(self._items.popleft())
                size += len(batch[-1][0])
            return batch

    def _deliver(self, batch: list[tuple[bytes, int]]) -> None:
        payloads = [payload for payload, _ in batch]
        n_spans = sum(n for _, n in batch)
        body = b"".join(payloads)
        delay = self._retry_initial_s
        while True:
            outcome = self._exporter.send(body, timeout_s=self._timeout())
            if outcome.ok:
                self._done(
                    payloads, n_spans, sent=n_spans - outcome.rejected, lost=outcome.rejected
                )
                return
            self._counts.failed(outcome.reason)
            if not outcome.retryable:
                self._log_refusal(outcome.reason, n_spans)
                self._done(payloads, n_spans, sent=0, lost=n_spans)
                return
            wait_s = retry_wait_s(outcome, delay, self._retry_max_s)
            if not self._sleep(wait_s):
                if self._retiring:  # re-routed by the forwarder, not lost
                    with self._cond:
                        self._items.extendleft(reversed(batch))
                    return
                self._done(payloads, n_spans, sent=0, lost=n_spans, reason=DROP_SHUTDOWN)
                return
            self._counts.retried()
            delay = min(delay * 2, self._retry_max_s)

    def _done(
        self,
        payloads: list[bytes],
        n_spans: int,
        *,
        sent: int,
        lost: int,
        reason: str = DROP_FORWARD_REJECTED,
    ) -> None:
        with self._cond:
            self._spans -= n_spans
        self._counts.queued(self._spans)
        self._budget.release(
            sum(len(p) for p in payloads) + ITEM_OVERHEAD_BYTES * len(payloads), n_spans
        )
        if sent:
            self._counts.sent(sent)
        self._counts.dropped(reason, lost)

    def _sleep(self, wait_s: float) -> bool:
        """Back off; ``False`` when retiring, or when the drain deadline would pass first."""
        with self._cond:
            end = time.monotonic() + wait_s
            while True:
                if self._retiring or (self._deadline is not None and end > self._deadline):
                    return False
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return True
                self._cond.wait(remaining)

    def _log_refusal(self, reason: str, n_spans: int) -> None:
        """At most one line per reason per minute: drops are counted in the metrics anyway."""
        now = time.monotonic()
        if now - self._logged_at.get(reason, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged_at[reason] = now
            logger.warning(
                "forward target refused a batch permanently",
                extra={"target": self.target.url, "reason": reason, "spans": n_spans},
            )

    def _timeout(self) -> float:
        if self._deadline is None:
            return EXPORT_TIMEOUT_S
        return max(0.05, min(EXPORT_TIMEOUT_S, self._deadline - time.monotonic()))

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _drop_queued_locked(self) -> None:
        items = list(self._items)
        if not items:
            return
        self._items.clear()
        n_spans = sum(n for _, n in items)
        self._spans -= n_spans
        self._counts.queued(self._spans)
        self._budget.release(
            sum(len(p) for p, _ in items) + ITEM_OVERHEAD_BYTES * len(items), n_spans
        )
        self._counts.dropped(DROP_SHUTDOWN, n_spans)


def retry_wait_s(outcome: Outcome, backoff_s: float, max_s: float) -> float:
    """How long to wait before retrying: what the upstream asked for (up to 30 s or ``max_s``),
    else ``backoff_s`` with equal jitter (between half and all of it), so that many sidecars
    refused at once by one gateway do not retry in lockstep."""
    if outcome.retry_after_s is not None:
        return min(max(outcome.retry_after_s, 0.0), max(max_s, 30.0))
    return random.uniform(backoff_s / 2, backoff_s)
