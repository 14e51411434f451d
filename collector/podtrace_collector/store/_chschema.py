"""The ClickHouse schema and SQL, derived from the aggregate declarations (``stats.MAPS``).

One wide table, ``aggregates``, holds every map: a ``map`` column names the map, ``key1…keyN``
its key parts (``''`` past the map's own), and one column per declared field (a field name means
one merge in every map that declares it: the column is shared).  Rows of different maps never
merge, since the map is in the sorting key; the columns a map does not declare stay at their
neutral default (sparse).  An origin-keyed map's rows are sorted by origin first (``okey1``,
``okey2``: its first two key parts), so that a report reads its origins' rows, not every
origin's; the other maps' by time (a window is one range per tier).  One table is what makes a
write atomic: a write is one INSERT, which becomes one part, visible at once (``clickhouse``
explains how a read uses that).

Writes go into a ``Null`` table, ``ingest_<digest>``, whose materialized view writes each
inserted minute row once per tier (minutes, 10 minutes, hours and days: ``TIERS``) into
``aggregates`` in one block; the AggregatingMergeTree merges rows of a key and bucket (those of
one batch's minutes as it writes the part, ``clickhouse``; those of different writes and gateways
in the background) by each column's merge:

======  =====================================================  ===========================
merge   column                                                 read as
======  =====================================================  ===========================
sum     ``SimpleAggregateFunction(sum, Int64)``                ``sum``
max     ``SimpleAggregateFunction(max, Int64)``                ``max``
min0    ``SimpleAggregateFunction(min, Int64)``, 0 as ``NONE``  ``min``, ``NONE`` as 0
first   ``SimpleAggregateFunction(max, String)``               ``max`` (the values agree)
hist    ``SimpleAggregateFunction(sumMap, Map(Int32, Int64))``   ``sumMap``
set     ``SimpleAggregateFunction(groupUniqArrayArray(N))``    the same, capped at N
list    ``AggregateFunction(groupArraySorted(4 N), String)``   the N smallest distinct
======  =====================================================  ===========================

The ingest table's name carries a digest of its columns and view, so a podtrace with new
fields creates a new ingest table and view beside the old ones (gateways of both versions go on
writing during a rolling upgrade) and adds the new columns to ``aggregates``; nothing is ever
dropped or rewritten, and no manual migration step exists.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from podtrace_collector.aggregate.fields import MAX_ITEMS, MAX_LIST, MapSpec
from podtrace_collector.aggregate.stats import MAPS

SCHEMA_VERSION = 2  # 2: origin-keyed maps sorted by origin (okey1, okey2)
# Minutes, 10 minutes, hours, days: each divides the next.  A window reads whole days, hours
# and 10 minutes from the coarse tiers and at most 9 minutes at each end from the minutes.
TIERS = (60, 600, 3600, 86_400)
MINUTE, DAY = TIERS[0], TIERS[-1]
NONE = 2**63 - 1  # a min0 column's "none yet" (0 in the declarations), the neutral of min
# Exemplar states keep this many smallest ids (repeats included), of which a read keeps the
# MAX_LIST smallest distinct: exact unless one trace id recurs in more rows than the slack.
LIST_STATE = 4 * MAX_LIST
FAR_PAST, FAR_FUTURE = -(DAY << 32), DAY << 32  # unbounded window ends, multiples of every tier
TABLE = "aggregates"
REGISTRY = next(spec for spec in MAPS if spec.name == "revisions")
ORIGIN_MAPS = tuple(spec.name for spec in MAPS if spec.origin)
BY_NAME = {spec.name: spec for spec in MAPS}

_STORED = {
    "sum": "SimpleAggregateFunction(sum, Int64)",
    "max": "SimpleAggregateFunction(max, Int64)",
    "min0": f"SimpleAggregateFunction(min, Int64) DEFAULT {NONE}",
    "first": "SimpleAggregateFunction(max, String)",
    "hist": "SimpleAggregateFunction(sumMap, Map(Int32, Int64))",
    "set": f"SimpleAggregateFunction(groupUniqArrayArray({MAX_ITEMS}), Array(String))",
    "list": f"AggregateFunction(groupArraySorted({LIST_STATE}), String)",
}
INGEST_TYPE = {
    "sum": "Int64",
    "max": "Int64",
    "min0": "Int64",
    "first": "String",
    "hist": "Map(Int32, Int64)",
    "set": "Array(String)",
    "list": "Array(String)",
}
_INGEST = {  # the view's expression: an inserted minute row as a tier's stored row
    "sum": "{c}",
    "max": "{c}",
    "min0": f"if({{c}} = 0, {NONE}, {{c}})",
    "first": "{c}",
    "hist": "{c}",
    "set": f"if(length({{c}}) > {MAX_ITEMS}, arraySlice(arrayDistinct({{c}}), 1, {MAX_ITEMS}),"
    " {c})",
    "list": f"arrayReduce('groupArraySortedState({LIST_STATE})', arrayDistinct({{c}}))",
}
_READ = {  # a read's merge of a key's rows; {f} is an aggregate combinator suffix ("" or "If")
    "sum": "sum{f}({c}{cond})",
    "max": "max{f}({c}{cond})",
    "min0": "min{f}({c}{cond})",
    "first": "max{f}({c}{cond})",
    "hist": "sumMap{f}({c}{cond})",
    "set": f"groupUniqArrayArray{{f}}({MAX_ITEMS})({{c}}{{cond}})",
    "list": f"groupArraySortedMerge{{f}}({LIST_STATE})({{c}}{{cond}})",
}
# Where a row came from: the block numbers of its part (partition_min_max_level[_mutation]).
PART_MIN = "toUInt64(splitByChar('_', _part)[2])"
PART_MAX = "toUInt64(splitByChar('_', _part)[3])"


@dataclass(frozen=True, slots=True)
class Column:
    """A value column: a declared field name and its merge."""

    name: str
    merge: str


def _columns(maps: tuple[MapSpec, ...]) -> tuple[Column, ...]:
    seen: dict[str, str] = {}
    for spec in maps:
        for name, merge in spec.merges:
            if seen.setdefault(name, merge) != merge:
                raise TypeError(
                    f"field {name!r} merges as {seen[name]!r} in one map and {merge!r} in"
                    f" {spec.name!r}: the ClickHouse store keeps one column per field name"
                )
    return tuple(Column(name, merge) for name, merge in seen.items())


COLUMNS = _columns(MAPS)
KEYS = tuple(f"key{i + 1}" for i in range(max(len(spec.keys) for spec in MAPS)))
INGEST_COLUMNS = ("map", "minute", *KEYS, *(c.name for c in COLUMNS))
INGEST_TYPES = (
    "LowCardinality(String)",
    "Int64",
    *("String" for _ in KEYS),
    *(INGEST_TYPE[c.merge] for c in COLUMNS),
)


def q(name: str) -> str:
    """A quoted identifier (a database name comes from the user's URL)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def sorting_key() -> str:
    """Map, then the origin of an origin-keyed map (``''`` for other maps), tier and time, key.

    A window of a map is then one range per tier (per origin for an origin-keyed map, so that a
    report reads its origins' rows and not every origin's)."""
    return ", ".join(["map", "okey1", "okey2", "tier", "bucket", *KEYS])


def aggregates_ddl(db: str, ttl_s: int | None) -> str:
    """The ``aggregates`` table, partitioned by the day of the write (one partition per write,
    so one part), sorted by ``sorting_key``."""
    cols = [
        "map LowCardinality(String)",
        "okey1 String",  # the first two key parts of an origin-keyed map, else ''
        "okey2 String",
        "tier UInt32",
        "bucket Int64",
        "written Date",
        *(f"{k} String" for k in KEYS),
        *(column_ddl(c) for c in COLUMNS),
    ]
    return (
        f"CREATE TABLE IF NOT EXISTS {q(db)}.{TABLE} ({', '.join(cols)})"
        f" ENGINE = AggregatingMergeTree PARTITION BY written"
        f" ORDER BY ({sorting_key()}){ttl_clause(ttl_s)}"
        # Insert deduplication by token for a non-replicated table: a write retried after a
        # lost acknowledgement is recognised among the last 10,000 inserts of every gateway.
        " SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1,"
        # Small granules: a window is one range per map and tier (and origin); 8,192-row
        # granules would read tens of thousands of rows of other buckets at each range's ends.
        " index_granularity = 256"
    )


def column_ddl(c: Column) -> str:
    return f"{c.name} {_STORED[c.merge]}"


def ttl_clause(ttl_s: int | None) -> str:
    """Rows are deleted ``ttl_s`` after their bucket ends (whole parts: cheap)."""
    return "" if ttl_s is None else f" TTL toDateTime(bucket + tier) + toIntervalSecond({ttl_s})"


def other_ddl(db: str) -> list[str]:
    """The schema version and the retention horizon tables."""
    return [
        f"CREATE TABLE IF NOT EXISTS {q(db)}.schema_version (version UInt32)"
        " ENGINE = MergeTree ORDER BY tuple()",
        f"CREATE TABLE IF NOT EXISTS {q(db)}.horizon"
        " (one UInt8 DEFAULT 1, before_s SimpleAggregateFunction(max, Int64))"
        " ENGINE = AggregatingMergeTree ORDER BY one",
    ]


def ingest_name() -> str:
    """``ingest_<digest of its columns and view>``: a new declaration, a new ingest table."""
    text = "|".join([*INGEST_COLUMNS, *INGEST_TYPES, _view_select("x"), str(TIERS)])
    return "ingest_" + hashlib.sha256(text.encode()).hexdigest()[:12]


def ingest_ddl(db: str) -> list[str]:
    """The Null ingest table and its view into ``aggregates`` (both created if missing)."""
    name = ingest_name()
    cols = ", ".join(f"{c} {t}" for c, t in zip(INGEST_COLUMNS, INGEST_TYPES, strict=True))
    return [
        f"CREATE TABLE IF NOT EXISTS {q(db)}.{name} ({cols}) ENGINE = Null",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {q(db)}.{name}_mv TO {q(db)}.{TABLE}"
        f" AS {_view_select(f'{q(db)}.{name}')}",
    ]


def _view_select(source: str) -> str:
    """Each inserted minute row once per tier, re-keyed to the tier's bucket.  No GROUP BY: the
    table merges the rows of one key and bucket, at insert when a batch holds several minutes
    (``clickhouse``), later in the background."""
    keys = ", ".join(KEYS)
    values = ", ".join(f"{_INGEST[c.merge].format(c=c.name)} AS {c.name}" for c in COLUMNS)
    tiers = ", ".join(map(str, TIERS))
    okeys = ", ".join(f"if(map IN {strings(ORIGIN_MAPS)}, {k}, '') AS o{k}" for k in KEYS[:2])
    return (
        f"SELECT map, {okeys}, tier, minute - positiveModulo(minute, tier) AS bucket,"
        f" today() AS written, {keys}, {values} FROM {source} ARRAY JOIN [{tiers}] AS tier"
    )


def ranges(start_s: float | None, end_s: float | None, horizon_s: int | None) -> list[Range]:
    """The stored buckets covering the minutes of ``[start_s, end_s)`` that are retained.

    Whole days from the day tier, whole hours and 10 minutes from theirs, minutes at the ragged
    ends: ``(tier, first bucket, end)`` triples, empty ones left out.
    """
    m0 = FAR_PAST if start_s is None else math.floor(start_s / MINUTE) * MINUTE
    m1 = FAR_FUTURE if end_s is None else math.ceil(end_s / MINUTE) * MINUTE
    if start_s is not None and start_s == end_s:
        return []
    if horizon_s is not None:  # minutes ending at or before the horizon are pruned
        m0 = max(m0, horizon_s // MINUTE * MINUTE)
    m0, m1 = max(m0, FAR_PAST), min(m1, FAR_FUTURE)
    return [r for r in _split(m0, m1, len(TIERS) - 1) if r[1] < r[2]]


Range = tuple[int, int, int]


def _split(lo: int, hi: int, level: int) -> list[Range]:
    tier = TIERS[level]
    if level == 0:
        return [(tier, lo, hi)]
    a, b = -(-lo // tier) * tier, hi // tier * tier
    if a >= b:
        return _split(lo, hi, level - 1)
    return [*_split(lo, a, level - 1), (tier, a, b), *_split(b, hi, level - 1)]


def range_sql(rs: list[Range]) -> str:
    """``rs`` as a WHERE condition (integers only: no parameters needed)."""
    parts = [f"(tier = {t} AND bucket >= {a} AND bucket < {b})" for t, a, b in rs]
    return "(" + " OR ".join(parts) + ")" if parts else "0"


def registry_sql(db: str, retained: list[Range]) -> str:
    """The registry: per workload-revision, identity, first/last seen and pods over every day
    row still stored, counts over the retained buckets; revisions with nothing retained left
    out.  Each row ends with the newest block among the parts it was read from (``seen``) and
    the retention horizon now (``retained`` must be of that horizon)."""
    kept = range_sql(retained)
    n = len(REGISTRY.keys)
    values = [
        read_expr(Column(name, merge), kept if merge == "sum" else f"tier = {DAY}")
        for name, merge in REGISTRY.merges
        if merge != "hist"
    ]
    keys = ", ".join(KEYS[:n])
    return (
        f"SELECT {keys}, {', '.join(values)}, max({PART_MAX}) AS seen,"
        f" ({_HORIZON_SQL.format(db=q(db))}) AS horizon FROM {q(db)}.{TABLE}"
        f" WHERE map = '{REGISTRY.name}' AND (tier = {DAY} OR {kept})"
        f" GROUP BY {keys} HAVING countIf({kept}) > 0"
    )


REGISTRY_FIELDS = tuple((n, m) for n, m in REGISTRY.merges if m != "hist")


def read_expr(c: Column, cond: str | None) -> str:
    """A read's merge of column ``c`` over a key's rows, of those where ``cond`` holds if given."""
    expr = _READ[c.merge].format(c=c.name, f="If" if cond else "", cond=f", {cond}" if cond else "")
    return f"if({expr} = {NONE}, 0, {expr})" if c.merge == "min0" else expr


def strings(names: tuple[str, ...]) -> str:
    """Names from the declarations as an SQL tuple of strings."""
    return "(" + ", ".join(f"'{n}'" for n in names) + ")" if names else "('')"


_HORIZON_SQL = "SELECT maxOrNull(before_s) FROM {db}.horizon"


def snapshot_sql(db: str) -> str:
    """The last block committed to ``aggregates`` (every block up to it is visible, since a
    MergeTree numbers a part as it commits it) and the retention horizon.  Parameter ``db``."""
    return (
        "SELECT (SELECT max(max_block_number) FROM system.parts WHERE database = {db:String}"
        f" AND table = '{TABLE}' AND active) AS wm, ({_HORIZON_SQL.format(db=q(db))}) AS horizon"
    )
