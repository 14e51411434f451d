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
        if r.origins is not None:
            params[f"origins{r.index}"] = sorted(r.origins)
        if r.details is not None:
            params[f"details{r.index}"] = sorted(r.details)
    return " UNION ALL ".join(_group_sql(db, g) for g in _groups(wanted)), params


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


def _group_sql(db: str, group: list[WindowRead]) -> str:
    declared = {name for r in group for m in r.maps for name, _ in s.BY_NAME[m].merges}
    heavy = _heavy_condition(group)
    values = [
        s.read_expr(c, heavy if c.merge in _HEAVY else None)
        if c.name in declared
        else _NEUTRAL[c.merge]
        for c in s.COLUMNS
    ]
    which = " OR ".join(f"({_condition(r)})" for r in group)
    keys = ", ".join(s.KEYS)
    return (
        f"SELECT {_window_of(group)} AS w, map, {keys}, {', '.join(values)},"
        f" max({s.PART_MAX}) AS seen FROM {s.q(db)}.{s.TABLE}"
        f" WHERE ({which}) AND {s.PART_MIN} <= {{wm:UInt64}} GROUP BY map, {keys}"
    )


def _condition(r: WindowRead) -> str:
    """The rows of window ``r``: its maps over its ranges, origin-keyed maps for its origins."""
    keyed = () if r.origins is None else tuple(m for m in r.maps if s.BY_NAME[m].origin)
    plain = tuple(m for m in r.maps if m not in keyed)
    alternatives = [f"map IN {s.strings(plain)}"] if plain else []
    if keyed:
        alternatives.append(
            f"(map IN {s.strings(keyed)} AND (okey1, okey2) IN {{origins{r.index}:{_PAIRS}}})"
        )
    return f"({' OR '.join(alternatives)}) AND {s.range_sql(r.ranges)}"


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
