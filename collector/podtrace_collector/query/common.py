"""Shared pieces of the query layer: the registry grouped by workload and JSON building blocks."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import RevisionStats, WorkloadRev
from podtrace_collector.aggregate.window import Registry
from podtrace_collector.durations import format_time
from podtrace_collector.errors import UnknownWorkload

JSON = dict[str, Any]


Revisions = list[tuple[str, RevisionStats]]


def by_workload(registry: Registry) -> dict[str, Revisions]:
    """Each workload's revisions, oldest first (by first span seen, then name): one pass."""
    out: dict[str, Revisions] = {}
    for (w, r), st in registry.items():
        out.setdefault(w, []).append((r, st))
    for revs in out.values():
        revs.sort(key=lambda item: (item[1].first_seen_ns, item[0]))
    return out


def require_revisions(registry: Registry, workload: str) -> Revisions:
    """The workload's revisions, oldest first.

    Raises:
        UnknownWorkload: none are retained; the message names the closest known workloads.
    """
    revs = [(r, st) for (w, r), st in registry.items() if w == workload]
    if not revs:
        raise UnknownWorkload(unknown_workload_message(workload, {w for w, _ in registry}))
    revs.sort(key=lambda item: (item[1].first_seen_ns, item[0]))
    return revs


def unknown_workload_message(workload: str, known: Iterable[str]) -> str:
    """Says the workload is unknown and names the closest known ones (or all, when few)."""
    names = sorted(set(known))
    if not names:
        return f"unknown workload {workload!r}: no spans from any workload are retained yet"
    close = difflib.get_close_matches(workload, names, n=5, cutoff=0.5)
    hint = close if close else names[:10]
    what = (
        "closest known" if close else f"known ({len(names)} in all)" if len(names) > 10 else "known"
    )
    return f"unknown workload {workload!r}: no spans from it are retained ({what}: {hint})"


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
