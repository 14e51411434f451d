"""Tests for writer.StoreWriter: draining the analyser into the store in a background thread."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from podtrace_collector.aggregate.stats import Aggregates, RevisionStats
from podtrace_collector.errors import StoreError
from podtrace_collector.store.memory import MemoryStore
from podtrace_collector.store.sqlite import SqliteStore
from podtrace_collector.store.writer import StoreWriter

from tests.collector.store.samples import T0, merged, sample, window


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
    """A MemoryStore whose writes fail (transiently: a full disk) while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = True

    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        if self.failing:
            raise StoreError("database or disk is full", transient=True)
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
    assert window(store) == merged(sample(0), sample(1))
    assert w.buckets_written >= 2 and w.write_failures == 0
    store.close()


def test_close_without_start_flushes() -> None:
    """close() on a writer that never started still writes what is queued."""
    src, store = Source(), MemoryStore()
    src.add(T0, sample())
    assert StoreWriter(src, store).close()
    assert window(store) == sample()


def test_failed_writes_are_retried_then_written() -> None:
    """A failed batch is kept and written before what came since; nothing is lost."""
    src, store = Source(), FailingStore()
    w = StoreWriter(src, store, retention_s=0)
    src.add(T0, sample(0))
    assert not w.flush()
    src.add(T0 + 60, sample(1, bucket_s=T0 + 60))
    assert not w.flush()
    assert (w.write_failures, w.pending_buckets) == (2, 2)
    store.failing = False
    assert w.flush()
    assert window(store) == merged(sample(0), sample(1, bucket_s=T0 + 60))
    assert (w.pending_buckets, w.dropped_buckets) == (0, 0)


def test_pending_minutes_are_bounded_and_drops_counted() -> None:
    """Past max_pending_buckets the oldest minutes are dropped and counted: the failed batch
    (whole) first, then the oldest minutes drained since."""
    src, store = Source(), FailingStore()
    w = StoreWriter(src, store, max_pending_buckets=2, retention_s=0)
    src.add(T0, sample(0))
    assert not w.flush()
    for k in range(1, 5):
        src.add(T0 + 60 * k, sample(k, bucket_s=T0 + 60 * k))
    assert not w.flush()
    assert (w.pending_buckets, w.dropped_buckets) == (2, 3)
    store.failing = False
    assert w.flush()
    assert window(store, None, T0 + 180) == Aggregates()  # the three oldest were dropped
    assert window(store).traces == sample(3).traces + sample(4).traces


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
    assert window(store) == sample(1, bucket_s=T0 + 3000)


class LosingStore(MemoryStore):
    """A store that keeps a write and then fails as if its acknowledgement was lost, while
    ``losing`` is set; it records every batch it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.losing = True
        self.sent: list[Mapping[int, Aggregates]] = []

    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        self.sent.append(buckets)
        if self.losing:
            raise StoreError("connection reset by peer", transient=True)
        super().write(buckets)


def test_a_failed_batch_is_resent_as_it_was() -> None:
    """After a transient failure the same batch is sent again, unchanged, and what was drained
    meanwhile goes in a write of its own: a store that deduplicates repeated batches (a lost
    acknowledgement) can then recognise the retry."""
    src, store = Source(), LosingStore()
    w = StoreWriter(src, store, retention_s=0)
    src.add(T0, sample(0))
    assert not w.flush()
    src.add(T0, sample(1))
    src.add(T0 + 60, sample(2, bucket_s=T0 + 60))
    assert not w.flush()
    store.losing = False
    assert w.flush()
    first, again, resent, rest = store.sent
    assert first is again is resent and first == {T0: sample(0)}
    assert rest == {T0: sample(1), T0 + 60: sample(2, bucket_s=T0 + 60)}
    assert w.pending_buckets == 0 and w.healthy


class FlakyRefusingStore(MemoryStore):
    """Refuses any batch holding ``shop/poison`` and fails transiently on its ``fail_at``-th
    write, to interrupt an entry-by-entry write."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.calls, self.fail_at = 0, fail_at

    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise StoreError("connection reset by peer", transient=True)
        if any(("shop/poison", "p1") in a.revisions for a in buckets.values()):
            raise StoreError("value out of range", transient=False)
        super().write(buckets)


@pytest.mark.parametrize("fail_at", [2, 3, 5, 9])
def test_a_transient_failure_while_writing_entry_by_entry_loses_nothing(fail_at: int) -> None:
    """Interrupted entry by entry, the writer retries the failed part and what was not tried
    yet; the only loss is the one entry the store refuses."""
    src, store = Source(), FlakyRefusingStore(fail_at)
    w = StoreWriter(src, store, retention_s=0)
    src.add(T0, _poisoned())
    src.add(T0 + 60, sample(1, bucket_s=T0 + 60))
    assert not w.flush() and not w.healthy
    assert w.flush() and w.healthy
    assert window(store) == merged(sample(7), sample(1, bucket_s=T0 + 60))
    assert w.dropped_entries == 1 and w.pending_buckets == 0


def _poisoned() -> Aggregates:
    """A minute whose one revision row holds a time SQLite cannot store (an int past 2^63)."""
    a = sample(7)
    a.revisions[("shop/poison", "p1")] = RevisionStats(last_seen_ns=2**64, requests=1)
    return a


def test_a_poison_entry_is_dropped_and_the_rest_written(tmp_path: Path) -> None:
    """A deterministic failure is not retried: the batch is written entry by entry and only
    what the store cannot hold is dropped and counted; the next write succeeds."""
    src, store = Source(), SqliteStore(tmp_path / "p.db")
    w = StoreWriter(src, store, retention_s=0)
    src.add(T0, _poisoned())
    src.add(T0 + 60, sample(1, bucket_s=T0 + 60))
    assert w.flush()
    assert w.dropped_entries == 1 and w.pending_buckets == 0 and w.healthy
    got = window(store)
    assert ("shop/poison", "p1") not in got.revisions
    assert got == merged(sample(7), sample(1, bucket_s=T0 + 60))
    src.add(T0 + 120, sample(2, bucket_s=T0 + 120))
    assert w.flush() and w.write_failures == 0
    store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(-(2**70), 2**70),
            st.integers(-(2**70), 2**70),
            st.text(max_size=8),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_no_input_makes_two_writes_in_a_row_fail(
    rows: list[tuple[int, int, str]],
) -> None:
    """Whatever values an analysis hands over, the writer never fails twice in a row."""
    with tempfile.TemporaryDirectory() as tmp:
        src, store = Source(), SqliteStore(Path(tmp) / "p.db")
        w = StoreWriter(src, store, retention_s=0)
        agg = Aggregates()
        for first, count, name in rows:
            agg.revisions[(f"ns/{name}", name)] = RevisionStats(
                first_seen_ns=first, last_seen_ns=first, requests=count, service=name
            )
        src.add(T0, agg)
        w.flush()
        src.add(T0 + 60, sample(1, bucket_s=T0 + 60))
        assert w.flush() and w.healthy
        assert window(store, T0 + 60, T0 + 120) == sample(1, bucket_s=T0 + 60)
        store.close()


def test_transient_failures_make_the_writer_unhealthy_and_log_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full disk: retried, reported unhealthy, logged once per change of state."""
    src, store = Source(), FailingStore()
    w = StoreWriter(src, store, retention_s=0)
    with caplog.at_level(logging.WARNING, logger="podtrace_collector.store.writer"):
        for k in range(5):
            src.add(T0 + 60 * k, sample(k, bucket_s=T0 + 60 * k))
            assert not w.flush()
        assert not w.healthy
        store.failing = False
        assert w.flush() and w.healthy
    messages = [r.getMessage() for r in caplog.records]
    assert sum("disk is full" in m for m in messages) == 1
    assert sum("succeed again" in m for m in messages) == 1
    assert window(store).traces == sum(sample(k).traces for k in range(5))


class SlowPruneStore(MemoryStore):
    """A store whose prune takes many steps and stops only when asked."""

    def __init__(self) -> None:
        super().__init__()
        self.pruning = threading.Event()

    def prune(self, before_s: float, *, should_stop: Callable[[], bool] = lambda: False) -> int:
        self.pruning.set()
        while not should_stop():
            time.sleep(0.01)
        return 0


def test_prune_runs_beside_writes_and_close_does_not_wait_for_it() -> None:
    """A long prune runs in its own thread: writes go on, and close() stops it between steps."""
    src, store = Source(), SlowPruneStore()
    w = StoreWriter(src, store, interval_s=0.02, retention_s=60)
    w.start()
    assert store.pruning.wait(5)
    src.add(T0, sample(0))
    deadline = time.monotonic() + 5
    while w.writes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.writes >= 1  # written while the prune runs
    started = time.monotonic()
    assert w.close(timeout_s=5)
    assert time.monotonic() - started < 2
    assert window(store) == sample(0)
