"""Fragments held for the rest of their trace: a failing trace analysed in fragments gets the
origins, propagation, containment and entry points it gets whole."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.analyse.analyzer import Analyzer
from podtrace_collector.model import (
    KIND_CLIENT,
    STATUS_UNSET,
    Resource,
    Span,
)

from tests.collector.analyse.tracebuilder import (
    BASE_S,
    CART,
    CHK,
    FE,
    MAIL,
    PAY,
    PODS,
    Clock,
    Trace,
    analysed_fragments,
)


def _pods(spans: Iterable[Span], *groups: Sequence[Resource]) -> list[list[Span]]:
    """The spans of each group of pods, as their batch exporters send them."""
    spans = list(spans)
    return [[s for s in spans if s.resource in group] for group in groups]


def _failures(agg: Aggregates) -> dict[str, Any]:
    """What SPEC §4 attributes: origins (with hops, traces, users, exemplars), impacts, entry
    impacts, containment, entry totals, and errors and origin errors per revision."""
    return {
        "origins": agg.origins,
        "impacts": agg.impacts,
        "entry_impacts": agg.entry_impacts,
        "absorbed": agg.absorbed,
        "entry_totals": agg.entry_totals,
        "errors": {k: (s.requests, s.errors, s.origin_errors) for k, s in agg.revisions.items()},
    }


def _failing_chain() -> Trace:
    """frontend -> checkout -> cart: cart fails, and the failure reaches the frontend's user."""
    t = Trace()
    fe = t.server(FE, "fe", dur_ms=100, error=True, method="POST", route="/checkout", user="u1")
    chk = t.call(fe, CHK, "chk", start_ms=10, dur_ms=70, gap_ms=5, error=True)
    t.call(chk, CART, "cart", start_ms=30, dur_ms=20, gap_ms=5, error=True)
    return t


class TestFailingTraceInFragments:
    @pytest.mark.parametrize("first", ["frontend", "cart"])
    def test_the_origin_is_found_across_the_cut(self, first: str) -> None:
        """frontend's pod (its request and its failed call) and cart's pod, either first: cart is
        the origin, the frontend affected at 1 hop, the user counted; nothing is left held."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=100, error=True, method="GET", route="/", user="u1")
        t.call(fe, CART, "cart", start_ms=10, dur_ms=50, error=True)
        a, b = _pods(t.spans, [FE], [CART])
        analyzer = Analyzer()
        got = analysed_fragments([a, b] if first == "frontend" else [b, a], analyzer)
        whole = analysed_fragments([t.spans])
        assert got == whole
        assert set(got.origins) == {("shop/cart", "cart1")}
        origin = got.origins[("shop/cart", "cart1")]
        assert (origin.affected_traces, origin.max_hops, origin.users) == (1, 1, {"u1"})
        assert got.impacts[("shop/cart", "cart1", "shop/frontend")].affected_requests == 1
        assert list(got.entry_totals) == [("shop/frontend", "GET /")]
        f = analyzer.fragments
        assert (f.joined, f.unpaired, f.overflow, f.held_spans) == (1, 0, 0, 0)

    @pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
    def test_a_chain_in_three_pods_in_any_order(self, order: tuple[int, ...]) -> None:
        """Each pod's spans a fragment, in every order: every aggregate equals the whole's."""
        t = _failing_chain()
        frags = _pods(t.spans, [FE], [CHK], [CART])
        analyzer = Analyzer()
        assert analysed_fragments([frags[i] for i in order], analyzer) == analysed_fragments(
            [t.spans]
        )
        assert (analyzer.fragments.unpaired, analyzer.fragments.held_spans) == (0, 0)
        assert analyzer.traces == 1  # analysed once, as one trace

    @pytest.mark.parametrize("first", [0, 1])
    def test_a_failure_absorbed_by_a_caller_in_another_fragment(self, first: int) -> None:
        """The frontend did not fail (a fallback); its call to cart did: absorbed by the frontend,
        and cart's request is no entry point."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=100, method="GET", route="/")
        t.call(fe, CART, "cart", start_ms=10, dur_ms=50, error=True)
        frags = _pods(t.spans, [FE], [CART])
        got = analysed_fragments([frags[first], frags[1 - first]])
        assert got == analysed_fragments([t.spans])
        assert got.absorbed[("shop/cart", "cart1", "shop/frontend")].requests == 1
        assert list(got.entry_totals) == [("shop/frontend", "GET /")]

    def test_healthy_fragments_of_the_trace_join_the_held_one(self) -> None:
        """A sibling call that did not fail, arriving after a failing fragment, joins it."""
        t = _failing_chain()
        fe = t.spans[0]
        t.call(fe, MAIL, "mail", start_ms=85, dur_ms=5)
        frags = _pods(t.spans, [FE], [CHK, CART], [MAIL])
        assert analysed_fragments(frags) == analysed_fragments([t.spans])

    def test_a_healthy_fragment_before_the_failing_ones(self) -> None:
        """A fragment without a failure is not held, but its request waits in the pairing:
        when it comes first it is still counted as a call, not an entry point."""
        t = _failing_chain()
        t.call(t.spans[0], MAIL, "mail", start_ms=85, dur_ms=5)
        mail, rest = _pods(t.spans, [MAIL], [FE, CHK, CART])
        got, whole = analysed_fragments([mail, rest]), analysed_fragments([t.spans])
        assert ("shop/email", "mail") not in got.entry_totals
        assert _failures(got) == _failures(whole)
        assert got.edges == whole.edges

    @pytest.mark.parametrize("consumer_first", [True, False])
    def test_a_consumer_below_a_healthy_producer(self, consumer_first: bool) -> None:
        """A message consumed in another fragment fails through its own call.  Consumer first:
        it waits and is joined, as whole.  The limit: the producer's healthy fragment first is
        analysed at once, so the consumer, alone, is an entry point the failure reaches."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=100)
        consumer = t.publish(fe, CART, "process", error=True)
        t.call(consumer, PAY, "pay", dur_ms=5, error=True)
        producer, rest = _pods(t.spans, [FE], [CART, PAY])
        analyzer = Analyzer()
        got = analysed_fragments([rest, producer] if consumer_first else [producer, rest], analyzer)
        whole = analysed_fragments([t.spans])
        assert whole.entry_impacts == {}
        if consumer_first:
            assert got == whole
        else:
            assert list(got.entry_impacts) == [("shop/payment", "pay1", "shop/cart", "process")]
            assert analyzer.fragments.unpaired == 1


class TestHolding:
    def test_a_fragment_whose_partner_never_comes_is_analysed_alone(self) -> None:
        """Cart's failed request waits pair_wait_s for its caller, then counts as it is (an
        origin and an entry point of its own), counted unpaired."""
        t = _failing_chain()
        (cart,) = _pods(t.spans, [CART])
        clock = Clock()
        analyzer = Analyzer(pair_wait_s=30.0, clock=clock)
        analyzer.on_trace(cart, late=False)
        assert analyzer.fragments.held_spans == 1
        clock.now = 29.0
        assert analyzer.drain() == {}
        clock.now = 30.0
        agg = analyzer.drain()[BASE_S]
        assert agg.revisions[("shop/cart", "cart1")].origin_errors == 1
        assert list(agg.entry_totals) == [("shop/cart", "cart")]
        f = analyzer.fragments
        assert (f.unpaired, f.joined, f.held_spans) == (1, 0, 0)

    def test_a_fragment_joined_keeps_the_first_deadline(self) -> None:
        """Fragments joining a held one do not extend its wait past pair_wait_s."""
        t = _failing_chain()
        fe, chk, _ = _pods(t.spans, [FE], [CHK], [CART])
        clock = Clock()
        analyzer = Analyzer(pair_wait_s=30.0, clock=clock)
        analyzer.on_trace(fe, late=False)
        clock.now = 20.0
        analyzer.on_trace(chk, late=False)  # joined; still waits for cart
        assert analyzer.fragments.held_spans == len(fe) + len(chk)
        clock.now = 30.0
        agg = analyzer.drain()[BASE_S]
        assert set(agg.origins) == {("shop/checkout", "chk1")}  # cart never came
        assert (analyzer.fragments.joined, analyzer.fragments.unpaired) == (1, 1)

    def test_held_spans_are_bounded(self) -> None:
        """Past max_waiting spans held, a failing fragment is analysed at once, counted."""
        analyzer = Analyzer(max_waiting=3)
        for _ in range(3):
            (fe,) = _pods(_failing_chain().spans, [FE])  # 2 spans: the request and its call
            analyzer.on_trace(fe, late=False)
        f = analyzer.fragments
        assert (f.held_spans, f.overflow) == (2, 2)
        assert analyzer.drain()[BASE_S].revisions[("shop/frontend", "fe1")].origin_errors == 2

    def test_nothing_is_held_for_a_caller_analysed_already(self) -> None:
        """The caller's fragment had no failure (its call did not fail either), so it was
        analysed: the callee's failed fragment does not wait for it in vain."""
        t = Trace()
        fe = t.server(FE, "fe", dur_ms=100)
        t.call(fe, CART, "cart", start_ms=10, dur_ms=50, error=True, client_error=False)
        a, b = _pods(t.spans, [FE], [CART])
        analyzer = Analyzer()
        analyzer.on_trace(a, late=False)
        analyzer.on_trace(b, late=False)
        assert analyzer.fragments.held_spans == 0
        assert analyzer.drain()[BASE_S].revisions[("shop/cart", "cart1")].origin_errors == 1

    def test_whole_and_healthy_traces_are_not_held(self) -> None:
        """A whole failing trace, and a healthy trace in fragments, are analysed at once."""
        analyzer = Analyzer()
        analyzer.on_trace(_failing_chain().spans, late=False)
        t = _failing_chain()
        for s in t.spans:
            s.status = STATUS_UNSET
        for f in _pods(t.spans, [FE], [CHK], [CART]):
            analyzer.on_trace(f, late=False)
        assert analyzer.fragments.held_spans == 0 and analyzer.traces == 4


# --- the property: failing call trees, their pods cut into 2-3 fragments, in any order --------


@st.composite
def failing_trees(draw: st.DrawFn) -> list[Span]:
    """A random tree of calls across the pods, some failing (a failed call's client span fails
    with it, as HTTP and gRPC instrumentations set it), with database calls, calls to an
    uninstrumented service, asynchronous messages and internal spans."""
    t = Trace()
    user = draw(st.sampled_from([None, "u1", "u2"]))
    root = t.server(draw(st.sampled_from(PODS)), "root", dur_ms=500, error=draw(st.booleans()),
                    user=user)  # fmt: skip
    frontier = [root]
    for _ in range(draw(st.integers(1, 9))):
        parent = draw(st.sampled_from(frontier))
        start = (parent.start_ns - t.base_ns) / 1e6 + draw(st.integers(0, 20))
        what = draw(st.sampled_from(["call", "call", "call", "db", "external", "publish", "work"]))
        error = draw(st.booleans())
        if what == "call":
            callee: Resource = draw(st.sampled_from(PODS))
            frontier.append(t.call(parent, callee, "op", start_ms=start, dur_ms=20, error=error))
        elif what == "db":
            t.span(parent.resource, "SELECT", KIND_CLIENT, parent=parent, start_ms=start,
                   dur_ms=5, error=error, attrs={"db.system": "postgresql"})  # fmt: skip
        elif what == "external":
            t.client(parent, "GET", start_ms=start, dur_ms=5, error=error)
        elif what == "publish":  # a leaf: see test_a_consumer_below_a_healthy_producer
            t.publish(parent, draw(st.sampled_from(PODS)), error=error)
        else:
            frontier.append(t.internal(parent, start_ms=start, error=error))
    return t.spans


@settings(max_examples=200, deadline=None)
@given(failing_trees(), st.integers(2, 3), st.randoms(use_true_random=False))
def test_a_failing_trace_in_fragments_is_attributed_as_whole(
    spans: list[Span], n: int, rnd: random.Random
) -> None:
    """Pods dealt into 2-3 fragments arriving in any order: origins, impacts, entry impacts,
    containment, errors and origin errors equal the whole trace's; when the fragments were all
    joined into one analysis, so does every other aggregate.  (A fragment whose own requests and
    open calls are healthy is analysed at once, even with an unrelated failure in it, e.g. a
    failed consumer of its own message: then the critical-path shares of its requests are walked
    without the spans below its open call, a documented limit.)"""
    pods = list({id(s.resource): s.resource for s in spans}.values())
    groups: list[list[Resource]] = [[] for _ in range(n)]
    for pod in pods:
        groups[rnd.randrange(n)].append(pod)
    frags = [f for f in _pods(spans, *groups) if f]
    rnd.shuffle(frags)
    analyzer = Analyzer()
    got, whole = analysed_fragments(frags, analyzer), analysed_fragments([spans])
    got_f, whole_f = _failures(got), _failures(whole)
    del got_f["entry_totals"], whole_f["entry_totals"]
    assert got_f == whole_f
    joined = analyzer.fragments.joined == len(frags) - 1  # analysed as one trace
    event(f"fragments joined into one analysis: {joined}")
    if joined:
        assert got == whole
    assert analyzer.fragments.held_spans == 0
