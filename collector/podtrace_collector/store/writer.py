"""The store writer: background threads moving analysed minutes into the store, and pruning it.

Every ``interval_s`` the writer thread drains the analyser (``drain() -> {bucket start:
Aggregates}``) and writes the batch in one store write.  What happens when a write fails depends
on why (``StoreError.transient``):

* **transient** (a lock, a full disk, a lost connection): the batch is kept and retried *as it
  was*, before anything drained since (which waits, merged, for the next write).  A lost answer
  is not a lost write: a remote store (ClickHouse) may have kept a batch whose acknowledgement
  never came, and recognises the same batch sent again (``ClickHouseStore`` deduplicates a
  repeated insert), which it could not if the retry carried newer minutes too.  Past
  ``max_pending_buckets`` minutes waiting, the oldest are dropped and counted (the failed
  batch first, whole), so a broken disk costs bounded memory and never silent loss.  The writer
  reports itself unhealthy (``healthy``, the collector's ``/readyz``) until a write succeeds
  again, and logs the cause once per change of state, not once per attempt.
* **deterministic** (a value the store cannot hold): retrying would fail forever, so the batch is
  split: minute by minute, then a failing minute entry by entry; what can be written is written,
  and each entry that cannot is dropped and counted (``dropped_entries``).  No accepted input can
  make two writes in a row fail.

A separate thread deletes minutes older than the retention horizon every ``prune_interval_s``,
in short store transactions, so writes go on meanwhile; ``close`` stops it between two of them.
``close`` stops the writer after a final flush.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from podtrace_collector.aggregate.stats import MAPS, Aggregates
from podtrace_collector.errors import StoreError
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
        self._retry: dict[int, Aggregates] = {}  # a batch whose write failed, resent as it is
        self._pending: dict[int, Aggregates] = {}  # drained since, written after it
        self._flush_lock = threading.Lock()  # flush() may also be called from outside
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="podtrace-store-writer", daemon=True)
        self._pruner = threading.Thread(target=self._prune_loop, name="podtrace-store-prune")
        self._pruner.daemon = True
        self.healthy = True  # the last write succeeded (or none failed yet)
        self.writes = 0  # successful batch writes
        self.buckets_written = 0
        self.write_failures = 0
        self.dropped_buckets = 0  # minutes lost after repeated write failures
        self.dropped_entries = 0  # aggregate entries the store could not hold (dropped)
        self.pruned_buckets = 0
        self.prune_failures = 0
        self.last_write_s: float | None = None

    def start(self) -> None:
        """Start the writer and pruner threads."""
        self._thread.start()
        if self.retention_s > 0:
            self._pruner.start()

    def close(self, timeout_s: float = 10.0) -> bool:
        """Stop after a final drain and write; ``False`` if that did not finish in time.

        A prune under way stops between two of its transactions; nobody waits for it.
        """
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        self.flush()  # never started: flush from here
        return True

    @property
    def pending_buckets(self) -> int:
        """Minutes waiting: a failed batch to retry and what was drained since."""
        return len(self._retry) + len(self._pending)

    def flush(self) -> bool:
        """Drain the analyser and write everything pending now; ``True`` on success."""
        with self._flush_lock:
            for bucket, agg in self.source.drain().items():
                self._pending.setdefault(bucket, Aggregates()).merge(agg)
            if self._retry:
                retry, self._retry = self._retry, {}
                if not self._write(retry):
                    return False
            batch, self._pending = self._pending, {}
            return not batch or self._write(batch)

    def _write(self, batch: dict[int, Aggregates]) -> bool:
        """Write one batch; on a transient failure keep it to retry as it is."""
        try:
            self.store.write(batch)
        except StoreError as exc:
            if exc.transient:
                self._retry = batch
                self._failed(exc)
                return False
            if not self._isolate(exc, batch):
                return False
        except Exception as exc:  # a bug: treat as deterministic, never retry it forever
            if not self._isolate(exc, batch):
                return False
        else:
            self.buckets_written += len(batch)
        self._succeeded()
        return True

    def prune(self) -> None:
        """Delete minutes older than the retention horizon (a no-op without retention)."""
        if self.retention_s <= 0:
            return
        try:
            self.pruned_buckets += self.store.prune(
                self._clock() - self.retention_s, should_stop=self._stop.is_set
            )
        except Exception:
            self.prune_failures += 1
            logger.exception("pruning the store failed")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()
        self.flush()

    def _prune_loop(self) -> None:
        while not self._stop.is_set():
            self.prune()
            self._stop.wait(self.prune_interval_s)

    def _succeeded(self) -> None:
        self.writes += 1
        self.last_write_s = self._clock()
        if not self.healthy:
            self.healthy = True
            logger.warning("store writes succeed again")

    def _failed(self, exc: BaseException) -> None:
        self.write_failures += 1
        if self.healthy:
            self.healthy = False
            logger.error("writing to the store failed (retrying): %s", exc)
        excess = self.pending_buckets - self.max_pending_buckets
        if excess <= 0:
            return
        dropped = 0
        if self._retry:  # the oldest minutes; a part of it would no longer be the same batch
            dropped, self._retry = len(self._retry), {}
        for bucket in sorted(self._pending)[: max(0, excess - dropped)]:
            del self._pending[bucket]
            dropped += 1
        self.dropped_buckets += dropped
        logger.error("dropped %d minutes of aggregates after repeated write failures", dropped)

    def _isolate(self, exc: BaseException, batch: dict[int, Aggregates]) -> bool:
        """Write what can be written of a refused batch, minute by minute, then entry by entry.

        Should the store fail transiently meanwhile (``False``), the write that failed becomes
        the batch to retry and whatever was not tried yet waits with the pending minutes.
        """
        logger.error("the store refused a batch (%s); writing it entry by entry", exc)
        left = [(b, [agg]) for b, agg in sorted(batch.items())]  # minutes, then entries
        while left:
            bucket, aggs = left.pop(0)
            whole = len(aggs) == 1 and aggs[0] is batch.get(bucket)
            while aggs:
                agg = aggs.pop(0)
                outcome = self._attempt({bucket: agg})
                if outcome == "transient":
                    self._retry = {bucket: agg}
                    for b, rest in [(bucket, aggs), *left]:
                        for a in rest:
                            self._pending.setdefault(b, Aggregates()).merge(a)
                    self._failed(StoreError("the store failed while writing entry by entry"))
                    return False
                if outcome == "refused" and whole:
                    aggs = list(_entries(agg))
                    whole = False
                elif outcome == "refused":
                    self.dropped_entries += 1
        self.buckets_written += len(batch)
        return True

    def _attempt(self, batch: dict[int, Aggregates]) -> str:
        """One isolated write: ``"written"``, ``"refused"`` (deterministic) or ``"transient"``."""
        try:
            self.store.write(batch)
        except StoreError as exc:
            return "transient" if exc.transient else "refused"
        except Exception:
            return "refused"
        return "written"


def _entries(agg: Aggregates) -> Iterator[Aggregates]:
    """One ``Aggregates`` per map entry of ``agg``."""
    for spec in MAPS:
        entries: dict[Any, Any] = getattr(agg, spec.name)
        for key, stats in entries.items():
            one = Aggregates()
            getattr(one, spec.name)[key] = stats
            yield one
