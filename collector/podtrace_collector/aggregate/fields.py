"""How aggregate fields merge, declared once on each field, and the declaration of a stored map.

A stats class is a dataclass whose fields are made with the constructors below; each records its
*merge* in the field's metadata.  ``merge_fields`` merges two objects by those declarations, and
the stores derive their columns from them (``store/_schema.py``, ``store/clickhouse.py``):

========  ==========================================================
merge     two values of one key combine as
========  ==========================================================
sum       ``a + b``
max       ``max(a, b)``
min0      the smallest non-zero (0 means "none yet")
first     the first non-empty string (the values agree in practice)
hist      histogram counts added bin by bin
set       union, capped at ``MAX_ITEMS`` (a count past it is a lower bound)
list      the ``MAX_LIST`` smallest distinct items, sorted
========  ==========================================================

Every merge is commutative and associative, so the result does not depend on the order in which
minutes, writes or gateways are merged: a window read from one gateway's minutes equals the
same window read from a fleet's (a ``list`` keeps the smallest items, a sample of the trace ids
that is the same whoever merged them, rather than the first ones, which depend on who saw what
first).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from podtrace_collector.aggregate.histogram import Histogram

MERGES = ("sum", "max", "min0", "first", "hist", "set", "list")
HEAVY = frozenset({"hist", "set", "list"})  # merged item by item, loaded only when asked for
# Distinct values (enduser.id, pods) kept per set; beyond it a count is a lower bound.
MAX_ITEMS = 10_000
# Items (exemplar trace ids) kept per list: the smallest ones.
MAX_LIST = 10


def summed() -> Any:
    return dataclasses.field(default=0, metadata={"merge": "sum"})


def smallest_nonzero() -> Any:
    return dataclasses.field(default=0, metadata={"merge": "min0"})


def largest() -> Any:
    return dataclasses.field(default=0, metadata={"merge": "max"})


def first() -> Any:
    return dataclasses.field(default="", metadata={"merge": "first"})


def histogram() -> Any:
    return dataclasses.field(default_factory=Histogram, metadata={"merge": "hist"})


def capped_set() -> Any:
    return dataclasses.field(default_factory=set, metadata={"merge": "set"})


def capped_list() -> Any:
    return dataclasses.field(default_factory=list, metadata={"merge": "list"})


_MERGES_OF: dict[type, tuple[tuple[str, str], ...]] = {}


def merges_of(cls: type) -> tuple[tuple[str, str], ...]:
    """``(field name, merge)`` of every field of a stats class, in declaration order."""
    found = _MERGES_OF.get(cls)
    if found is None:
        found = tuple((f.name, f.metadata["merge"]) for f in dataclasses.fields(cls))
        for name, merge in found:
            if merge not in MERGES:
                raise TypeError(f"{cls.__name__}.{name}: unknown merge {merge!r}")
        _MERGES_OF[cls] = found
    return found


def merge_fields(mine: Any, other: Any) -> None:
    """Merge ``other`` into ``mine`` (objects of one stats class) by the declared merges."""
    for name, merge in merges_of(type(mine)):
        theirs = getattr(other, name)
        if merge == "sum":
            setattr(mine, name, getattr(mine, name) + theirs)
        elif merge == "hist":
            getattr(mine, name).merge(theirs)
        elif merge == "min0":
            cur = getattr(mine, name)
            if theirs and (not cur or theirs < cur):
                setattr(mine, name, theirs)
        elif merge == "max":
            if theirs > getattr(mine, name):
                setattr(mine, name, theirs)
        elif merge == "first":
            if not getattr(mine, name):
                setattr(mine, name, theirs)
        elif merge == "set":
            union_capped(getattr(mine, name), theirs)
        else:  # "list"
            setattr(mine, name, smallest_capped(getattr(mine, name), theirs))


def union_capped(mine: set[str], theirs: Iterable[str]) -> None:
    """Add ``theirs`` to ``mine`` in order until ``MAX_ITEMS``."""
    items = theirs if isinstance(theirs, set | frozenset | list | tuple) else list(theirs)
    if len(mine) + len(items) <= MAX_ITEMS:  # cannot reach the cap: add them all in C
        mine.update(items)
        return
    for x in items:
        if len(mine) >= MAX_ITEMS:
            return
        mine.add(x)


def smallest_capped(mine: Iterable[str], theirs: Iterable[str]) -> list[str]:
    """The ``MAX_LIST`` smallest distinct items of both, sorted."""
    return sorted({*mine, *theirs})[:MAX_LIST]


@dataclass(frozen=True, slots=True)
class MapSpec:
    """One map of ``Aggregates``, as every store keeps it.

    Attributes:
        name: the attribute of ``Aggregates`` (and the store's table name).
        keys: the names of the key's parts (the store's key columns), in order.
        stats: the stats class of the values.
        origin: the first two key parts are an origin workload and revision — or any
            workload-revision a read selects its keys by (the transit maps) —: a read can keep
            only some of their keys (``store.base.Window.origins``).
        detail: the first two key parts are a workload and revision whose histograms, sets and
            lists a read can skip (``store.base.Window.details``), keeping only counters.
    """

    name: str
    keys: tuple[str, ...]
    stats: type
    origin: bool = False
    detail: bool = False

    @property
    def merges(self) -> tuple[tuple[str, str], ...]:
        return merges_of(self.stats)
