"""The merge functions SQLite calls for histogram, set and list columns in upserts and
roll-ups (``pt_*``)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from podtrace_collector.aggregate.fields import MAX_ITEMS
from podtrace_collector.store import _histblob
from podtrace_collector.store._rows import dump_list, merge_list, merge_set


def register(db: sqlite3.Connection) -> None:
    """Register ``pt_hist_merge``, ``pt_set_union``, ``pt_list_concat`` and their aggregates."""
    db.create_function("pt_hist_merge", 2, _hist_merge, deterministic=True)
    db.create_function("pt_set_union", 2, _set_union, deterministic=True)
    db.create_function("pt_list_concat", 2, _list_concat, deterministic=True)
    # typeshed's aggregate protocol wants int results; SQLite takes any value.
    db.create_aggregate("pt_hist_agg", 1, _HistAgg)  # type: ignore[arg-type]
    db.create_aggregate("pt_set_agg", 1, _SetAgg)  # type: ignore[arg-type]
    db.create_aggregate("pt_list_agg", 1, _ListAgg)  # type: ignore[arg-type]


def _hist_merge(a: bytes | str, b: bytes | str) -> bytes:
    return _histblob.merge((a, b))


def _set_union(a: str, b: str) -> str:
    """The capped union (``merge_set``: the stored items, then the new ones in their order)."""
    stored: list[str] = json.loads(a)
    have = set(stored)
    added = [x for x in dict.fromkeys(json.loads(b)) if x not in have][: MAX_ITEMS - len(have)]
    # A coarse row's set mostly holds the new minute's users already: then the stored text
    # (sorted, as every set is written) is the union, and thousands of names need no sorting;
    # else the stored run and the new items sort as two runs.
    return dump_list(sorted(stored + added)) if added else a


def _list_concat(a: str, b: str) -> str:
    return dump_list(merge_list([a, b]))


class _JsonAgg:
    """An SQLite aggregate collecting stored values, merged once at the end."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def step(self, value: Any) -> None:
        self.values.append(value)


class _HistAgg(_JsonAgg):
    def finalize(self) -> bytes:
        return _histblob.merge(self.values)


class _SetAgg(_JsonAgg):
    def finalize(self) -> str:
        return dump_list(sorted(merge_set(self.values)))


class _ListAgg(_JsonAgg):
    def finalize(self) -> str:
        return dump_list(merge_list(self.values))
