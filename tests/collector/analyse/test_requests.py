"""Tests for analyse.requests: golden traces for every rule of SPEC §4, and messy shapes."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector.analyse.requests import Request, TraceAnalysis, analyse_trace
from podtrace_collector.model import KIND_CLIENT, KIND_INTERNAL, Span

from tests.collector.analyse.tracebuilder import Trace, deployment, service, span_id_of

FE = deployment("shop", "frontend", "fe1")
CHK = deployment("shop", "checkout", "chk1")
CART = deployment("shop", "cart", "cart1")
PAY = deployment("shop", "payment", "pay1")
WORKER = deployment("shop", "worker", "wrk1")

FE_KEY = ("shop/frontend", "fe1")
CHK_KEY = ("shop/checkout", "chk1")
CART_KEY = ("shop/cart", "cart1")
PAY_KEY = ("shop/payment", "pay1")

# One call of a random trace: (parent server index, callee, start offset ms, duration ms, network
# gap ms each way (negative: skewed clocks), through a client span or straight under the server).
_Call = tuple[int, int, float, float, float, bool]
_CALLS = st.tuples(
    st.integers(0, 20),
    st.integers(0, 2),
    st.floats(-20, 200),
    st.floats(0, 300),
    st.floats(-10, 50),
    st.booleans(),
)


def by_name(analysis: TraceAnalysis) -> dict[str, Request]:
    """The requests of an analysed trace by span name (names are unique in these tests)."""
    return {r.span.name: r for r in analysis.requests}


def affected(r: Request) -> dict[tuple[str, str], tuple[int, int]]:
    """``{origin key: (min hops, max hops)}`` of a request."""
    return {k: (lo, hi) for k, lo, hi in r.affected_by()}


def test_chain_propagates_with_hops() -> None:
    """frontend -> checkout -> cart(error): cart is the origin, 1 and 2 hops up are affected."""
    t = Trace()
    fe = t.server(FE, "fe", error=True)
    chk = t.call(fe, CHK, "chk", error=True)
    t.call(chk, CART, "cart", error=True)
    reqs = by_name(analyse_trace(t.spans))
    assert [r.origin for r in (reqs["fe"], reqs["chk"], reqs["cart"])] == [False, False, True]
    assert affected(reqs["chk"]) == {CART_KEY: (1, 1)}
    assert affected(reqs["fe"]) == {CART_KEY: (2, 2)}
    assert affected(reqs["cart"]) == {}
    assert reqs["fe"].parent is None and reqs["cart"].parent is reqs["chk"]
    assert [reqs[n].depth for n in ("fe", "chk", "cart")] == [0, 1, 2]


def test_fan_out_and_two_origins() -> None:
    """Two failing branches: the root inherits both origins, each at its own hop distance."""
    t = Trace()
    fe = t.server(FE, "fe", error=True)
    t.call(fe, CART, "cart-ok")
    chk = t.call(fe, CHK, "chk", error=True)
    t.call(chk, CART, "cart", error=True)
    t.call(fe, PAY, "pay", error=True)
    reqs = by_name(analyse_trace(t.spans))
    assert affected(reqs["fe"]) == {CART_KEY: (2, 2), PAY_KEY: (1, 1)}
    assert {n for n, r in reqs.items() if r.origin} == {"cart", "pay"}


def test_same_origin_workload_at_two_depths() -> None:
    """Origins of one workload-revision at depths 1 and 2 give min hops 1 and max hops 2."""
    t = Trace()
    fe = t.server(FE, "fe", error=True)
    t.call(fe, CART, "cart-direct", error=True)
    chk = t.call(fe, CHK, "chk", error=True)
    t.call(chk, CART, "cart-deep", error=True)
    assert affected(by_name(analyse_trace(t.spans))["fe"]) == {CART_KEY: (1, 2)}


def test_containment_at_each_level() -> None:
    """The first non-failed request above a failure absorbs it, on behalf of its origins."""
    t = Trace()
    fe = t.server(FE, "fe")
    chk = t.call(fe, CHK, "chk")
    t.call(chk, CART, "cart", error=True)
    assert analyse_trace(t.spans).absorbed == [(CART_KEY, "shop/checkout")]

    t = Trace()
    fe = t.server(FE, "fe")
    chk = t.call(fe, CHK, "chk", error=True)
    t.call(chk, CART, "cart", error=True)
    assert analyse_trace(t.spans).absorbed == [(CART_KEY, "shop/frontend")]


def test_retry_is_absorbed() -> None:
    """A failed call followed by a successful retry: the caller absorbed the failure."""
    t = Trace()
    fe = t.server(FE, "fe")
    t.call(fe, CART, "cart-1", error=True)
    t.call(fe, CART, "cart-2", start_ms=20)
    analysis = analyse_trace(t.spans)
    reqs = by_name(analysis)
    assert reqs["cart-1"].origin and not reqs["fe"].failed
    assert analysis.absorbed == [(CART_KEY, "shop/frontend")]


def test_async_consumer_does_not_fail_its_producer() -> None:
    """A failing consumer is an origin of its own; the producer side stays an origin too."""
    t = Trace()
    fe = t.server(FE, "fe", error=True)
    t.publish(fe, WORKER, "job", error=True)
    analysis = analyse_trace(t.spans)
    reqs = by_name(analysis)
    assert reqs["job"].origin and not reqs["job"].sync
    assert reqs["fe"].origin and affected(reqs["fe"]) == {}
    assert analysis.absorbed == []  # asynchronous failures are not absorbed either


def test_failure_under_a_consumer_propagates_to_it() -> None:
    """A consumer whose synchronous call failed is affected by that call's origin."""
    t = Trace()
    fe = t.server(FE, "fe")
    job = t.publish(fe, WORKER, "job", error=True)
    t.call(job, CART, "cart", error=True)
    reqs = by_name(analyse_trace(t.spans))
    assert affected(reqs["job"]) == {CART_KEY: (1, 1)}
    assert reqs["job"].parent is reqs["fe"]


def test_same_workload_calling_itself() -> None:
    """cart -> cart(error): the calling cart request is affected by its own workload's origin."""
    t = Trace()
    outer = t.server(CART, "outer", error=True)
    t.call(outer, CART, "inner", error=True)
    reqs = by_name(analyse_trace(t.spans))
    assert affected(reqs["outer"]) == {CART_KEY: (1, 1)}


def test_non_kubernetes_services() -> None:
    """Services without Kubernetes attributes take part under service.namespace/service.name."""
    t = Trace()
    api = t.server(service("api", version="2.1"), "api", error=True)
    t.call(api, service("ledger", namespace="billing"), "ledger", error=True)
    reqs = by_name(analyse_trace(t.spans))
    assert affected(reqs["api"]) == {("billing/ledger", "unknown"): (1, 1)}
    assert reqs["api"].key == ("default/api", "2.1")


def test_trace_without_requests_uses_root_spans() -> None:
    """A trace of client/internal spans only has its root span(s) as requests."""
    t = Trace()
    root = t.span(FE, "cron", KIND_INTERNAL, error=True)
    t.client(root, "db", error=True)
    t.span(FE, "other-root", KIND_CLIENT)
    reqs = by_name(analyse_trace(t.spans))
    assert set(reqs) == {"cron", "other-root"}
    assert reqs["cron"].origin and reqs["cron"].parent is None


def test_internal_spans_between_requests_are_transparent() -> None:
    """Parent request is the nearest ancestor request, through internal and client spans."""
    t = Trace()
    fe = t.server(FE, "fe", error=True)
    mid = t.internal(t.internal(fe, "a"), "b")
    t.call(mid, CART, "cart", error=True)
    reqs = by_name(analyse_trace(t.spans))
    assert reqs["cart"].parent is reqs["fe"] and reqs["cart"].depth == 1


def test_unknown_kind_is_internal() -> None:
    """A span kind outside the OTLP enum counts as internal, not as a request."""
    t = Trace()
    fe = t.server(FE, "fe")
    t.span(FE, "odd", 42, parent=fe)
    assert set(by_name(analyse_trace(t.spans))) == {"fe"}


class TestSelfTime:
    """Self time: caller's wait minus the union of waits on synchronous downstream requests."""

    def test_network_gap_counts_for_the_callee(self) -> None:
        """The callee's self time is its caller's client span: network to its pods included."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=100)
        t.call(fe, CART, "cart", start_ms=10, dur_ms=40, gap_ms=5)  # client span 50 ms
        reqs = by_name(analyse_trace(t.spans))
        assert reqs["cart"].self_time_ms == pytest.approx(50.0)
        assert reqs["cart"].latency_ms == pytest.approx(40.0)
        assert reqs["fe"].self_time_ms == pytest.approx(50.0)  # 100 - the 50 ms client span

    def test_uninstrumented_database_stays_in_self_time(self) -> None:
        """A client span with no request below it (a database) is not subtracted."""
        t = Trace()
        cart = t.server(CART, "cart", dur_ms=60)
        t.client(cart, "SELECT", start_ms=5, dur_ms=30)
        assert by_name(analyse_trace(t.spans))["cart"].self_time_ms == pytest.approx(60.0)

    def test_overlapping_parallel_calls_count_once(self) -> None:
        """Two parallel calls overlapping in time subtract their union, not their sum."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=100)
        t.call(fe, CART, "cart", start_ms=10, dur_ms=38)  # client 10..50
        t.call(fe, PAY, "pay", start_ms=30, dur_ms=38)  # client 30..70
        t.publish(fe, WORKER, "job", dur_ms=500)  # asynchronous: never subtracted
        assert by_name(analyse_trace(t.spans))["fe"].self_time_ms == pytest.approx(40.0)

    def test_clock_skew_is_clamped(self) -> None:
        """Waits longer than the request itself (skewed clocks) clamp self time at 0."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=10)
        child = t.server(CART, "cart", parent=fe, start_ms=-500, dur_ms=50)  # no client span
        reqs = by_name(analyse_trace(t.spans))
        assert reqs["fe"].self_time_ms == 0.0
        assert child.parent_id == fe.span_id and reqs["cart"].self_time_ms == pytest.approx(50.0)

    def test_consumer_uses_its_own_duration(self) -> None:
        """Nobody waits on asynchronous work: a consumer's self time starts from its duration."""
        t = Trace()
        fe = t.server(FE, "fe")
        t.publish(fe, WORKER, "job", dur_ms=70)
        assert by_name(analyse_trace(t.spans))["job"].self_time_ms == pytest.approx(70.0)


class TestOwnAndTransit:
    """Self time split: the request's own time and transit, with the caller's workload."""

    def test_network_gap_is_transit(self) -> None:
        """A 50 ms client span around a 40 ms server span: 40 ms own, 10 ms transit, frontend's."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=100)
        t.call(fe, CART, "cart", start_ms=10, dur_ms=40, gap_ms=5)
        reqs = by_name(analyse_trace(t.spans))
        cart = reqs["cart"]
        assert (cart.own_ms, cart.transit_ms) == (pytest.approx(40.0), pytest.approx(10.0))
        assert cart.caller_workload == "shop/frontend"
        assert cart.self_time_ms == pytest.approx(cart.own_ms + cart.transit_ms)
        # The entry point: nobody's client span, no transit; its own time excludes the call.
        fe_req = reqs["fe"]
        assert (fe_req.own_ms, fe_req.transit_ms, fe_req.caller_workload) == (50.0, 0.0, "")

    def test_own_time_excludes_downstream_waits(self) -> None:
        """checkout (80 ms) waits 20 + 30 ms on two calls and is reached over 4 ms of network."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=200)
        chk = t.call(fe, CHK, "chk", start_ms=0, dur_ms=80, gap_ms=2)
        t.call(chk, CART, "cart", start_ms=10, dur_ms=18)  # client span 10..30
        t.call(chk, PAY, "pay", start_ms=40, dur_ms=28)  # client span 40..70
        reqs = by_name(analyse_trace(t.spans))
        c = reqs["chk"]
        assert (c.own_ms, c.transit_ms, c.self_time_ms) == (
            pytest.approx(30.0),
            pytest.approx(4.0),
            pytest.approx(34.0),
        )
        assert reqs["cart"].caller_workload == reqs["pay"].caller_workload == "shop/checkout"
        assert reqs["pay"].transit_ms == pytest.approx(2.0)

    def test_slow_to_reach_is_transit_not_own_time(self) -> None:
        """The same 10 ms of work behind 300 ms of network: all the growth is transit."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=400)
        t.call(fe, CART, "cart", dur_ms=10, gap_ms=150)
        cart = by_name(analyse_trace(t.spans))["cart"]
        assert (cart.own_ms, cart.transit_ms, cart.self_time_ms) == (
            pytest.approx(10.0),
            pytest.approx(300.0),
            pytest.approx(310.0),
        )

    def test_server_span_longer_than_its_client_span_clamps_transit(self) -> None:
        """Skewed clocks: a server span outlasting its caller's client span has no transit."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=100)
        client = t.client(fe, "call cart", start_ms=10, dur_ms=20)
        t.server(CART, "cart", parent=client, start_ms=5, dur_ms=30)
        cart = by_name(analyse_trace(t.spans))["cart"]
        assert (cart.transit_ms, cart.own_ms, cart.self_time_ms) == (0.0, 30.0, 20.0)
        assert cart.caller_workload == "shop/frontend"

    def test_waits_longer_than_the_request_clamp_own_time(self) -> None:
        """A downstream wait longer than the request itself (skew) leaves own time 0, not less."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=10)
        t.server(CART, "cart", parent=fe, start_ms=-500, dur_ms=50)  # no client span
        reqs = by_name(analyse_trace(t.spans))
        assert (reqs["fe"].own_ms, reqs["fe"].self_time_ms) == (0.0, 0.0)
        cart = reqs["cart"]  # no client span above it: no transit, no caller workload
        assert (cart.own_ms, cart.transit_ms, cart.caller_workload) == (50.0, 0.0, "")

    def test_consumer_has_no_transit(self) -> None:
        """Asynchronous work is waited on by nobody: its self time is all its own."""
        t = Trace()
        fe = t.server(FE, "fe")
        t.publish(fe, WORKER, "job", dur_ms=70)
        job = by_name(analyse_trace(t.spans))["job"]
        assert (job.own_ms, job.transit_ms, job.caller_workload) == (70.0, 0.0, "")

    def test_root_client_span_still_names_the_caller(self) -> None:
        """A trace starting at a client span (a job without a server span): transit is its own."""
        t = Trace()
        job = t.span(WORKER, "nightly", KIND_CLIENT, dur_ms=30)
        t.server(CART, "cart", parent=job, start_ms=5, dur_ms=20)
        (cart,) = analyse_trace(t.spans).requests
        assert cart.parent is None and cart.caller_workload == "shop/worker"
        assert (cart.own_ms, cart.transit_ms) == (pytest.approx(20.0), pytest.approx(10.0))

    @settings(deadline=None, max_examples=200)
    @given(st.lists(_CALLS, min_size=1, max_size=12))
    def test_parts_are_never_negative_and_add_up(self, calls: list[_Call]) -> None:
        """own, transit, self >= 0; self <= own + transit, with equality where clocks agree."""
        t = Trace()
        servers = [t.server(FE, "s0", dur_ms=500)]
        for parent, callee, start, dur, gap, via_client in calls:
            up = servers[parent % len(servers)]
            resource = (CART, PAY, CHK)[callee]
            at = (up.start_ns - t.base_ns) / 1e6 + start
            if via_client:
                servers.append(
                    t.call(up, resource, f"s{len(servers)}", start_ms=at, dur_ms=dur, gap_ms=gap)
                )
            else:
                servers.append(
                    t.server(resource, f"s{len(servers)}", parent=up, start_ms=at, dur_ms=dur)
                )
        spans = {s.span_id: s for s in t.spans}
        for r in analyse_trace(t.shuffled(len(calls))).requests:
            assert min(r.own_ms, r.transit_ms, r.self_time_ms) >= 0.0
            assert r.self_time_ms <= r.own_ms + r.transit_ms + 1e-9
            caller = spans.get(r.span.parent_id)
            has_client = caller is not None and caller.kind == KIND_CLIENT
            assert bool(r.caller_workload) == has_client
            if not has_client:
                assert r.transit_ms == 0.0 and r.self_time_ms == pytest.approx(r.own_ms)
            elif (
                r.own_ms > 0
                and caller is not None
                and (caller.end_ns - caller.start_ns >= r.span.end_ns - r.span.start_ns)
            ):
                assert r.self_time_ms == pytest.approx(r.own_ms + r.transit_ms)


class TestRobustness:
    """Real-world shapes: orphans, duplicates, self-parents, cycles, huge traces."""

    def test_orphan_becomes_root_of_its_fragment(self) -> None:
        """A span whose parent never arrived roots its own fragment, as an entry point."""
        t = Trace()
        lost = t.server(CHK, "chk", parent_id=span_id_of(10**12), error=True)
        t.call(lost, CART, "cart", error=True)
        reqs = by_name(analyse_trace(t.spans))
        assert reqs["chk"].parent is None and affected(reqs["chk"]) == {CART_KEY: (1, 1)}

    def test_duplicate_span_ids_keep_the_first(self) -> None:
        """A second span with a known id is dropped and counted."""
        t = Trace()
        fe = t.server(FE, "fe")
        t.server(FE, "dup", span_id=fe.span_id, error=True)
        analysis = analyse_trace(t.spans)
        assert [r.span.name for r in analysis.requests] == ["fe"] and analysis.duplicates == 1

    def test_self_parent(self) -> None:
        """A span naming itself as parent becomes a root."""
        t = Trace()
        sid = span_id_of(10**12 + 1)
        t.server(FE, "fe", span_id=sid, parent_id=sid, error=True)
        (r,) = analyse_trace(t.spans).requests
        assert r.parent is None and r.origin

    @pytest.mark.parametrize("seed", range(4))
    def test_cycle_is_cut_at_smallest_span_id(self, seed: int) -> None:
        """a -> b -> c -> a is cut at the smallest id whatever the arrival order."""
        ids = [span_id_of(10**12 + 10 + i) for i in range(3)]
        t = Trace()
        for i, name in enumerate("abc"):
            t.server(FE, name, span_id=ids[i], parent_id=ids[i - 1], error=True)
        reqs = by_name(analyse_trace(t.shuffled(seed)))
        assert reqs["a"].parent is None  # smallest id: its link to c was cut
        assert reqs["b"].parent is reqs["a"] and reqs["c"].parent is reqs["b"]
        assert [n for n, r in reqs.items() if r.origin] == ["c"]

    def test_empty_trace(self) -> None:
        """No spans: no requests, no crash."""
        analysis = analyse_trace([])
        assert analysis.requests == [] and analysis.start_ns == 0 and analysis.trace_id == b""

    def test_huge_deep_trace_is_fast(self) -> None:
        """100,000 spans, a chain of depth 10,000 plus fan-out, analysed in linear time."""
        t = Trace()
        spans: list[Span] = []
        parent = t.server(FE, "root", error=True)
        spans.append(parent)
        for i in range(10_000):
            parent = t.call(parent, CART if i % 2 else CHK, f"hop-{i}", error=True)
        for i in range(45_000 - 1):
            t.call(t.spans[i % 1000], PAY, f"leaf-{i}")
        assert len(t.spans) >= 100_000
        begin = time.process_time()  # CPU time: the machine running the suite may be busy
        analysis = analyse_trace(t.shuffled(1))
        elapsed = time.process_time() - begin
        reqs = by_name(analysis)
        assert reqs["root"].depth == 0 and reqs["hop-9999"].depth == 10_000
        assert affected(reqs["root"]) == {CART_KEY: (10_000, 10_000)}
        assert elapsed < 10.0, elapsed  # linear: about 1 s; anything quadratic takes minutes
