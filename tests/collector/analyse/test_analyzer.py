"""Tests for analyse.analyzer: traces into Aggregates, golden cases and Hypothesis properties."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector.aggregate.stats import (
    Aggregates,
    Count,
    EntryImpact,
    EntryTotal,
    Impact,
)
from podtrace_collector.analyse.analyzer import (
    Analyzer,
    add_trace,
    bucket_start_s,
    operation_of,
)
from podtrace_collector.analyse.requests import analyse_trace
from podtrace_collector.model import Resource, Span

from tests.collector.analyse.tracebuilder import (
    BASE_S,
    Trace,
    deployment,
    service,
    statefulset,
    summarize,
)

FE = deployment("shop", "frontend", "fe1", pod="aaaaa")
CHK = deployment("shop", "checkout", "chk1")
CART = deployment("shop", "cart", "cart1")
CART2 = deployment("shop", "cart", "cart2", version="2.0.0")


def checkout_trace(*, user: str = "alice", cart: Resource = CART, fail: bool = True) -> Trace:
    """frontend POST /checkout -> checkout -> cart, failing all the way up when ``fail``."""
    t = Trace()
    fe = t.server(FE, "fe", method="POST", route="/checkout", user=user, error=fail, dur_ms=30)
    chk = t.call(fe, CHK, "chk", error=fail, dur_ms=20)
    t.call(chk, cart, "cart", error=fail, dur_ms=10)
    return t


def test_chain_fills_every_field() -> None:
    """One failing chain: registry, impacts, entry impacts, origins, totals and edges."""
    t = checkout_trace()
    bucket, agg = summarize(t.spans)
    assert bucket == BASE_S
    assert (agg.traces, agg.spans) == (1, 5)
    fe = agg.revisions[("shop/frontend", "fe1")]
    assert (fe.kind, fe.service, fe.version, fe.pods) == (
        "Deployment",
        "frontend",
        "1.0.0",
        {"frontend-fe1-aaaaa"},
    )
    assert (fe.requests, fe.errors, fe.origin_errors) == (1, 1, 0)
    assert fe.first_seen_ns == BASE_S * 10**9 and fe.last_seen_ns == fe.first_seen_ns + 30 * 10**6
    cart = agg.revisions[("shop/cart", "cart1")]
    assert (cart.requests, cart.errors, cart.origin_errors, cart.latency.total) == (1, 1, 1, 1)
    assert agg.impacts == {
        ("shop/cart", "cart1", "shop/checkout"): Impact(1, 1),
        ("shop/cart", "cart1", "shop/frontend"): Impact(1, 2),
    }
    assert agg.entry_impacts == {
        ("shop/cart", "cart1", "shop/frontend", "POST /checkout"): EntryImpact(1, 2, {"alice"})
    }
    origin = agg.origins[("shop/cart", "cart1")]
    assert (origin.affected_traces, origin.max_hops, origin.users) == (1, 2, {"alice"})
    assert origin.exemplars == [t.trace_id.hex()]
    assert agg.entry_totals == {("shop/frontend", "POST /checkout"): EntryTotal(1, with_user=1)}
    assert set(agg.edges) == {("shop/frontend", "shop/checkout"), ("shop/checkout", "shop/cart")}
    assert agg.edges[("shop/checkout", "shop/cart")].errors == 1
    assert agg.absorbed == {}


def test_own_time_and_transit_per_caller() -> None:
    """Own time goes to the revision; transit to (caller workload, callee, revision)."""
    t = Trace()
    fe = t.server(FE, "fe", dur_ms=100)
    call = t.client(fe, "GET", start_ms=10, dur_ms=50)
    t.server(CART, "cart", parent=call, start_ms=20, dur_ms=30)  # 20 ms of transit
    _, agg = summarize(t.spans)
    cart = agg.revisions[("shop/cart", "cart1")]
    assert cart.own_time.total == cart.self_time.total == 1
    assert cart.own_time.quantile(0.5) == pytest.approx(30.0, rel=0.02)
    assert cart.self_time.quantile(0.5) == pytest.approx(50.0, rel=0.02)
    fe_stats = agg.revisions[("shop/frontend", "fe1")]
    assert fe_stats.own_time.quantile(0.5) == pytest.approx(50.0, rel=0.02)
    assert set(agg.transit) == {("shop/cart", "cart1", "shop/frontend")}  # no caller: no transit
    assert set(agg.transit_out) == {("shop/frontend", "fe1")}
    out = agg.transit_out[("shop/frontend", "fe1")]
    assert out == agg.transit[("shop/cart", "cart1", "shop/frontend")]
    assert (cart.callers, fe_stats.callers) == ({"shop/frontend"}, set())
    transit = agg.transit[("shop/cart", "cart1", "shop/frontend")]
    assert transit.requests == transit.transit.total == 1
    assert transit.transit.quantile(0.5) == pytest.approx(20.0, rel=0.02)


def test_contained_failure() -> None:
    """A failure absorbed by checkout: recorded as absorbed, no entry impact, no affected trace."""
    t = Trace()
    fe = t.server(FE, "fe", method="GET", route="/")
    chk = t.call(fe, CHK, "chk")
    t.call(chk, CART, "cart", error=True)
    _, agg = summarize(t.spans)
    assert agg.absorbed == {("shop/cart", "cart1", "shop/checkout"): Count(1)}
    assert agg.impacts == {} and agg.entry_impacts == {}
    origin = agg.origins[("shop/cart", "cart1")]
    assert (origin.affected_traces, origin.max_hops, len(origin.exemplars)) == (0, 0, 1)


def test_canary_keeps_revisions_apart() -> None:
    """Both cart revisions live: only the failing revision's origins carry the impacts."""
    agg = Aggregates()
    for t in (checkout_trace(cart=CART, fail=False), checkout_trace(cart=CART2, user="bob")):
        add_trace(agg, analyse_trace(t.spans))
    assert agg.revisions[("shop/cart", "cart1")].errors == 0
    assert agg.revisions[("shop/cart", "cart2")].origin_errors == 1
    assert agg.revisions[("shop/cart", "cart2")].version == "2.0.0"
    assert {k[:2] for k in agg.impacts} == {("shop/cart", "cart2")}
    assert agg.requests_by_workload()["shop/cart"] == 2
    assert agg.entry_totals == {("shop/frontend", "POST /checkout"): EntryTotal(2, with_user=2)}
    assert agg.edges[("shop/checkout", "shop/cart")].calls == 2


def test_self_call_is_not_an_affected_service() -> None:
    """cart -> cart(error): no impact on "another workload", but max hops and the entry count."""
    t = Trace()
    outer = t.server(CART, "outer", error=True, user="carol")
    t.call(outer, CART, "inner", error=True)
    _, agg = summarize(t.spans)
    assert agg.impacts == {}
    origin = agg.origins[("shop/cart", "cart1")]
    assert (origin.max_hops, origin.affected_traces, origin.users) == (1, 1, {"carol"})
    assert agg.entry_impacts[("shop/cart", "cart1", "shop/cart", "outer")].min_hops == 1
    edge = agg.edges[("shop/cart", "shop/cart")]
    assert (set(agg.edges), edge.calls, edge.errors) == ({("shop/cart", "shop/cart")}, 1, 1)


def test_origin_at_the_entry_point_affects_nothing() -> None:
    """A failure that starts at the entry point is an origin, not an affected request."""
    t = Trace()
    t.server(FE, "fe", error=True, user="dave")
    _, agg = summarize(t.spans)
    assert agg.revisions[("shop/frontend", "fe1")].origin_errors == 1
    origin = agg.origins[("shop/frontend", "fe1")]
    assert (origin.affected_traces, origin.max_hops, origin.users) == (0, 0, set())
    assert agg.entry_impacts == {}


def test_two_origins_count_for_both() -> None:
    """Attribution is not exclusive: the entry point counts for both origin workloads."""
    t = Trace()
    fe = t.server(FE, "fe", error=True)
    t.call(fe, CART, "cart", error=True)
    t.call(fe, statefulset("shop", "db", "db-1"), "db", error=True)
    _, agg = summarize(t.spans)
    assert agg.impacts[("shop/cart", "cart1", "shop/frontend")].affected_requests == 1
    assert agg.impacts[("shop/db", "db-1", "shop/frontend")].affected_requests == 1
    assert {k: o.affected_traces for k, o in agg.origins.items()} == {
        ("shop/cart", "cart1"): 1,
        ("shop/db", "db-1"): 1,
    }


def test_operation_names() -> None:
    """Operation: method + route (new or legacy method key), else the span name."""
    t = Trace()
    assert operation_of(t.server(FE, "GET", method="GET", route="/a")) == "GET /a"
    assert operation_of(t.server(FE, "x", attrs={"http.method": "PUT", "http.route": "/b"})) == (
        "PUT /b"
    )
    assert operation_of(t.server(FE, "span name", method="GET")) == "span name"


def test_bucket_is_the_minute_of_the_earliest_span() -> None:
    """Buckets are minute-aligned Unix seconds of the earliest span start."""
    assert bucket_start_s(BASE_S * 10**9 + 59 * 10**9 + 999) == BASE_S
    assert bucket_start_s((BASE_S + 60) * 10**9) == BASE_S + 60
    t = Trace()
    t.server(FE, "late", start_ms=61_000)
    t.server(FE, "early", start_ms=59_000)
    assert summarize(t.spans)[0] == BASE_S


class TestAnalyzer:
    """The TraceSink that accumulates per-bucket Aggregates for the store writer."""

    def test_accumulates_and_drains(self) -> None:
        """Traces land in their minute bucket; drain hands them over once and resets."""
        analyzer = Analyzer()
        analyzer.on_trace(checkout_trace().spans, late=False)
        later = Trace(base_s=BASE_S + 120)
        later.server(FE, "fe")
        analyzer.on_trace(later.spans, late=True)
        assert (analyzer.traces, analyzer.late_traces, analyzer.spans) == (2, 1, 6)
        drained = analyzer.drain()
        assert sorted(drained) == [BASE_S, BASE_S + 120]
        assert drained[BASE_S].traces == 1 and analyzer.pending_buckets == 0
        assert analyzer.drain() == {}

    def test_concurrent_feeding_and_draining_loses_nothing(self) -> None:
        """Threads feeding traces while another drains: every trace is in exactly one drain."""
        analyzer = Analyzer()
        traces = [checkout_trace(user=f"u{i}").spans for i in range(200)]
        drained: list[Aggregates] = []
        feeders = [
            threading.Thread(
                target=lambda part=part: [analyzer.on_trace(t, late=False) for t in part]
            )
            for part in (traces[:100], traces[100:])
        ]
        for f in feeders:
            f.start()
        while any(f.is_alive() for f in feeders):
            drained.extend(analyzer.drain().values())
        drained.extend(analyzer.drain().values())
        total = Aggregates()
        for agg in drained:
            total.merge(agg)
        assert total.traces == 200 and total.revisions[("shop/cart", "cart1")].errors == 200

    def test_bad_trace_is_counted_not_raised(self) -> None:
        """A trace the analysis cannot handle is skipped and counted."""
        analyzer = Analyzer()
        analyzer.on_trace([object()], late=False)  # type: ignore[list-item]
        assert (analyzer.failed_traces, analyzer.traces) == (1, 0)


# --- Hypothesis: properties of the pure core over arbitrary traces ---------------------------

RESOURCES = [FE, CHK, CART, CART2, service("legacy"), statefulset("shop", "db", "db-1")]
_ids = itertools.count(1)


@st.composite
def traces(draw: st.DrawFn, *, max_spans: int = 25) -> list[Span]:
    """A trace with arbitrary kinds, statuses, workloads and parent links (cycles included)."""
    n = draw(st.integers(1, max_spans))
    trace_id = next(_ids).to_bytes(16, "big")
    base = next(_ids) * 10**6
    ids = [next(_ids).to_bytes(8, "big") for _ in range(n)]
    spans = []
    for i in range(n):
        link = draw(st.integers(-2, n - 1))  # -1: root, -2: a parent that never arrived
        parent_id = b"" if link == -1 else b"\xff" * 8 if link == -2 else ids[link]
        start = base + draw(st.integers(0, 10**8))
        attrs = {"enduser.id": draw(st.sampled_from(["u1", "u2", "u3"]))}
        spans.append(
            Span(
                trace_id,
                ids[i],
                parent_id,
                f"op{draw(st.integers(0, 2))}",
                draw(st.sampled_from([0, 1, 2, 3, 4, 5, 42])),
                start,
                start + draw(st.integers(0, 10**8)),
                draw(st.sampled_from([0, 1, 2, 2])),
                attrs,
                draw(st.sampled_from(RESOURCES)),
            )
        )
    return spans


def _max_depth(spans: Sequence[Span]) -> int:
    return max((r.depth for r in analyse_trace(spans).requests), default=0)


@settings(max_examples=100, deadline=None)
@given(traces())
def test_attribution_never_exceeds_failures(spans: list[Span]) -> None:
    """Affected requests of an origin never exceed the failed requests of that workload."""
    _, agg = summarize(spans)
    errors: dict[str, int] = {}
    for (w, _), stats in agg.revisions.items():
        assert stats.origin_errors <= stats.errors <= stats.requests
        errors[w] = errors.get(w, 0) + stats.errors
    for (_, _, w), impact in agg.impacts.items():
        assert 0 < impact.affected_requests <= errors[w]
    for (_, _, w, op), entry in agg.entry_impacts.items():
        assert entry.affected_requests <= agg.entry_totals[(w, op)].requests


@settings(max_examples=100, deadline=None)
@given(traces())
def test_hops_between_one_and_tree_depth(spans: list[Span]) -> None:
    """Every recorded hop distance is at least 1 and at most the request tree's depth."""
    _, agg = summarize(spans)
    depth = _max_depth(spans)
    hops = [i.min_hops for i in agg.impacts.values()]
    hops += [e.min_hops for e in agg.entry_impacts.values()]
    hops += [o.max_hops for o in agg.origins.values() if o.max_hops]
    assert all(1 <= h <= depth for h in hops)


@settings(max_examples=100, deadline=None)
@given(traces(), st.randoms(use_true_random=False))
def test_arrival_order_does_not_matter(spans: list[Span], rnd: random.Random) -> None:
    """Attribution is unchanged by the order spans arrive in."""
    shuffled = list(spans)
    rnd.shuffle(shuffled)
    assert summarize(shuffled) == summarize(spans)


@settings(max_examples=100, deadline=None)
@given(st.lists(traces(max_spans=12), min_size=1, max_size=6), st.integers(0, 6))
def test_split_and_merge_equals_whole(batch: list[list[Span]], cut: int) -> None:
    """Summarising a set of traces in two parts and merging equals summarising it at once."""
    whole, first, second = Aggregates(), Aggregates(), Aggregates()
    for i, spans in enumerate(batch):
        add_trace(whole, analyse_trace(spans))
        add_trace(first if i < cut else second, analyse_trace(spans))
    first.merge(second)
    assert first == whole
