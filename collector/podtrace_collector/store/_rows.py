"""``Aggregates`` to SQLite rows and back, generically over the declared maps and fields."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from podtrace_collector.aggregate.fields import MAX_ITEMS, smallest_capped
from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import Aggregates, RevisionStats
from podtrace_collector.store import _histblob
from podtrace_collector.store import _schema as s

Row = tuple[Any, ...]

# One encoder for every JSON column: ``json.dumps`` with options builds a new encoder per call,
# which was a third of the cost of encoding the small values the writer merges by the thousand.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dump_list(items: Iterable[str]) -> str:
    return _ENCODE(list(items))


def _encode_value(value: Any, merge: str) -> Any:
    if merge == "hist":
        return _histblob.encode(value.counts)
    if merge == "set":
        return dump_list(sorted(value))
    if merge == "list":
        return dump_list(value)
    return value


def encode(buckets: Mapping[int, Aggregates]) -> dict[str, list[Row]]:
    """Rows per table for a batch of minutes: ``(bucket, *key, *values)`` in column order."""
    out: dict[str, list[Row]] = {t.name: [] for t in s.BUCKET_TABLES}
    for bucket, a in sorted(buckets.items()):
        if not isinstance(bucket, int) or isinstance(bucket, bool):
            raise TypeError(f"bucket keys are Unix seconds (int), not {bucket!r}")
        for t in s.BUCKET_TABLES:
            rows = out[t.name]
            values = t.values
            for key, stats in getattr(a, t.name).items():
                cols = [_encode_value(getattr(stats, c), m) for c, m in values]
                rows.append((bucket, *key, *cols))
    return out


_REGISTRY_COLS = [i for i, (_, m) in enumerate(s.REVISIONS.values) if m != "hist"]


def registry_rows(rows: Mapping[str, list[Row]]) -> list[Row]:
    """Registry upsert rows from revision rows: no bucket, no histograms."""
    n_keys = len(s.REVISIONS.keys)
    return [
        (*r[1 : 1 + n_keys], *(r[1 + n_keys + i] for i in _REGISTRY_COLS))
        for r in rows[s.REVISIONS.name]
    ]


def registry_stats(row: Row) -> tuple[tuple[str, ...], RevisionStats]:
    """A registry row (keys, then values in ``REGISTRY`` order) as ``RevisionStats``."""
    n_keys = len(s.REGISTRY.keys)
    stats = RevisionStats()
    for (col, merge), value in zip(s.REGISTRY.values, row[n_keys:], strict=True):
        setattr(stats, col, set(json.loads(value)) if merge == "set" else value)
    return tuple(row[:n_keys]), stats


def new_stats(t: s.Table, scalars: Iterable[Any]) -> Any:
    """A stats object of ``t`` with its counters set (histograms and sets empty)."""
    assert t.spec is not None
    stats = t.spec.stats()
    for (col, _), value in zip(t.scalars, scalars, strict=True):
        setattr(stats, col, value)
    return stats


def load_heavy(t: s.Table, stats: Any, values: list[list[Any]]) -> None:
    """Merge a key's rows (per heavy column, in time order) into ``stats``."""
    for (col, merge), rows in zip(t.heavy, values, strict=True):
        if merge == "hist":
            setattr(stats, col, Histogram(_histblob.counts(_histblob.merge(rows))))
        elif merge == "set":
            setattr(stats, col, merge_set(rows))
        else:
            setattr(stats, col, merge_list(rows))


def merge_set(rows: list[str]) -> set[str]:
    """The capped union of JSON lists, in row order."""
    out: set[str] = set()
    for raw in rows:
        items = json.loads(raw)
        if len(out) + len(items) <= MAX_ITEMS:  # cannot reach the cap: add them all in C
            out.update(items)
            continue
        for x in items:
            if len(out) >= MAX_ITEMS:
                return out
            out.add(x)
    return out


def merge_list(rows: list[str]) -> list[str]:
    """The smallest distinct items of JSON lists, capped (``fields.smallest_capped``)."""
    out: list[str] = []
    for raw in rows:
        out = smallest_capped(out, json.loads(raw))
    return out
