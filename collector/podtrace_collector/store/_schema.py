"""The SQLite schema, described once: tables, key columns and how each value column merges.

Every ``Aggregates`` map becomes one table with one row per (key, time bucket) in three *tiers*:
minutes, 10-minute and hour buckets (``span_s`` 60, 600, 3600).  A write merges each minute into
its bucket of every tier; a window read covers the window's minutes with as few rows as it can
(whole hours from the hour tier, whole 10 minutes from the middle tier, minutes at the ragged
ends: at most 18 + 10 + hours rows per key), so a week costs about what an hour does.

A column's *merge* says how two rows of the same key combine, both when a bucket is written twice
(an upsert), when buckets are rolled up and when a window is read (an aggregate query):

========  =====================================  ==========================================
merge     upsert of a repeated write             read over a window
========  =====================================  ==========================================
sum       ``a + b``                              ``SUM``
max       ``max(a, b)``                          ``MAX``
min0      smallest non-zero (0 means "none")     smallest non-zero
first     the first non-empty string             ``MAX`` (the values agree in practice)
hist      histogram counts added (JSON)          added, lazily: only if the query uses it
set       capped union (JSON array)              capped union, lazily
list      capped concatenation (JSON array)      capped concatenation in minute order, lazily
========  =====================================  ==========================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEMA_VERSION = 2
TIERS = (60, 600, 3600)  # bucket lengths in seconds; each divides the next
MINUTE = TIERS[0]
# Unbounded window ends, multiples of every tier (Unix seconds, about ±500,000 years).
FAR_PAST, FAR_FUTURE = -(3600 << 32), 3600 << 32


@dataclass(frozen=True, slots=True)
class Table:
    """One stored map: its key columns (text) and value columns with their merge kind."""

    name: str
    keys: tuple[str, ...]
    values: tuple[tuple[str, str], ...]


REVISIONS = Table(
    "revisions",
    ("workload", "revision"),
    (
        ("kind", "first"),
        ("service", "first"),
        ("version", "first"),
        ("first_seen_ns", "min0"),
        ("last_seen_ns", "max"),
        ("pods", "set"),
        ("requests", "sum"),
        ("errors", "sum"),
        ("origin_errors", "sum"),
        ("latency", "hist"),
        ("self_time", "hist"),
    ),
)
IMPACTS = Table(
    "impacts",
    ("origin_workload", "origin_revision", "workload"),
    (("affected_requests", "sum"), ("min_hops", "min0")),
)
ENTRY_IMPACTS = Table(
    "entry_impacts",
    ("origin_workload", "origin_revision", "workload", "operation"),
    (("affected_requests", "sum"), ("min_hops", "min0"), ("users", "set")),
)
ABSORBED = Table(
    "absorbed", ("origin_workload", "origin_revision", "workload"), (("requests", "sum"),)
)
ORIGINS = Table(
    "origins",
    ("workload", "revision"),
    (("affected_traces", "sum"), ("max_hops", "max"), ("users", "set"), ("exemplars", "list")),
)
ENTRY_TOTALS = Table("entry_totals", ("workload", "operation"), (("requests", "sum"),))
EDGES = Table(
    "edges",
    ("caller", "callee"),
    (("calls", "sum"), ("errors", "sum"), ("latency", "hist")),
)
TOTALS = Table("totals", (), (("traces", "sum"), ("spans", "sum")))

# The revision registry: one row per workload-revision over everything retained.
REGISTRY = Table(
    "registry",
    ("workload", "revision"),
    tuple((c, m) for c, m in REVISIONS.values if m != "hist"),
)

BUCKET_TABLES = (REVISIONS, IMPACTS, ENTRY_IMPACTS, ABSORBED, ORIGINS, ENTRY_TOTALS, EDGES, TOTALS)

_SQL_TYPE = {"sum": "INTEGER", "max": "INTEGER", "min0": "INTEGER"}
_LAZY = ("hist", "set", "list")


def _column_ddl(name: str, merge: str) -> str:
    sql_type = _SQL_TYPE.get(merge, "TEXT")
    default = "0" if sql_type == "INTEGER" else ("''" if merge == "first" else "'[]'")
    if merge == "hist":
        default = "'{}'"
    return f"{name} {sql_type} NOT NULL DEFAULT {default}"


def create_statements() -> list[str]:
    """DDL for every table, index and the schema version (idempotent)."""
    stmts = ["CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"]
    for t in BUCKET_TABLES:
        cols = ["span_s INTEGER NOT NULL", "bucket INTEGER NOT NULL"]
        cols += [f"{k} TEXT NOT NULL" for k in t.keys]
        cols += [_column_ddl(c, m) for c, m in t.values]
        # Clustered by tier and time: a window read scans a few contiguous ranges and a prune
        # deletes one; the key index serves the lazy per-key reads of JSON columns.
        pk = ", ".join(["span_s", "bucket", *t.keys])
        stmts.append(
            f"CREATE TABLE IF NOT EXISTS {t.name} ({', '.join(cols)}, PRIMARY KEY ({pk}))"
            " WITHOUT ROWID"
        )
        if any(m in _LAZY for _, m in t.values):
            keys = ", ".join([*t.keys, "span_s", "bucket"])
            stmts.append(f"CREATE INDEX IF NOT EXISTS {t.name}_key ON {t.name} ({keys})")
    cols = [*(f"{k} TEXT NOT NULL" for k in REGISTRY.keys)]
    cols += [_column_ddl(c, m) for c, m in REGISTRY.values]
    pk = ", ".join(REGISTRY.keys)
    stmts.append(
        f"CREATE TABLE IF NOT EXISTS {REGISTRY.name} ({', '.join(cols)}, PRIMARY KEY ({pk}))"
        " WITHOUT ROWID"
    )
    return stmts


_UPSERT = {
    "sum": "{c} = {c} + excluded.{c}",
    "max": "{c} = max({c}, excluded.{c})",
    "min0": (
        "{c} = CASE WHEN excluded.{c} = 0 THEN {c} WHEN {c} = 0 THEN excluded.{c}"
        " ELSE min({c}, excluded.{c}) END"
    ),
    "first": "{c} = CASE WHEN {c} = '' THEN excluded.{c} ELSE {c} END",
    "hist": "{c} = pt_hist_merge({c}, excluded.{c})",
    "set": "{c} = pt_set_union({c}, excluded.{c})",
    "list": "{c} = pt_list_concat({c}, excluded.{c})",
}


def upsert_sql(t: Table, *, bucketed: bool = True) -> str:
    """``INSERT … ON CONFLICT DO UPDATE`` merging a row into the stored one of the same key."""
    keys = ["span_s", "bucket", *t.keys] if bucketed else list(t.keys)
    cols = keys + [c for c, _ in t.values]
    sets = ", ".join(_UPSERT[m].format(c=c) for c, m in t.values)
    marks = ", ".join("?" for _ in cols)
    return (
        f"INSERT INTO {t.name} ({', '.join(cols)}) VALUES ({marks})"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )


_READ = {
    "sum": "SUM({c})",
    "max": "MAX({c})",
    "min0": "COALESCE(MIN(NULLIF({c}, 0)), 0)",
    "first": "MAX({c})",
}
_ROLLUP = {
    **_READ,
    "hist": "pt_hist_agg({c})",
    "set": "pt_set_agg({c})",
    "list": "pt_list_agg({c})",
}

# Five ranges: minutes, 10 minutes, hours, 10 minutes, minutes (see ``window_params``).
_RANGE = "(span_s = ? AND bucket >= ? AND bucket < ?)"
WINDOW = "(" + " OR ".join([_RANGE] * 5) + ")"


def window_params(start_s: float | None, end_s: float | None) -> tuple[int, ...]:
    """Parameters of ``WINDOW``: the minutes overlapping ``[start_s, end_s)`` as tier ranges."""
    m0 = FAR_PAST if start_s is None else math.floor(start_s / MINUTE) * MINUTE
    m1 = FAR_FUTURE if end_s is None else math.ceil(end_s / MINUTE) * MINUTE
    m0, m1 = max(m0, FAR_PAST), max(min(m1, FAR_FUTURE), m0)
    ten, hour = TIERS[1], TIERS[2]
    t0 = min(-(-m0 // ten) * ten, m1)
    t1 = max(m1 // ten * ten, t0)
    h0 = min(-(-t0 // hour) * hour, t1)
    h1 = max(t1 // hour * hour, h0)
    ranges = ((MINUTE, m0, t0), (ten, t0, h0), (hour, h0, h1), (ten, h1, t1), (MINUTE, t1, m1))
    return tuple(x for r in ranges for x in r)


# The maps keyed first by an origin workload-revision (``Store.read(origin=...)`` filters them).
ORIGIN_TABLES = (IMPACTS, ENTRY_IMPACTS, ABSORBED, ORIGINS)


def read_sql(t: Table, *, origin: bool = False) -> str:
    """The window query: one row per key with its scalar columns aggregated in SQL.

    With ``origin``, only the keys whose first two columns are the two first parameters (an
    origin workload and revision; the window's parameters follow).
    """
    exprs = [_READ[m].format(c=c) for c, m in t.values if m in _READ]
    group = f" GROUP BY {', '.join(t.keys)}" if t.keys else ""
    where = f"{t.keys[0]} = ? AND {t.keys[1]} = ? AND {WINDOW}" if origin else WINDOW
    return f"SELECT {', '.join([*t.keys, *exprs])} FROM {t.name} WHERE {where}{group}"


def column_sql(t: Table, column: str) -> str:
    """One key's rows of a JSON column over the window, in time order (key index scans)."""
    where = " AND ".join(f"{k} = ?" for k in t.keys)
    return f"SELECT {column} FROM {t.name} WHERE {where} AND {WINDOW} ORDER BY bucket"


def column_all_sql(t: Table, column: str) -> str:
    """Every key's rows of a JSON column over the window, by key and in time order."""
    keys = ", ".join(t.keys)
    return f"SELECT {keys}, {column} FROM {t.name} WHERE {WINDOW} ORDER BY {keys}, bucket"


def rollup_sql(t: Table) -> str:
    """Rebuild one coarse bucket from its minutes: params span_s, bucket, first, end minute."""
    cols = ["span_s", "bucket", *t.keys, *(c for c, _ in t.values)]
    exprs = ["?", "?", *t.keys, *(_ROLLUP[m].format(c=c) for c, m in t.values)]
    group = f" GROUP BY {', '.join(t.keys)}" if t.keys else " HAVING COUNT(*) > 0"
    return (
        f"INSERT INTO {t.name} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM {t.name}"
        f" WHERE span_s = {MINUTE} AND bucket >= ? AND bucket < ?{group}"
    )
