"""Lazily loaded fields: the window's histograms, sets and lists, fetched on first use.

A window read sums counters in SQL, but merging every histogram, pod set, user set and exemplar
list of an hour costs seconds, and a blast-radius report looks at those of one or two keys.  So
the objects a read returns are subclasses of the aggregate classes whose histogram/set/list slots
start *unset*: the first access falls through to ``__getattr__``, which fetches that key's minute
rows of that column, merges them the way ``Aggregates.merge`` would, and sets the slot.  To
everything else they are ordinary ``RevisionStats``/``EntryImpact``/``OriginStats``/``EdgeStats``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import (
    MAX_EXEMPLARS,
    MAX_USERS,
    EdgeStats,
    EntryImpact,
    OriginStats,
    RevisionStats,
)
from podtrace_collector.store import _schema as s

# (table, column, key) -> that key's JSON values of the column in the window, in minute order
Fetch = Callable[[s.Table, str, tuple[str, ...]], list[str]]


class Source:
    """Where an object's unloaded fields come from: one key of one table, over one window."""

    __slots__ = ("fetch", "key", "table")

    def __init__(self, table: s.Table, key: tuple[str, ...], fetch: Fetch) -> None:
        self.table, self.key, self.fetch = table, key, fetch

    def load(self, name: str) -> Any:
        merge = dict(self.table.values).get(name)
        if merge not in _MERGERS:
            raise AttributeError(name)
        return _MERGERS[merge](self.fetch(self.table, name, self.key))


class _Lazy:
    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        # Only reached for unset slots (and unknown names): load, keep, return.
        try:
            source: Source = object.__getattribute__(self, "_source")
        except AttributeError:
            raise AttributeError(name) from None
        value = source.load(name)
        setattr(self, name, value)
        return value

    def __eq__(self, other: object) -> bool:
        # The dataclass __eq__ wants the exact same class; compare with the plain class too.
        base = type(self).__mro__[2]
        if not isinstance(other, base):
            return NotImplemented
        names = [f.name for f in dataclasses.fields(base)]
        return all(getattr(self, n) == getattr(other, n) for n in names)

    __hash__ = None  # type: ignore[assignment]


class LazyRevisionStats(_Lazy, RevisionStats):
    __slots__ = ("_source",)


class LazyEntryImpact(_Lazy, EntryImpact):
    __slots__ = ("_source",)


class LazyOriginStats(_Lazy, OriginStats):
    __slots__ = ("_source",)


class LazyEdgeStats(_Lazy, EdgeStats):
    __slots__ = ("_source",)


T = TypeVar("T")


def make(cls: type[T], source: Source, **fields: Any) -> T:
    """An instance of a lazy class with ``fields`` set and every other field left to load."""
    obj = cls.__new__(cls)
    for name, value in fields.items():
        setattr(obj, name, value)
    obj._source = source  # type: ignore[attr-defined]
    return obj


def merge_hist(rows: list[str]) -> Histogram:
    return Histogram({int(b): c for b, c in merge_counts(rows).items()})


def merge_counts(rows: list[str]) -> dict[str, int]:
    """Histogram JSON rows added bin by bin, keys left as the strings they are stored as.

    ``_rows.dump_counts`` writes every key as ``str(int)``, so equal bins have equal strings:
    adding by string and converting once at the end does one ``int()`` per distinct bin instead
    of one per bin per row (a window's rows repeat the same ~50 bins many times).  The rows are
    parsed as one JSON array: the decoder then makes each distinct key string once and reuses it,
    so the additions below hit the dict by identity; that halves the cost of a merge.
    """
    if not rows:
        return {}
    parsed: list[dict[str, int]] = json.loads(f"[{','.join(rows)}]")
    counts = parsed[0]
    get = counts.get
    for row in parsed[1:]:
        for b, c in row.items():
            counts[b] = get(b, 0) + c
    return counts


def merge_set(rows: list[str]) -> set[str]:
    return union_capped(json.loads(raw) for raw in rows)


def union_capped(lists: Iterable[list[str]]) -> set[str]:
    """The union of ``lists`` in order, stopping at ``MAX_USERS`` as ``Aggregates.merge`` does."""
    out: set[str] = set()
    for items in lists:
        if len(out) + len(items) <= MAX_USERS:  # cannot reach the cap: add them all in C
            out.update(items)
            continue
        for x in items:
            if len(out) >= MAX_USERS:
                return out
            out.add(x)
    return out


def merge_list(rows: list[str]) -> list[str]:
    out: list[str] = []
    for raw in rows:
        for x in json.loads(raw):
            if len(out) >= MAX_EXEMPLARS:
                return out
            if x not in out:
                out.append(x)
    return out


_MERGERS: dict[str, Callable[[list[str]], Any]] = {
    "hist": merge_hist,
    "set": merge_set,
    "list": merge_list,
}
