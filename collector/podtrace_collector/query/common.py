"""Shared pieces of the query layer: the reader and registry types and JSON building blocks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import Aggregates, RevisionStats, WorkloadRev
from podtrace_collector.durations import format_time
from podtrace_collector.errors import UnknownWorkload

# ``Store.read``: all minute buckets overlapping ``[start_s, end_s)`` merged (``None``: unbounded).
Reader = Callable[[float | None, float | None], Aggregates]


class OriginReader(Protocol):
    """``Store.read`` with its ``origin`` filter: origin-keyed maps hold that origin's keys only."""

    def __call__(
        self, start_s: float | None, end_s: float | None, *, origin: WorkloadRev | None = None
    ) -> Aggregates: ...


# ``Store.revisions()``: every retained workload-revision with first/last seen, pods, version.
Registry = Mapping[WorkloadRev, RevisionStats]
JSON = dict[str, Any]


def revisions_of(registry: Registry, workload: str) -> list[tuple[str, RevisionStats]]:
    """The workload's revisions, oldest first (by first span seen, then name for a stable order)."""
    revs = [(r, st) for (w, r), st in registry.items() if w == workload]
    revs.sort(key=lambda item: (item[1].first_seen_ns, item[0]))
    return revs


def require_revisions(registry: Registry, workload: str) -> list[tuple[str, RevisionStats]]:
    """``revisions_of``, raising 404 ``unknown_workload`` when there are none."""
    revs = revisions_of(registry, workload)
    if not revs:
        raise UnknownWorkload(
            f"unknown workload {workload!r}: no spans from it are retained",
        )
    return revs


def identities(*sources: Iterable[tuple[WorkloadRev, RevisionStats]]) -> dict[str, tuple[str, str]]:
    """``workload -> (kind, service)``, taking the newest revision that names each."""
    best: dict[str, tuple[int, str, str]] = {}  # workload -> (first_seen_ns, kind, service)
    for source in sources:
        for (w, _), st in source:
            seen, kind, service = best.get(w, (-1, "", ""))
            if st.first_seen_ns >= seen:  # a newer revision's names win; older ones fill gaps
                best[w] = (st.first_seen_ns, st.kind or kind, st.service or service)
            else:
                best[w] = (seen, kind or st.kind, service or st.service)
    return {w: (k, s or _name_part(w)) for w, (_, k, s) in best.items()}


def rate(part: int, whole: int) -> float:
    """``part / whole``, or 0.0 for an empty whole (JSON has no NaN)."""
    return part / whole if whole else 0.0


def counts_json(stats: RevisionStats) -> JSON:
    """Requests, errors, rates and latency of one workload-revision, as the API reports them."""
    return {
        "requests": stats.requests,
        "errors": stats.errors,
        "origin_errors": stats.origin_errors,
        "error_rate": rate(stats.errors, stats.requests),
        "origin_error_rate": rate(stats.origin_errors, stats.requests),
        "latency_ms": stats.latency.summary(),
        "self_time_ms": stats.self_time.summary(),
    }


def window_json(start_s: float, end_s: float) -> JSON:
    return {"start": format_time(start_s), "end": format_time(end_s)}


def time_or_none(unix_ns: int) -> str | None:
    """RFC 3339 for a stored nanosecond time; ``None`` when it was never recorded (0)."""
    return format_time(unix_ns / 1e9) if unix_ns > 0 else None


def merged_latency(stats: Iterable[RevisionStats]) -> Histogram:
    out = Histogram()
    for st in stats:
        out.merge(st.latency)
    return out


def _name_part(workload: str) -> str:
    return workload.split("/", 1)[-1]
