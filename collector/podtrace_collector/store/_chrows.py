"""``Aggregates`` to ClickHouse ingest columns and query rows back, generically over ``MAPS``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from podtrace_collector.aggregate.fields import MAX_LIST
from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import MAPS, Aggregates, RevisionStats, WorkloadRev
from podtrace_collector.store import _chschema as s

_INT64 = (-(2**63), 2**63 - 1)
_EMPTY: dict[str, Any] = {"sum": 0, "max": 0, "min0": 0, "first": ""}
_INTEGERS = ("sum", "max", "min0")


def encode(buckets: Mapping[int, Aggregates]) -> list[list[Any]]:
    """The ingest table's columns (``_chschema.INGEST_COLUMNS``) for a batch of minutes.

    Raises:
        TypeError, ValueError: a bucket key that is not an int, or a value ClickHouse cannot
            hold (an integer outside Int64): the data itself is at fault.
    """
    cols: list[list[Any]] = [[] for _ in s.INGEST_COLUMNS]
    maps, minutes, keys = cols[0], cols[1], cols[2 : 2 + len(s.KEYS)]
    values = cols[2 + len(s.KEYS) :]
    for bucket, agg in sorted(buckets.items()):
        if not isinstance(bucket, int) or isinstance(bucket, bool):
            raise TypeError(f"bucket keys are Unix seconds (int), not {bucket!r}")
        for spec in MAPS:
            entries: dict[tuple[str, ...], Any] = getattr(agg, spec.name)
            if not entries:
                continue
            n = len(entries)
            maps.extend([spec.name] * n)
            minutes.extend([bucket] * n)
            for i, col in enumerate(keys):
                col.extend(k[i] if i < len(k) else "" for k in entries)
            fields = {name for name, _ in spec.merges}
            for c, col in zip(s.COLUMNS, values, strict=True):
                if c.name in fields:
                    col.extend(_value(getattr(st, c.name), c.merge) for st in entries.values())
                else:  # one shared neutral value: the client only reads it
                    col.extend([_neutral(c.merge)] * n)
    for c, col in zip(s.COLUMNS, values, strict=True):
        if (
            c.merge in ("sum", "max", "min0")
            and col
            and not _INT64[0] <= min(col) <= max(col) <= _INT64[1]
        ):
            raise ValueError(f"{c.name}: a value outside Int64")
    return cols


def _value(value: Any, merge: str) -> Any:
    if merge == "hist":
        return value.counts
    if merge in ("set", "list"):
        return list(value)
    return value


def _neutral(merge: str) -> Any:
    if merge == "hist":
        return {}
    if merge in ("set", "list"):
        return []
    return _EMPTY[merge]


# Per map: (field, the index of its column in a window query's row, merge).
_FIELDS = {
    spec.name: tuple(
        (name, 2 + len(s.KEYS) + [c.name for c in s.COLUMNS].index(name), merge)
        for name, merge in spec.merges
    )
    for spec in MAPS
}


def windows(rows: Sequence[Sequence[Any]], n_windows: int) -> list[Aggregates]:
    """Query rows ``(w, map, *keys, *values, seen)`` as one ``Aggregates`` per window."""
    out = [Aggregates() for _ in range(n_windows)]
    for row in rows:
        spec = s.BY_NAME.get(row[1])
        if spec is None:  # a map a newer podtrace writes: not ours to read
            continue
        stats = spec.stats()
        for name, i, merge in _FIELDS[spec.name]:
            setattr(stats, name, _stat(row[i], merge))
        getattr(out[row[0]], spec.name)[tuple(row[2 : 2 + len(spec.keys)])] = stats
    return out


def registry(rows: Sequence[Sequence[Any]]) -> dict[WorkloadRev, RevisionStats]:
    """Registry query rows ``(*keys, *REGISTRY_FIELDS, seen, horizon)`` as ``RevisionStats``."""
    n = len(s.REGISTRY.keys)
    out: dict[WorkloadRev, RevisionStats] = {}
    for row in rows:
        stats = RevisionStats()
        for (name, merge), value in zip(s.REGISTRY_FIELDS, row[n:-2], strict=True):
            setattr(stats, name, _stat(value, merge))
        out[(row[0], row[1])] = stats
    return out


def _stat(value: Any, merge: str) -> Any:
    if merge == "hist":
        return Histogram(value)
    if merge == "set":
        return set(value)
    if merge == "list":  # the state's smallest ids, repeats included: the smallest distinct
        return sorted(set(value))[:MAX_LIST]
    return value
