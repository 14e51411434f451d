"""Hand-built per-minute ``Aggregates`` for the query-layer tests.

    from tests.collector.query.aggbuilder import T0, Buckets, shop

``Buckets`` keeps one ``Aggregates`` per minute and answers ``read(plan)`` as a ``Store`` does
(through a ``MemoryStore`` holding its minutes), recording every window read so tests can bound
them.  ``shop()`` builds the scenario the tests share: a bad rollout of ``shop/cart`` at minute
60 (+15 s).  ``blast``, ``rollouts_of``, ``workloads_of`` and ``graph_of`` run a query the way the
API does: plan, one snapshot read, answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from podtrace_collector import query
from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import (
    Aggregates,
    Count,
    EdgeStats,
    EntryImpact,
    EntryLatencyImpact,
    EntryTotal,
    Impact,
    LatencyImpact,
    OriginStats,
    RevisionStats,
    TransitStats,
    WorkloadRev,
)
from podtrace_collector.aggregate.window import P, Registry, Snapshot
from podtrace_collector.store.base import Store, read_windows
from podtrace_collector.store.memory import MemoryStore

T0 = 1_764_000_000  # a minute-aligned Unix time: 2025-11-24T16:00:00Z
MIN = 60

CART, CHECKOUT, FRONTEND, SEARCH = "shop/cart", "shop/checkout", "shop/frontend", "shop/search"
OLD, NEW = "5c4b3a291", "7d9f8c6b5"
ROLLOUT_S = T0 + 60 * MIN + 15  # NEW's first span
NOW = T0 + 90 * MIN


class Buckets:
    """Per-minute aggregates with a Store-like reader; ``reads`` records every window read."""

    def __init__(self) -> None:
        self.buckets: dict[int, Aggregates] = {}
        self.reads: list[tuple[float | None, float | None]] = []

    def at(self, t_s: float) -> Aggregates:
        minute = int(t_s // MIN * MIN)
        return self.buckets.setdefault(minute, Aggregates())

    def read(self, plan: Callable[[Registry], P]) -> Snapshot[P]:
        store = MemoryStore()
        store.write(self.buckets)
        snapshot = store.read(plan)
        self.reads.extend((w.start_s, w.end_s) for w in snapshot.plan.windows)
        return snapshot

    def revisions(self) -> dict[WorkloadRev, RevisionStats]:
        return self.read(lambda _: query.WorkloadsPlan(None, None)).registry

    def requests(
        self,
        t_s: float,
        workload: str,
        rev: str,
        n: int,
        *,
        errors: int = 0,
        origin_errors: int = 0,
        latency_ms: float = 10.0,
        self_ms: float = 4.0,
        own_ms: float | None = None,
        version: str = "",
        service: str | None = None,
        kind: str = "Deployment",
        pods: Iterable[str] = (),
    ) -> RevisionStats:
        """``n`` requests of ``workload@rev`` at ``t_s`` (first/last seen follow).

        Self times spread over ``self_ms`` x 0.9, 0.95, 1, 1.05, 1.1, as real ones do: constant
        ones would all tie, and a test over ties alone cannot decide.  Own times spread the same
        way over ``own_ms`` (default: ``self_ms``, no transit).
        """
        st = self.at(t_s).revisions.setdefault((workload, rev), RevisionStats())
        st.kind, st.version = kind, version
        st.service = service if service is not None else workload.split("/", 1)[1]
        t_ns = int(t_s * 1e9)
        st.first_seen_ns = min(st.first_seen_ns or t_ns, t_ns)
        st.last_seen_ns = max(st.last_seen_ns, t_ns)
        st.pods |= set(pods) or {f"{workload.split('/')[1]}-{rev}-abcde"}
        st.requests += n
        st.errors += errors
        st.origin_errors += origin_errors
        st.latency.add(latency_ms, n)
        _spread(st.self_time, self_ms, n)
        _spread(st.own_time, self_ms if own_ms is None else own_ms, n)
        return st

    def transit(
        self,
        t_s: float,
        caller: str,
        callee: WorkloadRev,
        n: int,
        ms: float,
        *,
        caller_rev: str = "f1",
    ) -> None:
        """``n`` requests of ``callee`` under ``caller``'s CLIENT spans, with transit ``ms``
        (in the caller's total too, and the caller among the callee's callers)."""
        agg = self.at(t_s)
        agg.revisions.setdefault(callee, RevisionStats()).callers.add(caller)
        for stats in (
            agg.transit.setdefault((*callee, caller), TransitStats()),
            agg.transit_out.setdefault((caller, caller_rev), TransitStats()),
        ):
            stats.requests += n
            _spread(stats.transit, ms, n)

    def impact(self, t_s: float, origin: WorkloadRev, affected: str, n: int, hops: int) -> None:
        self.at(t_s).impacts.setdefault((*origin, affected), Impact()).merge(Impact(n, hops))

    def entry(
        self,
        t_s: float,
        origin: WorkloadRev,
        workload: str,
        op: str,
        n: int,
        hops: int,
        users: Iterable[str] = (),
    ) -> None:
        key = (*origin, workload, op)
        imp = EntryImpact(n, hops, set(users))
        self.at(t_s).entry_impacts.setdefault(key, EntryImpact()).merge(imp)
        self.origin(t_s, origin, users=users)

    def entry_total(
        self, t_s: float, workload: str, op: str, n: int, *, with_user: int | None = None
    ) -> None:
        total = self.at(t_s).entry_totals.setdefault((workload, op), EntryTotal())
        total.requests += n
        total.with_user += n if with_user is None else with_user

    def latency(
        self,
        t_s: float,
        origin: WorkloadRev,
        workload: str,
        shares_ms: Iterable[float],
        *,
        hops: int,
        latency_ms: float = 50.0,
        op: str | None = None,
        users: Iterable[str] = (),
    ) -> None:
        """Requests of ``workload`` (entry requests of ``op`` when given) with ``origin`` on
        their critical path: one exposed request per share, each lasting ``latency_ms``."""
        imp = EntryLatencyImpact(users=set(users)) if op is not None else LatencyImpact()
        for share in shares_ms:
            imp.exposed_requests += 1
            imp.shares.add(share)
            imp.latency.add(latency_ms)
        imp.nearest = hops + 1
        if op is None:
            self.at(t_s).latency_impacts.setdefault((*origin, workload), LatencyImpact()).merge(imp)
        else:
            key = (*origin, workload, op)
            self.at(t_s).entry_latency_impacts.setdefault(key, EntryLatencyImpact()).merge(imp)

    def absorbed(self, t_s: float, origin: WorkloadRev, workload: str, n: int) -> None:
        self.at(t_s).absorbed.setdefault((*origin, workload), Count()).requests += n

    def origin(
        self,
        t_s: float,
        origin: WorkloadRev,
        *,
        traces: int = 0,
        max_hops: int = 0,
        users: Iterable[str] = (),
        exemplars: Iterable[str] = (),
    ) -> None:
        stats = OriginStats(traces, max_hops, set(users), list(exemplars))
        self.at(t_s).origins.setdefault(origin, OriginStats()).merge(stats)

    def edge(
        self, t_s: float, caller: str, callee: str, calls: int, errors: int = 0, ms: float = 5.0
    ) -> None:
        edge = EdgeStats(calls, errors)
        edge.latency.add(ms, calls)
        self.at(t_s).edges.setdefault((caller, callee), EdgeStats()).merge(edge)


def _spread(h: Histogram, ms: float, n: int) -> None:
    for i, factor in enumerate((0.9, 0.95, 1.0, 1.05, 1.1)):
        if count := n // 5 + (i < n % 5):
            h.add(ms * factor, count)


def shop(*, canary: bool) -> Buckets:
    """90 minutes of a shop; ``cart`` rolls out NEW at minute 60 (+15 s) and it fails.

    Per minute: frontend 50 requests (entry ``POST /checkout`` 30, ``GET /cart`` 20), checkout 30,
    search 10; cart OLD 10 healthy requests until minute 60 (and after it too when ``canary``),
    cart NEW from minute 60: 20 requests, 5 errors, 4 origins, affecting checkout (2/min, 1 hop),
    search (1/min, 1 hop) and frontend (3/min, 2 hops); entry points ``GET /cart`` (2/min, 1 hop)
    and ``POST /checkout`` (1/min, 2 hops, users u0..u6); absorbed by checkout (2/min) and
    frontend (1/min); 2 affected traces a minute.  Checkout's own origins affect frontend too.
    """
    b = Buckets()
    new = (CART, NEW)
    for m in range(90):
        t = T0 + m * MIN + (15 if m == 60 else 30)
        b.requests(t, FRONTEND, "f1", 50, errors=3, version="2.0.0", latency_ms=40.0)
        b.requests(t, CHECKOUT, "c1", 30, errors=2, origin_errors=1, version="3.1.0")
        b.requests(t, SEARCH, "s1", 10, version="1.0.0")
        b.entry_total(t, FRONTEND, "POST /checkout", 30)
        b.entry_total(t, FRONTEND, "GET /cart", 20)
        b.edge(t, FRONTEND, CHECKOUT, 30, errors=2, ms=20.0)
        b.edge(t, CHECKOUT, CART, 10)
        b.impact(t, (CHECKOUT, "c1"), FRONTEND, 1, 1)
        if m < 60 or canary:
            b.requests(t, CART, OLD, 10, version="1.3.0")
        if m < 60:
            continue
        b.requests(t, CART, NEW, 20, errors=5, origin_errors=4, version="1.4.0", self_ms=9.0)
        b.impact(t, new, CHECKOUT, 2, 1)
        b.impact(t, new, SEARCH, 1, 1)
        b.impact(t, new, FRONTEND, 3, 2)
        b.entry(t, new, FRONTEND, "GET /cart", 2, 1)
        b.entry(t, new, FRONTEND, "POST /checkout", 1, 2, users=[f"u{m % 7}"])
        b.absorbed(t, new, CHECKOUT, 2)
        b.absorbed(t, new, FRONTEND, 1)
        b.origin(t, new, traces=2, max_hops=2, exemplars=[f"{m:032x}"])
    return b


Reader = Store | Buckets


def blast(store: Reader, **params: Any) -> dict[str, Any]:
    """``GET /api/v1/blast-radius`` as the API runs it: plan, one snapshot, report."""
    now_s = params.pop("now_s", NOW)
    return query.blast_report(
        store.read(lambda reg: query.plan_blast_radius(reg, now_s=now_s, **params))
    )


def rollouts_of(store: Reader, **params: Any) -> list[dict[str, Any]]:
    """``GET /api/v1/rollouts``'s list."""
    now_s = params.pop("now_s", NOW)
    snapshot = store.read(lambda reg: query.plan_rollouts(reg, now_s=now_s, **params))
    rows: list[dict[str, Any]] = query.rollouts(snapshot)["rollouts"]
    return rows


def workloads_of(
    store: Reader, since_s: float | None = None, until_s: float | None = None
) -> list[dict[str, Any]]:
    """``GET /api/v1/workloads``'s list."""
    rows: list[dict[str, Any]] = query.workloads(
        store.read(lambda _: query.WorkloadsPlan(since_s, until_s))
    )["workloads"]
    return rows


def graph_of(
    store: Reader, since_s: float | None = None, until_s: float | None = None
) -> dict[str, Any]:
    """``GET /api/v1/graph``."""
    if isinstance(store, Buckets):
        (window,) = store.read(lambda _: _GraphPlan(since_s, until_s)).windows
    else:
        (window,) = read_windows(store, query.graph_window(since_s, until_s))
    return query.graph(window)


class _GraphPlan:
    def __init__(self, since_s: float | None, until_s: float | None) -> None:
        self.windows = [query.graph_window(since_s, until_s)]
