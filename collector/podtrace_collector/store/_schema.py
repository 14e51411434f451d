"""The SQLite schema, derived from the aggregate declarations (``aggregate.stats.MAPS``).

Every map becomes one table with one row per (key, time bucket) in three *tiers*: minutes,
10-minute and hour buckets (``span_s`` 60, 600, 3600).  A write merges each minute into its minute
row; a coarse bucket's rows are built once it is over (``_rollup``: the 10-minute rows from the
minutes, the hour rows from the 10-minute rows), and a minute written after that is merged into
them too.  A window read covers the window's minutes with as few rows as it can (whole hours
from the hour tier, whole 10 minutes from the middle tier, minutes at the ragged ends and where
the coarse rows are not built yet: at most about 30 + hours rows per key), so a week costs about
what an hour does.

A column's merge (``aggregate.fields``) says how two rows of the same key combine, in an upsert
of a repeated write, in a roll-up and in a window read: counters in SQL (``SUM``, ``MAX``, the
smallest non-zero, ``MAX`` of strings), histograms (``_histblob``), sets and lists (JSON) merged
by the ``pt_*`` functions (upserts, roll-ups) or in Python (reads).

New maps and new fields need no migration step: opening a store creates missing tables and adds
missing columns (with their defaults) to existing ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from podtrace_collector.aggregate.fields import HEAVY, MapSpec
from podtrace_collector.aggregate.stats import MAPS

SCHEMA_VERSION = 2
TIERS = (60, 600, 3600)  # bucket lengths in seconds; each divides the next
MINUTE = TIERS[0]
# Unbounded window ends, multiples of every tier (Unix seconds, about ±500,000 years).
FAR_PAST, FAR_FUTURE = -(3600 << 32), 3600 << 32


@dataclass(frozen=True, slots=True)
class Table:
    """One stored map: its key columns (text) and value columns with their merge."""

    name: str
    keys: tuple[str, ...]
    values: tuple[tuple[str, str], ...]
    spec: MapSpec | None = None

    @property
    def scalars(self) -> tuple[tuple[str, str], ...]:
        return tuple((c, m) for c, m in self.values if m not in HEAVY)

    @property
    def heavy(self) -> tuple[tuple[str, str], ...]:
        return tuple((c, m) for c, m in self.values if m in HEAVY)


def _table(spec: MapSpec) -> Table:
    return Table(spec.name, spec.keys, spec.merges, spec)


BUCKET_TABLES = tuple(_table(spec) for spec in MAPS)
BY_NAME = {t.name: t for t in BUCKET_TABLES}
REVISIONS = BY_NAME["revisions"]
# The revision registry: one row per workload-revision over everything retained.
REGISTRY = Table(
    "registry", REVISIONS.keys, tuple((c, m) for c, m in REVISIONS.values if m != "hist")
)

_SQL_TYPE = {"sum": "INTEGER", "max": "INTEGER", "min0": "INTEGER"}
_DEFAULT = {"first": "''", "hist": "'{}'", "set": "'[]'", "list": "'[]'"}


def column_ddl(name: str, merge: str) -> str:
    sql_type = _SQL_TYPE.get(merge, "TEXT")
    return f"{name} {sql_type} NOT NULL DEFAULT {_DEFAULT.get(merge, '0')}"


def create_statements() -> list[str]:
    """DDL for every table, index and the schema version (idempotent)."""
    stmts = ["CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"]
    for t in BUCKET_TABLES:
        cols = ["span_s INTEGER NOT NULL", "bucket INTEGER NOT NULL"]
        cols += [f"{k} TEXT NOT NULL" for k in t.keys]
        cols += [column_ddl(c, m) for c, m in t.values]
        # Clustered by tier and time: a window read scans a few contiguous ranges and a prune
        # deletes one; the key index serves reads of a few keys (one origin, two revisions).
        pk = ", ".join(["span_s", "bucket", *t.keys])
        stmts.append(
            f"CREATE TABLE IF NOT EXISTS {t.name} ({', '.join(cols)}, PRIMARY KEY ({pk}))"
            " WITHOUT ROWID"
        )
        if t.keys:
            keys = ", ".join([*t.keys, "span_s", "bucket"])
            stmts.append(f"CREATE INDEX IF NOT EXISTS {t.name}_key ON {t.name} ({keys})")
    # Per table and coarse tier: its rows hold every minute of the buckets before ``built_to``
    # and none after (``_rollup``).
    stmts.append(
        "CREATE TABLE IF NOT EXISTS rollups (tbl TEXT NOT NULL, span_s INTEGER NOT NULL,"
        " built_to INTEGER NOT NULL, PRIMARY KEY (tbl, span_s)) WITHOUT ROWID"
    )
    cols = [*(f"{k} TEXT NOT NULL" for k in REGISTRY.keys)]
    cols += [column_ddl(c, m) for c, m in REGISTRY.values]
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
    conflict = f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    return f"INSERT INTO {t.name} ({', '.join(cols)}) VALUES ({marks}){conflict}"


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


def window_params(
    start_s: float | None, end_s: float | None, built: Mapping[int, int] | None = None
) -> tuple[int, ...]:
    """Parameters of ``WINDOW``: the minutes overlapping ``[start_s, end_s)`` as tier ranges.

    ``built``: per coarse tier, the bucket from which on its rows are not built yet (minutes,
    or 10-minute rows, cover those buckets instead); ``None``: every coarse row is built.
    """
    m0 = FAR_PAST if start_s is None else math.floor(start_s / MINUTE) * MINUTE
    m1 = FAR_FUTURE if end_s is None else math.ceil(end_s / MINUTE) * MINUTE
    if start_s is not None and start_s == end_s:
        m1 = m0  # an empty window reads nothing
    m0, m1 = max(m0, FAR_PAST), max(min(m1, FAR_FUTURE), m0)
    ten, hour = TIERS[1], TIERS[2]
    built = built or {ten: FAR_FUTURE, hour: FAR_FUTURE}
    t0 = min(-(-m0 // ten) * ten, m1)
    t1 = max(min(m1 // ten * ten, built[ten]), t0)
    h0 = min(-(-t0 // hour) * hour, t1)
    h1 = max(min(t1 // hour * hour, built[hour]), h0)
    ranges = ((MINUTE, m0, t0), (ten, t0, h0), (hour, h0, h1), (ten, h1, t1), (MINUTE, t1, m1))
    return tuple(x for r in ranges for x in r)


def _where(t: Table, keyed: bool) -> str:
    """The window, and with ``keyed`` the first two key columns equal to two parameters."""
    if not keyed:
        return WINDOW
    return f"{t.keys[0]} = ? AND {t.keys[1]} = ? AND {WINDOW}"


def scalars_sql(t: Table, *, keyed: bool = False) -> str:
    """The window query of a table's counters: one row per key, aggregated in SQL.

    With ``keyed``, only keys whose first two columns are the first two parameters (an origin
    or a workload-revision; the window's parameters follow).
    """
    exprs = [_READ[m].format(c=c) for c, m in t.scalars]
    group = f" GROUP BY {', '.join(t.keys)}" if t.keys else " HAVING COUNT(*) > 0"
    return f"SELECT {', '.join([*t.keys, *exprs])} FROM {t.name} WHERE {_where(t, keyed)}{group}"


def heavy_sql(t: Table, *, keyed: bool = False) -> str:
    """The window's rows of a table's JSON columns, by key and in time order."""
    cols = ", ".join([*t.keys, *(c for c, _ in t.heavy)])
    order = ", ".join([*t.keys, "bucket"])
    return f"SELECT {cols} FROM {t.name} WHERE {_where(t, keyed)} ORDER BY {order}"


def build_sql(t: Table, span: int, source: int) -> str:
    """Build the ``span`` rows of the buckets in ``[?, ?)`` from their ``source``-tier rows."""
    cols = ["span_s", "bucket", *t.keys, *(c for c, _ in t.values)]
    bucket = f"bucket - ((bucket % {span}) + {span}) % {span}"  # floored: SQL's % truncates
    exprs = [str(span), bucket, *t.keys, *(_ROLLUP[m].format(c=c) for c, m in t.values)]
    return (
        f"INSERT INTO {t.name} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM {t.name}"
        f" WHERE span_s = {source} AND bucket >= ? AND bucket < ?"
        f" GROUP BY {', '.join([bucket, *t.keys])}"
    )


def rollup_sql(t: Table) -> str:
    """Rebuild one coarse bucket from its minutes: params span_s, bucket, first, end minute."""
    cols = ["span_s", "bucket", *t.keys, *(c for c, _ in t.values)]
    exprs = ["?", "?", *t.keys, *(_ROLLUP[m].format(c=c) for c, m in t.values)]
    group = f" GROUP BY {', '.join(t.keys)}" if t.keys else " HAVING COUNT(*) > 0"
    return (
        f"INSERT INTO {t.name} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM {t.name}"
        f" WHERE span_s = {MINUTE} AND bucket >= ? AND bucket < ?{group}"
    )
