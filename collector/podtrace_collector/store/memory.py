"""An in-memory store with the behaviour of ``SqliteStore``, for tests and throw-away runs."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from podtrace_collector.aggregate.stats import Aggregates, RevisionStats, WorkloadRev
from podtrace_collector.store.base import BUCKET_S


class MemoryStore:
    """Per-minute ``Aggregates`` in a dict, guarded by a lock; nothing survives the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, Aggregates] = {}
        self._registry: dict[WorkloadRev, RevisionStats] = {}

    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        """Merge aggregates into the stored minutes and the registry."""
        for bucket in buckets:
            if not isinstance(bucket, int) or isinstance(bucket, bool):
                raise TypeError(f"bucket keys are Unix seconds (int), not {bucket!r}")
        with self._lock:
            for bucket, agg in sorted(buckets.items()):
                self._buckets.setdefault(bucket, Aggregates()).merge(agg)
                for key, stats in agg.revisions.items():
                    self._registry.setdefault(key, RevisionStats()).merge(_no_histograms(stats))

    def read(
        self,
        start_s: float | None = None,
        end_s: float | None = None,
        *,
        origin: WorkloadRev | None = None,
    ) -> Aggregates:
        """All minutes overlapping ``[start_s, end_s)`` merged into a new ``Aggregates``.

        ``origin``: only that workload-revision's keys in the maps keyed by an origin
        (``impacts``, ``entry_impacts``, ``absorbed``, ``origins``), as ``SqliteStore.read``.
        """
        out = Aggregates()
        with self._lock:
            for bucket in sorted(self._buckets):
                if start_s is not None and bucket + BUCKET_S <= start_s:
                    continue
                if end_s is not None and bucket >= end_s:
                    continue
                out.merge(self._buckets[bucket])
        if origin is not None:
            _only_origin(out, origin)
        return out

    def revisions(self) -> dict[WorkloadRev, RevisionStats]:
        """The registry: every retained workload-revision, histograms left empty."""
        with self._lock:
            out: dict[WorkloadRev, RevisionStats] = {}
            for key, stats in self._registry.items():
                out[key] = RevisionStats()
                out[key].merge(stats)
            return out

    def prune(self, before_s: float) -> int:
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

    def _recount_registry(self) -> None:
        counts: dict[WorkloadRev, list[int]] = {}
        for agg in self._buckets.values():
            for key, st in agg.revisions.items():
                c = counts.setdefault(key, [0, 0, 0])
                c[0] += st.requests
                c[1] += st.errors
                c[2] += st.origin_errors
        for key in list(self._registry):
            if key not in counts:
                del self._registry[key]
                continue
            reg = self._registry[key]
            reg.requests, reg.errors, reg.origin_errors = counts[key]


def _only_origin(agg: Aggregates, origin: WorkloadRev) -> None:
    for name in ("impacts", "entry_impacts", "absorbed", "origins"):
        kept = {k: v for k, v in getattr(agg, name).items() if k[:2] == origin}
        setattr(agg, name, kept)


def _no_histograms(stats: RevisionStats) -> RevisionStats:
    return RevisionStats(
        kind=stats.kind,
        service=stats.service,
        version=stats.version,
        first_seen_ns=stats.first_seen_ns,
        last_seen_ns=stats.last_seen_ns,
        pods=stats.pods,
        requests=stats.requests,
        errors=stats.errors,
        origin_errors=stats.origin_errors,
    )
