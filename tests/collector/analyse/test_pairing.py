"""Pairing the open ends of trace fragments: a trace analysed in pieces gets the self times,
own times and transit it gets whole."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import MAPS, Aggregates
from podtrace_collector.analyse.analyzer import Analyzer
from podtrace_collector.analyse.pairing import open_ends
from podtrace_collector.analyse.requests import analyse_trace
from podtrace_collector.model import KIND_CLIENT, Resource, Span

from tests.collector.analyse.tracebuilder import (
    BASE_S,
    CART,
    CHK,
    FE,
    PODS,
    Clock,
    Trace,
    analysed_fragments,
    deployment,
)


def _chain() -> Trace:
    """frontend -> checkout -> cart, each call with 5 ms of network each way."""
    t = Trace()
    fe = t.server(FE, "fe", dur_ms=100)
    chk = t.call(fe, CHK, "chk", start_ms=10, dur_ms=70, gap_ms=5)
    t.call(chk, CART, "cart", start_ms=30, dur_ms=20, gap_ms=5)
    return t


def _by_pod(spans: Iterable[Span]) -> list[list[Span]]:
    """The spans of each pod apart, as batch exporters send them."""
    groups: dict[int, list[Span]] = {}
    for s in spans:
        groups.setdefault(id(s.resource), []).append(s)
    return list(groups.values())


def _times(agg: Aggregates) -> dict[object, dict[int, int]]:
    """Every time histogram of ``agg``: self and own time per revision, transit per key."""
    out: dict[object, dict[int, int]] = {}
    for key, st_ in agg.revisions.items():
        for name, h in (("self", st_.self_time), ("own", st_.own_time)):
            if h.total:
                out[(name, *key)] = dict(h.counts)
    for tkey, t in agg.transit.items():
        out[("transit", *tkey)] = dict(t.transit.counts)
    return out


def _counts(agg: Aggregates, *, shares: bool = False) -> dict[str, object]:
    """Every map but ``totals`` (each fragment counts as a trace) and, unless ``shares``, the
    critical-path shares (``latency_impacts``, ``entry_latency_impacts``): a request above the
    cut is walked without the spans below it (docs/blast-radius.md)."""
    skip = {"totals"} | (set() if shares else {"latency_impacts", "entry_latency_impacts"})
    return {m.name: getattr(agg, m.name) for m in MAPS if m.name not in skip}


def _median(h: Histogram) -> float | None:
    return h.quantile(0.5)


class TestOpenEnds:
    def test_a_whole_trace_has_none(self) -> None:
        """Every call answered, every parent present: nothing waits."""
        assert open_ends(analyse_trace(_chain().spans)) == ([], [])

    def test_orphans_and_open_clients(self) -> None:
        """Checkout's pod alone: its request is an orphan and its call to cart is open."""
        t = _chain()
        checkout = [s for s in t.spans if s.resource is CHK]
        orphans, clients = open_ends(analyse_trace(checkout))
        assert [r.span.name for r in orphans] == ["chk"]
        assert [checkout[i].name for i in clients] == ["call cart"]

    @pytest.mark.parametrize("key", ["db.system", "db.system.name", "messaging.system"])
    def test_database_and_messaging_calls_are_not_open(self, key: str) -> None:
        """A client span of a database or message system never gets a child request."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=50)
        t.span(FE, "SELECT", KIND_CLIENT, parent=fe, dur_ms=20, attrs={key: "postgresql"})
        assert open_ends(analyse_trace(t.spans)) == ([], [])


class TestPairing:
    def test_callee_first_then_caller(self) -> None:
        """Cart's pod exports first: its request waits for the caller's client span."""
        t = _chain()
        whole = analysed_fragments([t.spans])
        analyzer = Analyzer()
        frags = _by_pod(t.spans)
        pieces = analysed_fragments(list(reversed(frags)), analyzer)
        assert _times(pieces) == _times(whole)
        cart = pieces.revisions[("shop/cart", "cart1")]
        assert _median(cart.self_time) == pytest.approx(30.0, rel=0.03)  # 20 ms + 2 x 5 network
        assert _median(pieces.transit[("shop/cart", "cart1", "shop/checkout")].transit) == (
            pytest.approx(10.0, rel=0.03)
        )
        p = analyzer.pairing
        assert (p.paired, p.unpaired, p.overflow, p.waiting) == (2, 0, 0, 0)  # cart, checkout

    def test_caller_first_then_callee(self) -> None:
        """Frontend exports first: its call waits for checkout's request, and so on down."""
        t = _chain()
        assert _times(analysed_fragments(_by_pod(t.spans))) == _times(analysed_fragments([t.spans]))

    def test_middle_first(self) -> None:
        """Checkout's pod first: it waits on both sides, and both come."""
        t = _chain()
        fe, chk, cart = _by_pod(t.spans)
        analyzer = Analyzer()
        assert _times(analysed_fragments([chk, cart, fe], analyzer)) == _times(
            analysed_fragments([t.spans])
        )
        assert analyzer.pairing.unpaired == 0

    def test_without_pairing_fragments_bias_self_time(self) -> None:
        """The bias pairing removes: cart alone has no transit, frontend counts the whole call."""
        t = _chain()
        fe, chk, cart = _by_pod(t.spans)
        analyzer = Analyzer(max_waiting=0)  # nothing held: as before pairing
        alone = analysed_fragments([cart, chk, fe], analyzer)
        assert analyzer.pairing.overflow == 3
        assert _median(alone.revisions[("shop/cart", "cart1")].self_time) == pytest.approx(
            20.0, rel=0.03
        )
        assert _median(alone.revisions[("shop/frontend", "fe1")].self_time) == pytest.approx(
            100.0, rel=0.03
        )
        assert alone.transit == {}

    def test_a_paired_request_goes_to_its_own_minute(self) -> None:
        """The minute of the first fragment was drained already: the sample joins it later."""
        t = _chain()
        fe, chk, cart = _by_pod(t.spans)
        analyzer = Analyzer()
        analyzer.on_trace(cart, late=False)
        first = analyzer.drain()
        assert first[BASE_S].revisions[("shop/cart", "cart1")].requests == 1
        assert first[BASE_S].revisions[("shop/cart", "cart1")].self_time.total == 0
        analyzer.on_trace(chk, late=True)
        analyzer.on_trace(fe, late=True)
        second = analyzer.drain()
        cart_stats = second[BASE_S].revisions[("shop/cart", "cart1")]
        assert (cart_stats.requests, cart_stats.self_time.total) == (0, 1)

    def test_an_unanswered_call_waits_then_counts_as_it_is(self) -> None:
        """A call to an uninstrumented service: held pair_wait_s, then added, counted unpaired."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=100)
        t.client(fe, "GET external", start_ms=10, dur_ms=60)
        clock = Clock()
        analyzer = Analyzer(pair_wait_s=30.0, clock=clock)
        analyzer.on_trace(t.spans, late=False)
        assert analyzer.pairing.waiting == 1
        clock.now = 29.0
        early = analyzer.drain()[BASE_S].revisions[("shop/frontend", "fe1")]
        assert (early.requests, early.self_time.total) == (1, 0)
        clock.now = 30.0
        late = analyzer.drain()[BASE_S].revisions[("shop/frontend", "fe1")]
        assert late.self_time.total == 1
        assert _median(late.self_time) == pytest.approx(100.0, rel=0.03)
        assert (analyzer.pairing.unpaired, analyzer.pairing.waiting) == (1, 0)

    def test_the_table_is_bounded(self) -> None:
        """Past max_waiting, a request's samples are added at once and counted as overflow."""
        analyzer = Analyzer(max_waiting=1)
        for _ in range(3):
            t = Trace()
            t.client(t.server(FE, "fe", dur_ms=100), "GET external", dur_ms=60)
            analyzer.on_trace(t.spans, late=False)
        p = analyzer.pairing
        assert (p.waiting, p.overflow) == (1, 2)
        assert analyzer.drain()[BASE_S].revisions[("shop/frontend", "fe1")].self_time.total == 2

    # Client spans end before their server span: a batch never sends them after it.
    @pytest.mark.parametrize("order", [(0, 1, 2), (1, 0, 2), (0, 2, 1)])
    def test_a_pod_cut_between_its_client_spans_and_its_server_span(
        self, order: tuple[int, int, int]
    ) -> None:
        """The frontend's client spans exported before its server span: the detached fragment
        is held and analysed with its server span; no client span stands as a request."""
        t = _chain()
        fe, chk, cart = _by_pod(t.spans)
        server = [s for s in fe if s.name == "fe"]
        clients = [s for s in fe if s.name != "fe"]
        pieces = [clients, chk + cart, server]
        analyzer = Analyzer()
        got = analysed_fragments([pieces[i] for i in order], analyzer)
        assert _times(got) == _times(analysed_fragments([t.spans]))
        assert got.revisions[("shop/frontend", "fe1")].requests == 1
        f = analyzer.fragments
        assert (analyzer.pairing.unpaired, f.unpaired, f.held_spans, f.joined) == (0, 0, 0, 1)

    def test_a_detached_fragment_alone_counts_as_before(self) -> None:
        """Nothing more of its trace comes: after pair_wait_s it is analysed alone."""
        t = _chain()
        fe, _, _ = _by_pod(t.spans)
        clients = [s for s in fe if s.name != "fe"]
        clock = Clock()
        analyzer = Analyzer(clock=clock)
        analyzer.on_trace(clients, late=False)
        assert analyzer.fragments.held_spans == 1 and analyzer.drain() == {}
        clock.now = 31.0
        agg = analyzer.drain()[BASE_S]
        assert agg.revisions[("shop/frontend", "fe1")].requests == 1  # the root span, as before
        assert (analyzer.fragments.unpaired, analyzer.fragments.held_spans) == (1, 0)

    def test_paired_requests_leave_the_queue(self) -> None:
        """Many paired traces: the expiry queue stays within twice the requests waiting."""
        analyzer = Analyzer()
        for _ in range(3000):
            t = _chain()
            for frag in reversed(_by_pod(t.spans)):
                analyzer.on_trace(frag, late=False)
        p = analyzer.pairing
        assert (p.waiting, p.paired) == (0, 6000)
        assert len(p._queue) <= 2 * p.waiting + 1025


class TestEntryOrCall:
    """An orphan counts as a call on its caller's edge, not as an entry point, when its caller
    comes within pair_wait_s, in either order; as an entry point when it never comes."""

    @pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
    def test_a_chain_in_three_pods_counts_as_whole(self, order: tuple[int, ...]) -> None:
        """Entry totals, edges and every other map but the critical-path shares are the whole
        trace's, whichever pod comes first."""
        t = _chain()
        frags = _by_pod(t.spans)
        analyzer = Analyzer()
        got, whole = (
            analysed_fragments([frags[i] for i in order], analyzer),
            analysed_fragments([t.spans]),
        )
        assert list(got.entry_totals) == [("shop/frontend", "fe")]
        assert set(got.edges) == {
            ("shop/frontend", "shop/checkout"),
            ("shop/checkout", "shop/cart"),
        }
        assert _counts(got) == _counts(whole)
        assert (analyzer.pairing.unpaired, analyzer.pairing.waiting) == (0, 0)

    @pytest.mark.parametrize("callee_first", [True, False])
    def test_every_map_of_a_call_within_a_workload(self, callee_first: bool) -> None:
        """A call between two pods of one workload-revision keeps every critical path in it:
        then every map, the entry point's latency shares included, is the whole trace's."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=100, method="GET", route="/", user="u1")
        t.call(fe, deployment("shop", "frontend", "fe1"), "inner", start_ms=10, dur_ms=50)
        frags = _by_pod(t.spans)
        got = analysed_fragments(frags[::-1] if callee_first else frags)
        whole = analysed_fragments([t.spans])
        assert got.entry_totals[("shop/frontend", "GET /")].requests == 1
        assert _counts(got, shares=True) == _counts(whole, shares=True)

    def test_an_orphan_whose_caller_never_comes_is_an_entry_point(self) -> None:
        """Cart's request waits pair_wait_s, then counts as an entry point of its own (with its
        latency shares), in its fragment's minute, and no call edge."""
        t = _chain()
        cart = _by_pod(t.spans)[2]
        clock = Clock()
        analyzer = Analyzer(pair_wait_s=30.0, clock=clock)
        analyzer.on_trace(cart, late=False)
        first = analyzer.drain()[BASE_S]
        assert first.revisions[("shop/cart", "cart1")].requests == 1
        assert first.entry_totals == {} and first.entry_latency_impacts == {}
        clock.now = 30.0
        agg = analyzer.drain()[BASE_S]
        assert [(k, v.requests) for k, v in agg.entry_totals.items()] == [
            (("shop/cart", "cart"), 1)
        ]
        assert list(agg.entry_latency_impacts) == [("shop/cart", "cart1", "shop/cart", "cart")]
        assert agg.edges == {} and analyzer.pairing.unpaired == 1

    def test_client_spans_cut_from_their_server_span(self) -> None:
        """Checkout's pod exported its call to cart before its own request: cart's request,
        under that client span, waits for the request above it and counts as its call (times
        are not mended here: checkout's request is timed without its call)."""
        t = _chain()
        chk_server = next(s for s in t.spans if s.resource is CHK and s.kind != KIND_CLIENT)
        rest = [s for s in t.spans if s is not chk_server]
        cut = [s for s in rest if s.resource is not FE]
        fe = [s for s in rest if s.resource is FE]
        analyzer = Analyzer()
        got, whole = (
            analysed_fragments([cut, [chk_server], fe], analyzer),
            analysed_fragments([t.spans]),
        )
        assert (got.entry_totals, got.edges) == (whole.entry_totals, whole.edges)
        assert analyzer.pairing.unpaired == 0


# --- the property: any call tree, cut into its pods' fragments, arrives in any order -----------


@st.composite
def call_trees(draw: st.DrawFn, *, messages: bool = True) -> list[Span]:
    """A random tree of synchronous calls across the pods, with database calls, calls to an
    uninstrumented service, asynchronous messages (unless not ``messages``) and internal
    spans."""
    t = Trace()
    root = t.server(draw(st.sampled_from(PODS)), "root", dur_ms=draw(st.integers(50, 500)))
    frontier = [root]
    for _ in range(draw(st.integers(0, 8))):
        parent = draw(st.sampled_from(frontier))
        start = (parent.start_ns - t.base_ns) / 1e6 + draw(st.integers(0, 20))
        kinds = ["call", "call", "db", "external", "internal"] + ["publish"] * messages
        what = draw(st.sampled_from(kinds))
        dur = draw(st.integers(1, 40))
        if what == "call":
            callee: Resource = draw(st.sampled_from(PODS))
            gap = draw(st.integers(0, 6))
            frontier.append(t.call(parent, callee, "op", start_ms=start, dur_ms=dur, gap_ms=gap))
        elif what == "db":
            attrs = {"db.system": "postgresql"}
            t.span(parent.resource, "SELECT", KIND_CLIENT, parent=parent, start_ms=start,
                   dur_ms=dur, attrs=attrs)  # fmt: skip
        elif what == "external":
            t.client(parent, "GET", start_ms=start, dur_ms=dur)
        elif what == "publish":
            t.publish(parent, draw(st.sampled_from(PODS)), dur_ms=dur)
        else:
            frontier.append(t.internal(parent, start_ms=start, dur_ms=dur))
    return t.spans


@settings(max_examples=150, deadline=None)
@given(call_trees(), st.randoms(use_true_random=False))
def test_fragments_in_any_order_time_as_the_whole(spans: list[Span], rnd: random.Random) -> None:
    """Self time, own time and transit of a trace cut into its pods' fragments, arriving in any
    order, equal those of the whole trace; only calls nobody answers are unpaired."""
    frags = _by_pod(spans)
    rnd.shuffle(frags)
    analyzer = Analyzer()
    assert _times(analysed_fragments(frags, analyzer)) == _times(analysed_fragments([spans]))
    unanswered = sum(1 for s in spans if s.kind == KIND_CLIENT and s.name == "GET")
    assert analyzer.pairing.unpaired <= unanswered
    assert analyzer.pairing.waiting == 0


@settings(max_examples=150, deadline=None)
@given(call_trees(messages=False), st.integers(2, 3), st.randoms(use_true_random=False))
def test_fragments_in_any_order_count_as_the_whole(
    spans: list[Span], n: int, rnd: random.Random
) -> None:
    """Pods dealt into 2-3 fragments arriving in any order: entry totals, call edges, revisions
    (requests, latency, self and own time), transit and every other map but the critical-path
    shares equal the whole trace's.  Without messages: a consumer whose producer is in another
    fragment is still an entry point of its own (docs/blast-radius.md)."""
    pods = list({id(s.resource): s.resource for s in spans}.values())
    groups: list[list[Span]] = [[] for _ in range(n)]
    for s in spans:
        groups[pods.index(s.resource) % n].append(s)
    frags = [g for g in groups if g]
    rnd.shuffle(frags)
    analyzer = Analyzer()
    assert _counts(analysed_fragments(frags, analyzer)) == _counts(analysed_fragments([spans]))
    assert analyzer.pairing.waiting == 0
