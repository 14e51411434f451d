"""``Aggregates`` to SQLite rows and back, in the column order of ``_schema``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import (
    Aggregates,
    Impact,
    RevisionStats,
)
from podtrace_collector.store import _lazy
from podtrace_collector.store import _schema as s

Row = tuple[Any, ...]
Window = tuple[int, ...]  # _schema.window_params

# After a prune: forget revisions with no retained minute, recount the others over what remains.
_SAME_REV = (
    f"r.span_s = {s.TIERS[-1]}"
    " AND r.workload = registry.workload AND r.revision = registry.revision"
)
REGISTRY_PRUNE = (
    f"DELETE FROM registry WHERE NOT EXISTS (SELECT 1 FROM revisions AS r WHERE {_SAME_REV})",
    "UPDATE registry SET "
    + ", ".join(
        f"{c} = (SELECT COALESCE(SUM(r.{c}), 0) FROM revisions AS r WHERE {_SAME_REV})"
        for c in ("requests", "errors", "origin_errors")
    ),
)


# One encoder for every JSON column: ``json.dumps`` with options builds a new encoder per call,
# which was a third of the cost of encoding the small values the writer merges by the thousand.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dump_list(items: Iterable[str]) -> str:
    return _ENCODE(list(items))


def dump_counts(counts: Mapping[int, int]) -> str:
    return _ENCODE({str(b): c for b, c in counts.items()})


def dump_str_counts(counts: Mapping[str, int]) -> str:
    """Histogram counts already keyed by their JSON strings (``_lazy.merge_counts``)."""
    return _ENCODE(dict(counts))


def _hist(h: Histogram) -> str:
    return dump_counts(h.counts)


def encode(buckets: Mapping[int, Aggregates]) -> dict[str, list[Row]]:
    """Rows per table for a batch of minutes (every minute gets a ``totals`` row)."""
    out: dict[str, list[Row]] = {t.name: [] for t in s.BUCKET_TABLES}
    for bucket, a in sorted(buckets.items()):
        if not isinstance(bucket, int) or isinstance(bucket, bool):
            raise TypeError(f"bucket keys are Unix seconds (int), not {bucket!r}")
        out["revisions"] += [
            (bucket, w, r, v.kind, v.service, v.version, v.first_seen_ns, v.last_seen_ns,
             dump_list(sorted(v.pods)), v.requests, v.errors, v.origin_errors,
             _hist(v.latency), _hist(v.self_time))
            for (w, r), v in a.revisions.items()
        ]  # fmt: skip
        out["impacts"] += [
            (bucket, *k, v.affected_requests, v.min_hops) for k, v in a.impacts.items()
        ]
        out["entry_impacts"] += [
            (bucket, *k, v.affected_requests, v.min_hops, dump_list(sorted(v.users)))
            for k, v in a.entry_impacts.items()
        ]
        out["absorbed"] += [(bucket, *k, n) for k, n in a.absorbed.items()]
        out["origins"] += [
            (bucket, *k, v.affected_traces, v.max_hops, dump_list(sorted(v.users)),
             dump_list(v.exemplars))
            for k, v in a.origins.items()
        ]  # fmt: skip
        out["entry_totals"] += [(bucket, *k, n) for k, n in a.entry_totals.items()]
        out["edges"] += [
            (bucket, *k, v.calls, v.errors, _hist(v.latency)) for k, v in a.edges.items()
        ]
        out["totals"].append((bucket, a.traces, a.spans))
    return out


def registry_rows(rows: Mapping[str, list[Row]]) -> list[Row]:
    """Registry upsert rows from revision rows: no bucket, no histograms."""
    return [r[1:12] for r in rows["revisions"]]


def registry_stats(d: Mapping[str, Any]) -> RevisionStats:
    """A registry row (by column name) as ``RevisionStats`` with empty histograms."""
    return RevisionStats(
        kind=d["kind"],
        service=d["service"],
        version=d["version"],
        first_seen_ns=d["first_seen_ns"],
        last_seen_ns=d["last_seen_ns"],
        pods=set(json.loads(d["pods"])),
        requests=d["requests"],
        errors=d["errors"],
        origin_errors=d["origin_errors"],
    )


def decode(
    db: sqlite3.Connection,
    window: Window,
    fetch: _lazy.Fetch,
    origin: tuple[str, str] | None = None,
) -> Aggregates:
    """The window's minutes merged: counters summed in SQL, histograms/sets/lists lazy.

    With ``origin``, the maps of ``_schema.ORIGIN_TABLES`` hold that origin's keys only.
    """
    a = Aggregates()

    def rows(t: s.Table) -> sqlite3.Cursor:
        if origin is not None and t in s.ORIGIN_TABLES:
            return db.execute(s.read_sql(t, origin=True), (*origin, *window))
        return db.execute(s.read_sql(t), window)

    def src(t: s.Table, key: tuple[str, ...]) -> _lazy.Source:
        return _lazy.Source(t, key, fetch)

    for w, r, kind, service, version, first, last, req, err, orig in rows(s.REVISIONS):
        a.revisions[(w, r)] = _lazy.make(
            _lazy.LazyRevisionStats, src(s.REVISIONS, (w, r)), kind=kind, service=service,
            version=version, first_seen_ns=first, last_seen_ns=last, requests=req, errors=err,
            origin_errors=orig,
        )  # fmt: skip
    for ow, orv, w, n, hops in rows(s.IMPACTS):
        a.impacts[(ow, orv, w)] = Impact(n, hops)
    for *k4, n, hops in rows(s.ENTRY_IMPACTS):
        a.entry_impacts[tuple(k4)] = _lazy.make(
            _lazy.LazyEntryImpact, src(s.ENTRY_IMPACTS, tuple(k4)), affected_requests=n,
            min_hops=hops,
        )  # fmt: skip
    for ow, orv, w, n in rows(s.ABSORBED):
        a.absorbed[(ow, orv, w)] = n
    for w, r, traces, hops in rows(s.ORIGINS):
        a.origins[(w, r)] = _lazy.make(
            _lazy.LazyOriginStats, src(s.ORIGINS, (w, r)), affected_traces=traces, max_hops=hops
        )
    for w, op, n in rows(s.ENTRY_TOTALS):
        a.entry_totals[(w, op)] = n
    for caller, callee, calls, errors in rows(s.EDGES):
        a.edges[(caller, callee)] = _lazy.make(
            _lazy.LazyEdgeStats, src(s.EDGES, (caller, callee)), calls=calls, errors=errors
        )
    traces, spans = rows(s.TOTALS).fetchone()
    a.traces, a.spans = traces or 0, spans or 0
    return a
