"""The workload inventory: every workload, its revisions and their counts over a window."""

from __future__ import annotations

from dataclasses import dataclass

from podtrace_collector.aggregate.stats import RevisionStats
from podtrace_collector.aggregate.window import Snapshot, Window
from podtrace_collector.query.common import JSON, identities, rate, time_or_none


@dataclass(frozen=True, slots=True)
class WorkloadsPlan:
    """The inventory's window: the revisions map only."""

    since_s: float | None
    until_s: float | None

    @property
    def windows(self) -> list[Window]:
        return [Window(self.since_s, self.until_s, maps=frozenset({"revisions"}))]


def workloads(snapshot: Snapshot[WorkloadsPlan]) -> JSON:
    """``{"workloads": [...]}`` sorted by name, revisions newest first (SPEC §3).

    A revision is listed when it served requests in the window or its lifetime (first to last
    span seen) overlaps it; with no window, every retained revision.  ``first_seen``/``last_seen``
    are over everything retained; ``pods`` (a count), ``requests``, ``errors``, ``origin_errors``
    and ``error_rate`` are over the window.  Each workload also carries its window totals.
    """
    registry, (agg,) = snapshot.registry, snapshot.windows
    since_s, until_s = snapshot.plan.since_s, snapshot.plan.until_s
    keys = {k for k in registry if _overlaps(registry[k], since_s, until_s)} | agg.revisions.keys()
    names = identities(registry.items(), agg.revisions.items())
    by_workload: dict[str, list[tuple[int, str, JSON]]] = {}
    for w, r in keys:
        life = registry.get((w, r)) or agg.revisions[(w, r)]
        row = _revision(r, life, agg.revisions.get((w, r)))
        by_workload.setdefault(w, []).append((life.first_seen_ns, r, row))
    out = []
    for w in sorted(by_workload):
        revs = [row for _, _, row in sorted(by_workload[w], key=lambda t: t[:2], reverse=True)]
        kind, service = names[w]
        out.append(
            {
                "workload": w,
                "kind": kind,
                "service": service,
                "requests": sum(x["requests"] for x in revs),
                "errors": sum(x["errors"] for x in revs),
                "revisions": revs,
            }
        )
    return {"workloads": out}


def _revision(rev: str, life: RevisionStats, window: RevisionStats | None) -> JSON:
    counted = window or RevisionStats()
    return {
        "revision": rev,
        "version": life.version or counted.version,
        "first_seen": time_or_none(life.first_seen_ns),
        "last_seen": time_or_none(life.last_seen_ns),
        "pods": len(counted.pods),
        "requests": counted.requests,
        "errors": counted.errors,
        "origin_errors": counted.origin_errors,
        "error_rate": rate(counted.errors, counted.requests),
    }


def _overlaps(stats: RevisionStats, since_s: float | None, until_s: float | None) -> bool:
    first_s, last_s = stats.first_seen_ns / 1e9, stats.last_seen_ns / 1e9
    return (since_s is None or last_s >= since_s) and (until_s is None or first_s < until_s)
