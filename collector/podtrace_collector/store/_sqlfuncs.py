"""The merge functions SQLite calls for JSON columns in upserts and roll-ups (``pt_*``)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from podtrace_collector.store._rows import (
    dump_list,
    dump_str_counts,
    merge_counts,
    merge_list,
    merge_set,
)


def register(db: sqlite3.Connection) -> None:
    """Register ``pt_hist_merge``, ``pt_set_union``, ``pt_list_concat`` and their aggregates."""
    db.create_function("pt_hist_merge", 2, _hist_merge, deterministic=True)
    db.create_function("pt_set_union", 2, _set_union, deterministic=True)
    db.create_function("pt_list_concat", 2, _list_concat, deterministic=True)
    # typeshed's aggregate protocol wants int results; SQLite takes any value.
    db.create_aggregate("pt_hist_agg", 1, _HistAgg)  # type: ignore[arg-type]
    db.create_aggregate("pt_set_agg", 1, _SetAgg)  # type: ignore[arg-type]
    db.create_aggregate("pt_list_agg", 1, _ListAgg)  # type: ignore[arg-type]


def _hist_merge(a: str, b: str) -> str:
    return dump_str_counts(merge_counts([a, b]))


def _set_union(a: str, b: str) -> str:
    stored = json.loads(a)
    merged = sorted(merge_set([a, b]))
    # A coarse row's set mostly holds the new minute's users already: when the result is what
    # is stored, keep the stored text rather than re-encoding thousands of names.
    return a if merged == stored else dump_list(merged)


def _list_concat(a: str, b: str) -> str:
    return dump_list(merge_list([a, b]))


class _JsonAgg:
    """An SQLite aggregate collecting JSON values, merged once at the end."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def step(self, value: Any) -> None:
        self.values.append(str(value))


class _HistAgg(_JsonAgg):
    def finalize(self) -> str:
        return dump_str_counts(merge_counts(self.values))


class _SetAgg(_JsonAgg):
    def finalize(self) -> str:
        return dump_list(sorted(merge_set(self.values)))


class _ListAgg(_JsonAgg):
    def finalize(self) -> str:
        return dump_list(merge_list(self.values))
