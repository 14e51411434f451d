"""The storage seam: per-minute ``Aggregates`` in, merged windows out.

Implementations: ``sqlite.SqliteStore`` (the default, survives restarts) and
``memory.MemoryStore`` (tests).  Writers call ``write`` from one thread; readers may call the read
methods from any thread at any time and must never block ingest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from podtrace_collector.aggregate.stats import Aggregates, RevisionStats, WorkloadRev

BUCKET_S = 60  # one row set per minute


class Store(Protocol):
    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        """Merge aggregates into the stored buckets; keys are bucket start times (Unix s)."""

    def read(
        self,
        start_s: float | None = None,
        end_s: float | None = None,
        *,
        origin: WorkloadRev | None = None,
    ) -> Aggregates:
        """All buckets overlapping ``[start_s, end_s)`` merged; ``None`` means unbounded.

        ``origin``: keep only that workload-revision's keys in the maps keyed by an origin
        (``impacts``, ``entry_impacts``, ``absorbed``, ``origins``); the rest is unchanged.
        """

    def revisions(self) -> dict[WorkloadRev, RevisionStats]:
        """The revision registry over everything retained (first/last seen, pods, version)."""

    def prune(self, before_s: float) -> int:
        """Delete buckets older than ``before_s``; returns how many were deleted."""

    def close(self) -> None: ...
