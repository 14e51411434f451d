"""The storage seam: per-minute ``Aggregates`` in, one consistent snapshot of windows out.

Implementations: ``sqlite.SqliteStore`` (the default, survives restarts), ``memory.MemoryStore``
(tests, throw-away runs) and ``clickhouse.ClickHouseStore`` (a fleet of gateways sharing one
database).  Writers call ``write`` from one thread; readers call ``read`` from any thread at any
time, and a read never blocks ingest.

A read is planned from the registry and answered from one snapshot: ``read(plan)`` reads the
revision registry, calls ``plan(registry)`` (a pure function of the query layer) for the windows
it needs, and returns the registry, the plan and every window's ``Aggregates``, fully loaded and
all from the same snapshot of the store.  Nothing returned touches the store afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.aggregate.window import P, Reads, Registry, Snapshot, Window

__all__ = ["BUCKET_S", "P", "Reads", "Registry", "Snapshot", "Store", "Window", "read_windows"]

BUCKET_S = 60  # one row set per minute


class Store(Protocol):
    """Per-minute ``Aggregates``, merged over windows on read."""

    def write(self, buckets: Mapping[int, Aggregates]) -> None:
        """Merge aggregates into the stored buckets; keys are bucket start times (Unix s)."""

    def read(self, plan: Callable[[Registry], P]) -> Snapshot[P]:
        """Read the registry and the windows ``plan(registry)`` asks for, in one snapshot.

        ``plan`` may raise (an unknown workload, say): the read ends and the error propagates.
        """

    def prune(self, before_s: float, *, should_stop: Callable[[], bool] = ...) -> int:
        """Delete buckets older than ``before_s``; returns how many minutes were deleted.

        A long prune asks ``should_stop`` now and then and, when told, stops (returning 0) and
        finishes at a later call.
        """

    def close(self) -> None: ...


def read_windows(store: Store, *windows: Window) -> list[Aggregates]:
    """The given windows from one snapshot, without the registry's say."""
    return store.read(lambda _registry: Reads(list(windows))).windows
