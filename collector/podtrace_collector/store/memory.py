"""An in-memory store with the behaviour of ``SqliteStore``, for tests and throw-away runs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from podtrace_collector.aggregate.fields import HEAVY, merges_of
from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import MAPS, Aggregates, RevisionStats, WorkloadRev
from podtrace_collector.errors import StoreError
from podtrace_collector.store.base import BUCKET_S, P, Registry, Snapshot, Window


class MemoryStore:
    """Per-minute ``Aggregates`` in a dict, guarded by a lock; nothing survives the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, Aggregates] = {}
        # As SqliteStore's registry: identity, first/last seen and pods since first written
        # (while retained), counts over the retained minutes.
        self._registry: dict[WorkloadRev, RevisionStats] = {}

    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        """Merge aggregates into the stored minutes."""
        for bucket in buckets:
            if not isinstance(bucket, int) or isinstance(bucket, bool):
                raise StoreError(
                    f"bucket keys are Unix seconds (int), not {bucket!r}", transient=False
                )
        with self._lock:
            for bucket, agg in sorted(buckets.items()):
                self._buckets.setdefault(bucket, Aggregates()).merge(agg)
                for key, stats in agg.revisions.items():
                    self._registry.setdefault(key, RevisionStats()).merge(stats)

    def read(self, plan: Callable[[Registry], P]) -> Snapshot[P]:
        """The registry and the planned windows, under the lock (one snapshot)."""
        with self._lock:
            registry = self._registry_copy()
            made = plan(registry)
            windows = [self._window(w) for w in made.windows]
        return Snapshot(registry, made, windows)

    def prune(self, before_s: float, *, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Delete the minutes that end at or before ``before_s``; returns how many minutes."""
        with self._lock:
            old = [b for b in self._buckets if b + BUCKET_S <= before_s]
            for b in old:
                del self._buckets[b]
            if old:
                self._recount_registry()
            return len(old)

    def close(self) -> None:
        """Nothing to release."""

    def _registry_copy(self) -> dict[WorkloadRev, RevisionStats]:
        out: dict[WorkloadRev, RevisionStats] = {}
        for key, stats in self._registry.items():
            copy = out[key] = RevisionStats()
            copy.merge(stats)
            for name, merge in merges_of(RevisionStats):
                if merge == "hist":  # none in the registry
                    setattr(copy, name, Histogram())
        return out

    def _recount_registry(self) -> None:
        counts = self._window(Window(maps=frozenset({"revisions"}))).revisions
        for key in list(self._registry):
            if key not in counts:
                del self._registry[key]
                continue
            reg, now = self._registry[key], counts[key]
            reg.requests, reg.errors, reg.origin_errors = (
                now.requests,
                now.errors,
                now.origin_errors,
            )

    def _window(self, window: Window) -> Aggregates:
        out = Aggregates()
        if window.start_s is not None and window.start_s == window.end_s:
            return out  # an empty window reads nothing
        for bucket in sorted(self._buckets):
            if window.start_s is not None and bucket + BUCKET_S <= window.start_s:
                continue
            if window.end_s is not None and bucket >= window.end_s:
                continue
            out.merge(self._buckets[bucket])
        return select(out, window)


def select(agg: Aggregates, window: Window) -> Aggregates:
    """Keep of ``agg`` what ``window`` asks for (its maps, origins and details), in place."""
    for spec in MAPS:
        values = getattr(agg, spec.name)
        if window.maps is not None and spec.name not in window.maps:
            values.clear()
            continue
        if spec.origin and window.origins is not None:
            for key in [k for k in values if k[:2] not in window.origins]:
                del values[key]
        if spec.detail and window.details is not None:
            for key, stats in values.items():
                if key[:2] not in window.details:
                    _strip(stats)
    return agg


def _strip(stats: object) -> None:
    """Empty the histograms, sets and lists of a stats object (counters stay)."""
    for name, merge in merges_of(type(stats)):
        if merge in HEAVY:
            setattr(stats, name, type(getattr(stats, name))())
