"""Tests for writer.StoreWriter: draining the analyser into the store in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path

from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.store.memory import MemoryStore
from podtrace_collector.store.sqlite import SqliteStore
from podtrace_collector.store.writer import StoreWriter

from tests.collector.store.samples import T0, merged, sample


class Source:
    """An analyser stand-in: hands over whatever was queued since the last drain."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queued: dict[int, Aggregates] = {}

    def add(self, bucket: int, agg: Aggregates) -> None:
        with self.lock:
            self.queued.setdefault(bucket, Aggregates()).merge(agg)

    def drain(self) -> dict[int, Aggregates]:
        with self.lock:
            out, self.queued = self.queued, {}
        return out


class FailingStore(MemoryStore):
    """A MemoryStore whose writes fail while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = True

    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        if self.failing:
            raise OSError("disk full")
        super().write(buckets)


def test_background_thread_writes_and_close_flushes(tmp_path: Path) -> None:
    """The thread writes periodically; close() writes what is left."""
    src, store = Source(), SqliteStore(tmp_path / "p.db")
    w = StoreWriter(src, store, interval_s=0.02, retention_s=0)
    w.start()
    src.add(T0, sample(0))
    deadline = time.monotonic() + 5
    while w.writes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.writes >= 1
    src.add(T0, sample(1))
    assert w.close(timeout_s=5)
    assert store.read() == merged(sample(0), sample(1))
    assert w.buckets_written >= 2 and w.write_failures == 0
    store.close()


def test_close_without_start_flushes() -> None:
    """close() on a writer that never started still writes what is queued."""
    src, store = Source(), MemoryStore()
    src.add(T0, sample())
    assert StoreWriter(src, store).close()
    assert store.read() == sample()


def test_failed_writes_are_retried_then_written() -> None:
    """A failed batch is kept and written with the next one; nothing is lost."""
    src, store = Source(), FailingStore()
    w = StoreWriter(src, store, retention_s=0)
    src.add(T0, sample(0))
    assert not w.flush()
    src.add(T0 + 60, sample(1, bucket_s=T0 + 60))
    assert not w.flush()
    assert (w.write_failures, w.pending_buckets) == (2, 2)
    store.failing = False
    assert w.flush()
    assert store.read() == merged(sample(0), sample(1, bucket_s=T0 + 60))
    assert (w.pending_buckets, w.dropped_buckets) == (0, 0)


def test_pending_minutes_are_bounded_and_drops_counted() -> None:
    """Past max_pending_buckets the oldest minutes are dropped and counted."""
    src, store = Source(), FailingStore()
    w = StoreWriter(src, store, max_pending_buckets=2, retention_s=0)
    for k in range(5):
        src.add(T0 + 60 * k, sample(k, bucket_s=T0 + 60 * k))
    assert not w.flush()
    assert (w.pending_buckets, w.dropped_buckets) == (2, 3)
    store.failing = False
    assert w.flush()
    assert store.read(None, T0 + 180) == Aggregates()  # the three oldest were dropped
    assert store.read().traces == sample(3).traces + sample(4).traces


def test_prune_by_retention() -> None:
    """prune() deletes minutes older than the retention horizon, by the writer's clock."""
    src, store = Source(), MemoryStore()
    now = float(T0 + 3600)
    w = StoreWriter(src, store, retention_s=1800, clock=lambda: now)
    src.add(T0, sample(0))
    src.add(T0 + 3000, sample(1, bucket_s=T0 + 3000))
    w.flush()
    w.prune()
    assert w.pruned_buckets == 1
    assert store.read() == sample(1, bucket_s=T0 + 3000)
