"""What a store read asks for and what it returns: windows, plans and snapshots.

The contract between the query layer, which plans reads as pure functions of the registry, and
the stores, which answer a plan from one snapshot (``store.base.Store.read``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from podtrace_collector.aggregate.stats import Aggregates, RevisionStats, WorkloadRev

Registry = Mapping[WorkloadRev, RevisionStats]
"""Every retained workload-revision: kind, service, version, first/last seen, pods and its
request counts over everything retained; histograms empty."""


@dataclass(frozen=True, slots=True)
class Window:
    """One window of a read and how much of it to load.

    Attributes:
        start_s, end_s: the minutes overlapping ``[start_s, end_s)`` (Unix seconds; ``None`` is
            unbounded).
        maps: the maps of ``Aggregates`` to load (names); ``None`` loads every map.
        origins: for the maps keyed by an origin (``MapSpec.origin``; the transit maps too, by
            their callee or caller), only these workload-revisions' keys; ``None`` keeps all.
        details: for maps with ``MapSpec.detail`` (the revisions), histograms, sets and lists of
            these workload-revisions only (the others keep their counters, with empty
            histograms and sets); ``None`` loads them for every key.
    """

    start_s: float | None = None
    end_s: float | None = None
    maps: frozenset[str] | None = None
    origins: frozenset[WorkloadRev] | None = None
    details: frozenset[WorkloadRev] | None = None


class Plan(Protocol):
    """What a read plan tells the store: the windows to read."""

    @property
    def windows(self) -> Sequence[Window]: ...


P = TypeVar("P", bound=Plan)


@dataclass(frozen=True, slots=True)
class Reads:
    """A plan that is just a list of windows (it does not depend on the registry)."""

    windows: Sequence[Window] = field(default_factory=lambda: [Window()])


@dataclass(frozen=True, slots=True)
class Snapshot(Generic[P]):
    """The registry, the plan made from it, and one ``Aggregates`` per plan window (in order)."""

    registry: dict[WorkloadRev, RevisionStats]
    plan: P
    windows: list[Aggregates]
