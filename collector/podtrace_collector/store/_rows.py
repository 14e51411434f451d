"""``Aggregates`` to SQLite rows and back, in the column order of ``_schema``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from podtrace_collector.analyse.aggregate import (
    MAX_USERS,
    Aggregates,
    EdgeStats,
    EntryImpact,
    Impact,
    OriginStats,
    RevisionStats,
)
from podtrace_collector.analyse.histogram import Histogram
from podtrace_collector.store import _schema as s

Row = tuple[Any, ...]
Window = tuple[float, float]
HistFetcher = Callable[[s.Table, str, tuple[str, ...], Window], Histogram]

# After a prune: forget revisions with no retained minute, recount the others over what remains.
_SAME_REV = "r.workload = registry.workload AND r.revision = registry.revision"
REGISTRY_PRUNE = (
    f"DELETE FROM registry WHERE NOT EXISTS (SELECT 1 FROM revisions AS r WHERE {_SAME_REV})",
    "UPDATE registry SET "
    + ", ".join(
        f"{c} = (SELECT COALESCE(SUM(r.{c}), 0) FROM revisions AS r WHERE {_SAME_REV})"
        for c in ("requests", "errors", "origin_errors")
    ),
)


def dump_list(items: Iterable[str]) -> str:
    return json.dumps(list(items), separators=(",", ":"), ensure_ascii=False)


def dump_counts(counts: Mapping[int, int]) -> str:
    return json.dumps({str(b): c for b, c in counts.items()}, separators=(",", ":"))


def add_counts(counts: dict[int, int], raw: str) -> None:
    """Add a JSON histogram (``{"bin": count}``) into ``counts``."""
    for b, c in json.loads(raw).items():
        k = int(b)
        counts[k] = counts.get(k, 0) + c


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


def decode(db: sqlite3.Connection, window: Window, hist: HistFetcher) -> Aggregates:
    """The window's minutes merged: counters summed in SQL, histograms lazy."""
    a = Aggregates()
    _revisions(db, window, hist, a)
    for ow, orv, w, n, hops in db.execute(s.read_sql(s.IMPACTS), window):
        a.impacts[(ow, orv, w)] = Impact(n, hops)
    users = _sets(db, s.ENTRY_IMPACTS, "users", window)
    for ow, orv, w, op, n, hops in db.execute(s.read_sql(s.ENTRY_IMPACTS), window):
        k4 = (ow, orv, w, op)
        a.entry_impacts[k4] = EntryImpact(n, hops, users.get(k4, set()))
    for ow, orv, w, n in db.execute(s.read_sql(s.ABSORBED), window):
        a.absorbed[(ow, orv, w)] = n
    _origins(db, window, a)
    for w, op, n in db.execute(s.read_sql(s.ENTRY_TOTALS), window):
        a.entry_totals[(w, op)] = n
    for caller, callee, calls, errors in db.execute(s.read_sql(s.EDGES), window):
        lat = hist(s.EDGES, "latency", (caller, callee), window)
        a.edges[(caller, callee)] = EdgeStats(calls, errors, lat)
    traces, spans = db.execute(s.read_sql(s.TOTALS), window).fetchone()
    a.traces, a.spans = traces or 0, spans or 0
    return a


def _revisions(db: sqlite3.Connection, window: Window, hist: HistFetcher, a: Aggregates) -> None:
    pods = _sets(db, s.REVISIONS, "pods", window)
    for w, r, kind, service, version, first, last, req, err, orig in db.execute(
        s.read_sql(s.REVISIONS), window
    ):
        key = (w, r)
        a.revisions[key] = RevisionStats(
            kind, service, version, first, last, pods.get(key, set()), req, err, orig,
            hist(s.REVISIONS, "latency", key, window),
            hist(s.REVISIONS, "self_time", key, window),
        )  # fmt: skip


def _origins(db: sqlite3.Connection, window: Window, a: Aggregates) -> None:
    users = _sets(db, s.ORIGINS, "users", window)
    exemplars: dict[tuple[str, ...], list[str]] = {}
    for w, r, raw in db.execute(s.list_sql(s.ORIGINS, "exemplars"), window):
        kept = exemplars.setdefault((w, r), [])
        OriginStats(exemplars=kept).merge(OriginStats(exemplars=json.loads(raw)))
    for w, r, traces, hops in db.execute(s.read_sql(s.ORIGINS), window):
        key = (w, r)
        a.origins[key] = OriginStats(traces, hops, users.get(key, set()), exemplars.get(key, []))


def _sets(
    db: sqlite3.Connection, t: s.Table, column: str, window: Window
) -> dict[tuple[str, ...], set[str]]:
    out: dict[tuple[str, ...], set[str]] = {}
    n = len(t.keys)
    for row in db.execute(s.set_sql(t, column), window):
        members = out.setdefault(row[:n], set())
        if len(members) < MAX_USERS:
            members.add(row[n])
    return out
