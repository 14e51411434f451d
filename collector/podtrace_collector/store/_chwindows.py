"""The query of a read's windows: a few ``GROUP BY``s over ``aggregates`` for all of them.

A query costs the in-process engine several milliseconds whatever it reads (planning, one
aggregate function per column), so a read's windows are packed into as few ``GROUP BY``s as
can answer them: windows whose maps differ share one (each row's map says which window it
belongs to), e.g. a report's window, its transit window and its callers' window.  Each reads
only the columns its maps declare (the others are constants), and keeps the keys of an
origin-keyed map by the sorting key's ``okey1, okey2``, so that it reads those origins' rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from podtrace_collector.aggregate.stats import MAPS
from podtrace_collector.aggregate.window import Window
from podtrace_collector.store import _chschema as s

_HEAVY = ("hist", "set", "list")
# A column no map of the GROUP BY declares: its neutral value, typed as the aggregate's result.
_NEUTRAL = {
    "sum": "toInt64(0)",
    "max": "toInt64(0)",
    "min0": "toInt64(0)",
    "first": "''",
    "hist": "CAST(map(), 'Map(Int32, Int64)')",
    "set": "CAST([], 'Array(String)')",
    "list": "CAST([], 'Array(String)')",
}
_PAIRS = "Array(Tuple(String, String))"
_TRIPLES = "Array(Tuple(String, String, String))"


@dataclass(frozen=True, slots=True)
class WindowRead:
    """One window of a read: its index in the plan, stored ranges, maps and key filters."""

    index: int
    ranges: list[s.Range]
    maps: tuple[str, ...]
    origins: frozenset[tuple[str, str]] | None
    details: frozenset[tuple[str, str]] | None


def reads(windows: Sequence[Window], horizon: int | None) -> list[WindowRead]:
    """The windows that read anything (a stored range and a map)."""
    out = []
    for i, w in enumerate(windows):
        rs = s.ranges(w.start_s, w.end_s, horizon)
        maps = tuple(spec.name for spec in MAPS if w.maps is None or spec.name in w.maps)
        if rs and maps:
            out.append(WindowRead(i, rs, maps, w.origins, w.details))
    return out


def windows_sql(db: str, wanted: list[WindowRead]) -> tuple[str, dict[str, Any]]:
    """The ``UNION ALL`` answering ``wanted`` (rows ``(w, map, *keys, *values, seen)``) and its
    parameters but ``wm`` (the snapshot's last block)."""
    params: dict[str, Any] = {}
    for r in wanted:
        if r.details is not None:
            params[f"details{r.index}"] = sorted(r.details)
    parts = []
    for g in _groups(wanted):
        which, selections = _condition(g)
        parts.append(_group_sql(db, g, which))
        params.update(selections)
    return " UNION ALL ".join(parts), params


def _groups(wanted: list[WindowRead]) -> list[list[WindowRead]]:
    """Windows packed greedily, in order, into groups whose windows read no map in common."""
    groups: list[tuple[set[str], list[WindowRead]]] = []
    for r in wanted:
        group = next((g for g in groups if g[0].isdisjoint(r.maps)), None)
        if group is None:
            groups.append((set(r.maps), [r]))
        else:
            group[0].update(r.maps)
            group[1].append(r)
    return [g for _, g in groups]


def _group_sql(db: str, group: list[WindowRead], which: str) -> str:
    declared = {name for r in group for m in r.maps for name, _ in s.BY_NAME[m].merges}
    heavy = _heavy_condition(group)
    values = [
        s.read_expr(c, heavy if c.merge in _HEAVY else None)
        if c.name in declared
        else _NEUTRAL[c.merge]
        for c in s.COLUMNS
    ]
    keys = ", ".join(s.KEYS)
    return (
        f"SELECT {_window_of(group)} AS w, map, {keys}, {', '.join(values)},"
        f" max({s.PART_MAX}) AS seen FROM {s.q(db)}.{s.TABLE}"
        f" WHERE {which} AND {s.PART_MIN} <= {{wm:UInt64}} GROUP BY map, {keys}"
    )


def _condition(group: list[WindowRead]) -> tuple[str, dict[str, Any]]:
    """The rows of the group's windows, and the parameters that name them.

    A window's rows are its maps' over its ranges; it names them by the sorting key's prefix,
    ``(map, okey1, okey2) IN`` a set holding ``(map, '', '')`` for a map read whole and
    ``(map, workload, revision)`` for each origin of an origin-keyed map (or ``map IN`` for an
    origin-keyed map read for every origin).  Windows of the same ranges share one set: the
    engine's planning, not the reading, is most of a small read's cost, and grows with every
    term of the condition.
    """
    by_ranges: dict[str, tuple[set[tuple[str, str, str]], set[str]]] = {}
    for r in group:
        chosen, every = by_ranges.setdefault(s.range_sql(r.ranges), (set(), set()))
        for m in r.maps:
            if not s.BY_NAME[m].origin:
                chosen.add((m, "", ""))
            elif r.origins is None:
                every.add(m)
            else:
                chosen.update((m, w, rev) for w, rev in r.origins)
    first = group[0].index
    terms, params = [], {}
    for k, (ranges, (chosen, every)) in enumerate(by_ranges.items()):
        rows = []
        if chosen:
            params[f"rows{first}_{k}"] = sorted(chosen)
            rows.append(f"(map, okey1, okey2) IN {{rows{first}_{k}:{_TRIPLES}}}")
        if every:
            rows.append(f"map IN {s.strings(tuple(sorted(every)))}")
        terms.append(f"({ranges} AND ({' OR '.join(rows) or '0'}))")
    return f"({' OR '.join(terms)})", params


def _heavy_condition(group: list[WindowRead]) -> str | None:
    """Which rows' histograms, sets and lists to merge: a detail map's, only its details'."""
    cases = []
    for r in group:
        detail = tuple(m for m in r.maps if s.BY_NAME[m].detail)
        if r.details is not None and detail:
            cases.append(
                f"map IN {s.strings(detail)}, (key1, key2) IN {{details{r.index}:{_PAIRS}}}"
            )
    return f"multiIf({', '.join(cases)}, 1)" if cases else None


def _window_of(group: list[WindowRead]) -> str:
    """The window a row belongs to, by its map (the group's windows share none)."""
    if len(group) == 1:
        return str(group[0].index)
    cases = ", ".join(f"map IN {s.strings(r.maps)}, {r.index}" for r in group[:-1])
    return f"multiIf({cases}, {group[-1].index})"
