"""Mergeable aggregates: what the analysis of traces leaves behind, per time bucket.

The contract between the analysis core (which fills an ``Aggregates`` from analysed traces), the
store (which keeps one ``Aggregates`` per minute and merges them over a query window) and the
query layer (which turns a merged ``Aggregates`` into a blast-radius report).  Every field merges
by addition (counts, histograms), minimum (hops), maximum, union (capped sets) or a capped
concatenation (exemplars), so a window split in two and merged equals the window analysed at once
(up to the documented caps).

Keys are plain strings: a workload is ``"namespace/name"``, a revision the pod-template-hash
(or the version / ``"unknown"`` for non-Kubernetes services).  Time stamps are Unix nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from podtrace_collector.aggregate.histogram import Histogram

# Distinct enduser.id values kept per key; beyond it the count is a lower bound (documented).
MAX_USERS = 10_000
# Exemplar trace ids kept per origin revision.
MAX_EXEMPLARS = 10

Workload = str
Revision = str
WorkloadRev = tuple[Workload, Revision]


@dataclass(slots=True)
class RevisionStats:
    """A workload at one revision: identity, registry data and request counts."""

    kind: str = ""  # "Deployment", "StatefulSet", "DaemonSet", "Service" …
    service: str = ""
    version: str = ""
    first_seen_ns: int = 0
    last_seen_ns: int = 0
    pods: set[str] = field(default_factory=set)
    requests: int = 0
    errors: int = 0
    origin_errors: int = 0
    latency: Histogram = field(default_factory=Histogram)
    self_time: Histogram = field(default_factory=Histogram)

    def merge(self, o: RevisionStats) -> None:
        self.kind = self.kind or o.kind
        self.service = self.service or o.service
        self.version = self.version or o.version
        if o.first_seen_ns and (not self.first_seen_ns or o.first_seen_ns < self.first_seen_ns):
            self.first_seen_ns = o.first_seen_ns
        self.last_seen_ns = max(self.last_seen_ns, o.last_seen_ns)
        self.pods |= o.pods
        self.requests += o.requests
        self.errors += o.errors
        self.origin_errors += o.origin_errors
        self.latency.merge(o.latency)
        self.self_time.merge(o.self_time)


@dataclass(slots=True)
class Impact:
    """Failed requests of one workload affected by origins in one workload-revision."""

    affected_requests: int = 0
    min_hops: int = 0  # 0 only while empty; a real impact is at least 1 hop away

    def merge(self, o: Impact) -> None:
        self.affected_requests += o.affected_requests
        if o.min_hops and (not self.min_hops or o.min_hops < self.min_hops):
            self.min_hops = o.min_hops


@dataclass(slots=True)
class EntryImpact:
    """Affected entry requests of one entry operation, by origins in one workload-revision."""

    affected_requests: int = 0
    min_hops: int = 0
    users: set[str] = field(default_factory=set)

    def merge(self, o: EntryImpact) -> None:
        self.affected_requests += o.affected_requests
        if o.min_hops and (not self.min_hops or o.min_hops < self.min_hops):
            self.min_hops = o.min_hops
        _union_capped(self.users, o.users)


@dataclass(slots=True)
class OriginStats:
    """Per origin workload-revision: traces whose failure reached an entry point, and more."""

    affected_traces: int = 0
    max_hops: int = 0
    users: set[str] = field(default_factory=set)
    exemplars: list[str] = field(default_factory=list)  # hex trace ids

    def merge(self, o: OriginStats) -> None:
        self.affected_traces += o.affected_traces
        self.max_hops = max(self.max_hops, o.max_hops)
        _union_capped(self.users, o.users)
        for t in o.exemplars:
            if len(self.exemplars) >= MAX_EXEMPLARS:
                break
            if t not in self.exemplars:
                self.exemplars.append(t)


@dataclass(slots=True)
class EdgeStats:
    """Calls from one workload to another (a request whose parent request is in the caller)."""

    calls: int = 0
    errors: int = 0
    latency: Histogram = field(default_factory=Histogram)

    def merge(self, o: EdgeStats) -> None:
        self.calls += o.calls
        self.errors += o.errors
        self.latency.merge(o.latency)


@dataclass(slots=True)
class Aggregates:
    """Everything the queries need, for one time bucket or a merged window."""

    revisions: dict[WorkloadRev, RevisionStats] = field(default_factory=dict)
    # (origin workload, origin revision, affected workload) -> Impact
    impacts: dict[tuple[Workload, Revision, Workload], Impact] = field(default_factory=dict)
    # (origin workload, origin revision, entry workload, entry operation) -> EntryImpact
    entry_impacts: dict[tuple[Workload, Revision, Workload, str], EntryImpact] = field(
        default_factory=dict
    )
    # (origin workload, origin revision, absorbing workload) -> absorbed requests
    absorbed: dict[tuple[Workload, Revision, Workload], int] = field(default_factory=dict)
    origins: dict[WorkloadRev, OriginStats] = field(default_factory=dict)
    # (entry workload, entry operation) -> all entry requests of that operation
    entry_totals: dict[tuple[Workload, str], int] = field(default_factory=dict)
    # (caller workload, callee workload) -> EdgeStats
    edges: dict[tuple[Workload, Workload], EdgeStats] = field(default_factory=dict)
    traces: int = 0
    spans: int = 0

    def merge(self, o: Aggregates) -> None:
        _merge_map(self.revisions, o.revisions, RevisionStats)
        _merge_map(self.impacts, o.impacts, Impact)
        _merge_map(self.entry_impacts, o.entry_impacts, EntryImpact)
        for k, n in o.absorbed.items():
            self.absorbed[k] = self.absorbed.get(k, 0) + n
        _merge_map(self.origins, o.origins, OriginStats)
        for k2, n in o.entry_totals.items():
            self.entry_totals[k2] = self.entry_totals.get(k2, 0) + n
        _merge_map(self.edges, o.edges, EdgeStats)
        self.traces += o.traces
        self.spans += o.spans

    def requests_by_workload(self) -> dict[Workload, int]:
        """All requests of each workload, over every revision."""
        totals: dict[Workload, int] = {}
        for (w, _), st in self.revisions.items():
            totals[w] = totals.get(w, 0) + st.requests
        return totals


def _merge_map(mine: dict, theirs: dict, factory: type) -> None:  # type: ignore[type-arg]
    for k, v in theirs.items():
        cur = mine.get(k)
        if cur is None:
            cur = mine[k] = factory()
        cur.merge(v)


def _union_capped(mine: set[str], theirs: set[str]) -> None:
    for u in theirs:
        if len(mine) >= MAX_USERS:
            return
        mine.add(u)
