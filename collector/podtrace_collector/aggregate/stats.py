"""Mergeable aggregates: what the analysis of traces leaves behind, per time bucket.

The contract between the analysis core (which fills an ``Aggregates`` from analysed traces), the
stores (which keep one ``Aggregates`` per minute and merge them over a query window) and the
query layer (which turns merged ``Aggregates`` into reports).  Every field declares how it
merges (``aggregate.fields``), so a window split in two and merged equals the window analysed at
once (up to the documented caps).  Every map of ``Aggregates`` is declared once in ``MAPS``; the
stores derive their tables from these declarations, so a new aggregate declared here is stored,
merged and read by every store.

Keys are plain strings: a workload is ``"namespace/name"``, a revision the pod-template-hash
(or the version / ``"unknown"`` for non-Kubernetes services).  Time stamps are Unix nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podtrace_collector.aggregate.fields import (
    MAX_ITEMS,
    MAX_LIST,
    MapSpec,
    capped_list,
    capped_set,
    first,
    histogram,
    largest,
    merge_fields,
    smallest_nonzero,
    summed,
)
from podtrace_collector.aggregate.histogram import Histogram

MAX_USERS = MAX_ITEMS  # distinct enduser.id values kept per key
MAX_EXEMPLARS = MAX_LIST  # exemplar trace ids kept per origin revision

Workload = str
Revision = str
WorkloadRev = tuple[Workload, Revision]


@dataclass(slots=True)
class RevisionStats:
    """A workload at one revision: identity, registry data and request counts."""

    kind: str = first()  # "Deployment", "StatefulSet", "DaemonSet", "Service" …
    service: str = first()
    version: str = first()
    first_seen_ns: int = smallest_nonzero()
    last_seen_ns: int = largest()
    pods: set[str] = capped_set()
    requests: int = summed()
    errors: int = summed()
    origin_errors: int = summed()
    latency: Histogram = histogram()
    self_time: Histogram = histogram()
    own_time: Histogram = histogram()  # server-side self time: self time without transit
    callers: set[str] = capped_set()  # workloads whose CLIENT spans called it

    def merge(self, other: RevisionStats) -> None:
        merge_fields(self, other)

    def callers_add(self, caller: str) -> None:
        """Note a caller workload (up to ``MAX_ITEMS``)."""
        callers = self.callers
        if caller not in callers and len(callers) < MAX_ITEMS:
            callers.add(caller)


@dataclass(slots=True)
class Impact:
    """Failed requests of one workload affected by origins in one workload-revision."""

    affected_requests: int = summed()
    min_hops: int = smallest_nonzero()  # a real impact is at least 1 hop away

    def merge(self, other: Impact) -> None:
        merge_fields(self, other)


@dataclass(slots=True)
class EntryImpact:
    """Affected entry requests of one entry operation, by origins in one workload-revision."""

    affected_requests: int = summed()
    min_hops: int = smallest_nonzero()
    users: set[str] = capped_set()

    def merge(self, other: EntryImpact) -> None:
        merge_fields(self, other)


@dataclass(slots=True)
class LatencyImpact:
    """Requests of one workload with one workload-revision on their critical path (SPEC §5).

    ``shares``: that workload-revision's share ``cp(X, W@R)`` of each exposed request (ms);
    ``latency``: the exposed requests' own durations (ms).  ``nearest`` is the smallest hop
    distance plus one, so that the merge's "0: none yet" leaves hops 0 (an entry point's own
    workload) recordable: read it through ``hops``.
    """

    exposed_requests: int = summed()
    shares: Histogram = histogram()
    latency: Histogram = histogram()
    nearest: int = smallest_nonzero()

    @property
    def hops(self) -> int:
        """The smallest hop distance from an exposed request to the workload-revision."""
        return max(self.nearest - 1, 0)

    def merge(self, other: LatencyImpact) -> None:
        merge_fields(self, other)


@dataclass(slots=True)
class EntryLatencyImpact(LatencyImpact):
    """``LatencyImpact`` on the entry requests of one entry operation, with their users."""

    users: set[str] = capped_set()


@dataclass(slots=True)
class OriginStats:
    """Per origin workload-revision: traces whose failure reached an entry point, and more."""

    affected_traces: int = summed()
    max_hops: int = largest()
    users: set[str] = capped_set()
    exemplars: list[str] = capped_list()  # hex trace ids

    def merge(self, other: OriginStats) -> None:
        merge_fields(self, other)


@dataclass(slots=True)
class EdgeStats:
    """Calls from one workload to another (a request whose parent request is in the caller)."""

    calls: int = summed()
    errors: int = summed()
    latency: Histogram = histogram()

    def merge(self, other: EdgeStats) -> None:
        merge_fields(self, other)


@dataclass(slots=True)
class TransitStats:
    """Transit of requests under a caller workload's CLIENT spans: to one workload-revision
    (``transit``), or to every workload it calls (``transit_out``).

    Transit is how long the caller's CLIENT span waited minus the request's own duration: the
    network and queues to and from the callee's pods, and the caller's own scheduling.
    """

    requests: int = summed()
    transit: Histogram = histogram()

    def merge(self, other: TransitStats) -> None:
        merge_fields(self, other)


@dataclass(slots=True)
class Count:
    """A plain count of requests (absorbed failures, entry requests of an operation)."""

    requests: int = summed()

    def merge(self, other: Count) -> None:
        self.requests += other.requests


@dataclass(slots=True)
class EntryTotal:
    """All entry requests of one entry operation, and how many carried an ``enduser.id``."""

    requests: int = summed()
    with_user: int = summed()

    def merge(self, other: EntryTotal) -> None:
        self.requests += other.requests
        self.with_user += other.with_user


@dataclass(slots=True)
class Totals:
    """Traces and spans analysed (one row per bucket: the map's only key is ``()``)."""

    traces: int = summed()
    spans: int = summed()

    def merge(self, other: Totals) -> None:
        self.traces += other.traces
        self.spans += other.spans


_ORIGIN = ("origin_workload", "origin_revision")

MAPS: tuple[MapSpec, ...] = (
    MapSpec("revisions", ("workload", "revision"), RevisionStats, detail=True),
    MapSpec("impacts", (*_ORIGIN, "workload"), Impact, origin=True),
    MapSpec("entry_impacts", (*_ORIGIN, "workload", "operation"), EntryImpact, origin=True),
    MapSpec("absorbed", (*_ORIGIN, "workload"), Count, origin=True),
    MapSpec("origins", ("workload", "revision"), OriginStats, origin=True),
    MapSpec("latency_impacts", (*_ORIGIN, "workload"), LatencyImpact, origin=True),
    MapSpec(
        "entry_latency_impacts",
        (*_ORIGIN, "workload", "operation"),
        EntryLatencyImpact,
        origin=True,
    ),
    MapSpec("entry_totals", ("workload", "operation"), EntryTotal),
    MapSpec("edges", ("caller", "callee"), EdgeStats),
    # Keyed by a workload-revision (the callee's, the caller's) that a report selects them by.
    MapSpec("transit", ("workload", "revision", "caller"), TransitStats, origin=True),
    MapSpec("transit_out", ("caller", "caller_revision"), TransitStats, origin=True),
    MapSpec("totals", (), Totals),
)
"""Every map of ``Aggregates``: its key parts and stats class (``aggregate.fields.MapSpec``)."""


@dataclass(slots=True)
class Aggregates:
    """Everything the queries need, for one time bucket or a merged window (maps: ``MAPS``)."""

    revisions: dict[WorkloadRev, RevisionStats] = field(default_factory=dict)
    # (origin workload, origin revision, affected workload) -> Impact
    impacts: dict[tuple[Workload, Revision, Workload], Impact] = field(default_factory=dict)
    # (origin workload, origin revision, entry workload, entry operation) -> EntryImpact
    entry_impacts: dict[tuple[Workload, Revision, Workload, str], EntryImpact] = field(
        default_factory=dict
    )
    # (origin workload, origin revision, absorbing workload) -> absorbed requests
    absorbed: dict[tuple[Workload, Revision, Workload], Count] = field(default_factory=dict)
    origins: dict[WorkloadRev, OriginStats] = field(default_factory=dict)
    # (origin workload, origin revision, workload) -> its requests with the origin on their
    # critical path (the origin's own workload is not kept: its own requests are the verdict's)
    latency_impacts: dict[tuple[Workload, Revision, Workload], LatencyImpact] = field(
        default_factory=dict
    )
    # (origin workload, origin revision, entry workload, entry operation) -> likewise
    entry_latency_impacts: dict[tuple[Workload, Revision, Workload, str], EntryLatencyImpact] = (
        field(default_factory=dict)
    )
    # (entry workload, entry operation) -> all entry requests of that operation
    entry_totals: dict[tuple[Workload, str], EntryTotal] = field(default_factory=dict)
    # (caller workload, callee workload) -> EdgeStats
    edges: dict[tuple[Workload, Workload], EdgeStats] = field(default_factory=dict)
    # (callee workload, callee revision, caller workload) -> TransitStats
    transit: dict[tuple[Workload, Revision, Workload], TransitStats] = field(default_factory=dict)
    # (caller workload, caller revision) -> its transit to every workload it calls
    transit_out: dict[WorkloadRev, TransitStats] = field(default_factory=dict)
    # () -> traces and spans analysed
    totals: dict[tuple[()], Totals] = field(default_factory=dict)

    @property
    def traces(self) -> int:
        """Traces analysed."""
        t = self.totals.get(())
        return t.traces if t else 0

    @property
    def spans(self) -> int:
        """Spans analysed."""
        t = self.totals.get(())
        return t.spans if t else 0

    def count(self, traces: int, spans: int) -> None:
        """Add analysed traces and spans."""
        t = self.totals.get(())
        if t is None:
            t = self.totals[()] = Totals()
        t.traces += traces
        t.spans += spans

    def merge(self, other: Aggregates) -> None:
        """Merge ``other`` into this one, map by map, key by key."""
        for spec in MAPS:
            mine: dict[Any, Any] = getattr(self, spec.name)
            for key, value in getattr(other, spec.name).items():
                cur = mine.get(key)
                if cur is None:
                    cur = mine[key] = spec.stats()
                cur.merge(value)

    def requests_by_workload(self) -> dict[Workload, int]:
        """All requests of each workload, over every revision."""
        totals: dict[Workload, int] = {}
        for (w, _), st in self.revisions.items():
            totals[w] = totals.get(w, 0) + st.requests
        return totals
