"""Hand-built ``Aggregates`` with every field filled, for the store and API tests, and reads."""

from __future__ import annotations

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
from podtrace_collector.aggregate.window import Reads, Window
from podtrace_collector.store.base import Store, read_windows

T0 = 1_795_000_000 - 1_795_000_000 % 60  # a minute boundary in 2026 (Unix s)


def hist(*values_ms: float) -> Histogram:
    h = Histogram()
    for v in values_ms:
        h.add(v)
    return h


def sample(i: int = 0, *, revision: str = "abc12", bucket_s: int = T0) -> Aggregates:
    """One minute of a small shop: frontend → cart (failing) → db, every map non-empty."""
    ns = bucket_s * 1_000_000_000
    a = Aggregates()
    a.revisions[("shop/cart", revision)] = RevisionStats(
        kind="Deployment",
        service="cart",
        version="1.4.0",
        first_seen_ns=ns + 1_000 + i,
        last_seen_ns=ns + 50_000_000_000 + i,
        pods={f"cart-{revision}-pod{i % 3}"},
        requests=100 + i,
        errors=20 + i,
        origin_errors=15 + i,
        latency=hist(10, 12, 80 + i, 140),
        self_time=hist(4, 4, 50 + i),
        own_time=hist(3, 4, 45 + i),
        callers={"shop/frontend"},
    )
    a.revisions[("shop/frontend", "fe001")] = RevisionStats(
        kind="Deployment",
        service="frontend",
        version="2.0",
        first_seen_ns=ns + 5,
        last_seen_ns=ns + 59_000_000_000,
        pods={"frontend-fe001-aaaaa"},
        requests=300,
        errors=10 + i,
        latency=hist(30, 31, 200),
        self_time=hist(3, 3),
    )
    a.impacts[("shop/cart", revision, "shop/frontend")] = Impact(10 + i, 1 + i % 2)
    a.entry_impacts[("shop/cart", revision, "shop/frontend", "POST /checkout")] = EntryImpact(
        8 + i, 1, {f"user{i}", "alice"}
    )
    a.absorbed[("shop/cart", revision, "shop/frontend")] = Count(3 + i)
    a.origins[("shop/cart", revision)] = OriginStats(
        affected_traces=8 + i, max_hops=1 + i % 3, users={f"user{i}"}, exemplars=[f"{i:032x}"]
    )
    a.latency_impacts[("shop/cart", revision, "shop/frontend")] = LatencyImpact(
        40 + i, hist(5, 6, 70 + i), hist(30, 31, 200 + i), 2 + i % 2
    )
    a.entry_latency_impacts[("shop/cart", revision, "shop/frontend", "POST /checkout")] = (
        EntryLatencyImpact(30 + i, hist(5, 7 + i), hist(30, 250), 2, {f"user{i}", "bob"})
    )
    a.entry_totals[("shop/frontend", "POST /checkout")] = EntryTotal(300, 250 + i)
    a.edges[("shop/frontend", "shop/cart")] = EdgeStats(100 + i, 20 + i, hist(11, 13, 90))
    a.transit[("shop/cart", revision, "shop/frontend")] = TransitStats(100 + i, hist(1, 2, 5 + i))
    a.transit_out[("shop/frontend", "fe001")] = TransitStats(150 + i, hist(1, 2, 3, 5 + i))
    a.transit_out[("shop/cart", revision)] = TransitStats(7 + i, hist(2, 4 + i))  # cart calls too
    a.count(300 + i, 1_200 + i)
    return a


def merged(*aggs: Aggregates) -> Aggregates:
    out = Aggregates()
    for a in aggs:
        out.merge(a)
    return out


def window(
    store: Store, start_s: float | None = None, end_s: float | None = None, **what: object
) -> Aggregates:
    """One window of ``store`` (``Window``'s ``maps``, ``origins``, ``details`` in ``what``)."""
    (agg,) = read_windows(store, Window(start_s, end_s, **what))  # type: ignore[arg-type]
    return agg


def registry(store: Store) -> dict[WorkloadRev, RevisionStats]:
    """The store's registry."""
    return store.read(lambda _: Reads([])).registry
