"""The store writer: one background thread moving analysed minutes from the analyser to the store.

Every ``interval_s`` it drains the analyser (``drain() -> {bucket start: Aggregates}``) and writes
the batch in one store transaction; every ``prune_interval_s`` it deletes minutes older than the
retention horizon.  A failed write keeps the batch and merges it into the next attempt; past
``max_pending_buckets`` minutes waiting, the oldest are dropped and counted, so a broken disk
costs bounded memory and never silent loss.  ``close`` stops the thread after a final flush.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.store.base import Store

logger = logging.getLogger(__name__)


class Drainable(Protocol):
    def drain(self) -> dict[int, Aggregates]: ...


class StoreWriter:
    """Periodically drain an analyser into a store, and prune by retention.

    Args:
        source: the analyser (anything with ``drain()``).
        store: where the minutes go.
        interval_s: how often to drain and write.
        retention_s: minutes older than this are pruned (``0`` or less: never).
        prune_interval_s: how often to prune.
        max_pending_buckets: minutes kept for retry while writes fail; older ones are dropped.
        clock: the time source (Unix seconds), replaceable in tests.
    """

    def __init__(
        self,
        source: Drainable,
        store: Store,
        *,
        interval_s: float = 2.0,
        retention_s: float = 7 * 86_400.0,
        prune_interval_s: float = 600.0,
        max_pending_buckets: int = 120,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.store = store
        self.interval_s = interval_s
        self.retention_s = retention_s
        self.prune_interval_s = prune_interval_s
        self.max_pending_buckets = max_pending_buckets
        self._clock = clock
        self._pending: dict[int, Aggregates] = {}
        self._flush_lock = threading.Lock()  # flush() may also be called from outside
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="podtrace-store-writer", daemon=True)
        self._next_prune_s = 0.0
        self.writes = 0  # successful batch writes
        self.buckets_written = 0
        self.write_failures = 0
        self.dropped_buckets = 0  # minutes lost after repeated write failures
        self.pruned_buckets = 0
        self.prune_failures = 0
        self.last_write_s: float | None = None

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def close(self, timeout_s: float = 10.0) -> bool:
        """Stop the thread after a final drain and write; ``False`` if it did not finish in time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        self.flush()  # never started: flush from here
        return True

    @property
    def pending_buckets(self) -> int:
        """Minutes waiting for a retry after a failed write."""
        return len(self._pending)

    def flush(self) -> bool:
        """Drain the analyser and write everything pending now; ``True`` on success."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> bool:
        for bucket, agg in self.source.drain().items():
            self._pending.setdefault(bucket, Aggregates()).merge(agg)
        if not self._pending:
            return True
        try:
            self.store.write(self._pending)
        except Exception:
            self.write_failures += 1
            logger.exception("writing %d minutes to the store failed", len(self._pending))
            self._drop_excess()
            return False
        self.writes += 1
        self.buckets_written += len(self._pending)
        self.last_write_s = self._clock()
        self._pending = {}
        return True

    def prune(self) -> None:
        """Delete minutes older than the retention horizon (a no-op without retention)."""
        if self.retention_s <= 0:
            return
        try:
            self.pruned_buckets += self.store.prune(self._clock() - self.retention_s)
        except Exception:
            self.prune_failures += 1
            logger.exception("pruning the store failed")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._tick()
        self.flush()

    def _tick(self) -> None:
        self.flush()
        now = self._clock()
        if now >= self._next_prune_s:
            self._next_prune_s = now + self.prune_interval_s
            self.prune()

    def _drop_excess(self) -> None:
        excess = len(self._pending) - self.max_pending_buckets
        if excess <= 0:
            return
        for bucket in sorted(self._pending)[:excess]:
            del self._pending[bucket]
        self.dropped_buckets += excess
        logger.error("dropped %d minutes of aggregates after repeated write failures", excess)
