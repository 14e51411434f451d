"""The latency blast radius of a revision (SPEC §5): who waited longer on it than on its baseline.

For every workload X (other than the revision's own) and every entry operation O with the
revision W@R on the critical path of some of their requests (``latency_impacts``,
``entry_latency_impacts``, filled at ingest by ``analyse.analyzer``), R's shares of those
requests are compared with the shares of the baseline revision B in X's (or O's) requests, over
the baseline's window (the verdict's rule, ``query.blast``).  X or O is **slowed** when

* R's p50 or p95 share is *material*: at least ``MIN_SHARE_RATIO`` times B's and at least
  ``MIN_ADDED_MS`` more (checked first: it is cheap, and most candidates fail it), and
* the one-sided Mann-Whitney U test (``query.stats``, exact for small samples) finds R's shares
  greater at p < ``ALPHA``, each side having at least ``MIN_SIDE_REQUESTS`` exposed requests.

A workload or operation never exposed to B has nothing to compare with and is not listed.
"""

from __future__ import annotations

from collections.abc import Mapping

from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import Aggregates, LatencyImpact
from podtrace_collector.query.common import JSON
from podtrace_collector.query.control import ALPHA, MIN_LATENCY_RATIO, MIN_SIDE_REQUESTS
from podtrace_collector.query.stats import mann_whitney_test

MIN_SHARE_RATIO = MIN_LATENCY_RATIO  # R's share at least 1.2x B's …
MIN_ADDED_MS = 1.0  # … and at least 1 ms more

Names = Mapping[str, tuple[str, str]]  # workload -> (kind, service)


def no_latency_impact() -> JSON:
    """The ``latency_impact`` of a revision whose verdict found no latency regression."""
    return {"entrypoints": [], "services": []}


def latency_impact(
    agg: Aggregates, base_agg: Aggregates, names: Names, workload: str, rev: str, base_rev: str
) -> JSON:
    """The slowed services and entry points of ``workload@rev`` against ``base_rev``.

    Args:
        agg: the report's window (the revision's shares and every request count).
        base_agg: the baseline's window: ``agg`` itself for a canary, else the window before.
        names: ``workload -> (kind, service)``.

    Returns:
        ``{"entrypoints": [...], "services": [...]}``, each biggest ``added_ms.p50`` first.
    """
    totals = agg.requests_by_workload()
    services: list[JSON] = []
    for (w, r, x), mine in agg.latency_impacts.items():
        if w == workload and r == rev and x != workload:
            theirs = base_agg.latency_impacts.get((w, base_rev, x))
            row = _slowed(mine, theirs, totals.get(x, 0))
            if row is not None:
                services.append({"workload": x, "service": _service(names, x), **row})
    entries: list[JSON] = []
    for (w, r, x, op), entry in agg.entry_latency_impacts.items():
        if w == workload and r == rev:
            total = agg.entry_totals.get((x, op))
            theirs = base_agg.entry_latency_impacts.get((w, base_rev, x, op))
            row = _slowed(entry, theirs, total.requests if total is not None else 0)
            if row is not None:
                # Unknown (null), not 0, when no request of the operation carried an enduser.id.
                users = len(entry.users) if entry.users or (total and total.with_user) else None
                entries.append(
                    {"workload": x, "service": _service(names, x), "operation": op, **row}
                )
                entries[-1]["affected_users"] = users
    services.sort(key=lambda s: (-s["added_ms"]["p50"], s["workload"]))
    entries.sort(key=lambda e: (-e["added_ms"]["p50"], e["workload"], e["operation"]))
    return {"entrypoints": entries, "services": services}


def _slowed(mine: LatencyImpact, theirs: LatencyImpact | None, requests: int) -> JSON | None:
    """The SPEC §5 fields when R's shares are materially and significantly greater, else None."""
    if theirs is None or min(mine.shares.total, theirs.shares.total) < MIN_SIDE_REQUESTS:
        return None
    now, before = _p50_p95(mine.shares), _p50_p95(theirs.shares)
    if not any(_material(now[q], before[q]) for q in ("p50", "p95")):
        return None
    evidence = mann_whitney_test(mine.shares.counts, theirs.shares.counts)
    if evidence.p_value >= ALPHA:
        return None
    return {
        "hops": mine.hops,
        "exposed_requests": mine.exposed_requests,
        "requests": requests,
        "share_ms": now,
        "baseline_share_ms": before,
        "added_ms": {q: round(now[q] - before[q], 3) for q in ("p50", "p95")},
        "latency_ms": _p50_p95(mine.latency),
        "p_value": evidence.p_value,
    }


def _material(now: float, before: float) -> bool:
    return now >= MIN_SHARE_RATIO * before and now - before >= MIN_ADDED_MS


def _p50_p95(h: Histogram) -> dict[str, float]:
    # Only called on histograms with values (checked above): quantiles are never None.
    return {"p50": h.quantile(0.5) or 0.0, "p95": h.quantile(0.95) or 0.0}


def _service(names: Names, workload: str) -> str:
    return names.get(workload, ("", workload.split("/", 1)[-1]))[1]
