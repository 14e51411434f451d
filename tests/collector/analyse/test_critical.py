"""Tests for analyse.critical: golden traces for every rule of SPEC §5, properties, an oracle."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector.analyse.critical import critical_shares
from podtrace_collector.analyse.requests import WorkloadRev, analyse_trace
from podtrace_collector.analyse.workload import workload_of
from podtrace_collector.model import (
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_INTERNAL,
    KIND_PRODUCER,
    KIND_SERVER,
    Resource,
    Span,
)

from tests.collector.analyse.critical_oracle import (
    RESOURCES,
    Program,
    build_program,
    messy_trace,
    oracle_shares,
    programs,
)
from tests.collector.analyse.tracebuilder import Trace, deployment

FE = deployment("shop", "frontend", "fe1")
CHK = deployment("shop", "checkout", "chk1")
CART = deployment("shop", "cart", "cart1")
PAY = deployment("shop", "payment", "pay1")
WORKER = deployment("shop", "worker", "wrk1")
KEYS = {
    "fe": ("shop/frontend", "fe1"),
    "chk": ("shop/checkout", "chk1"),
    "cart": ("shop/cart", "cart1"),
    "pay": ("shop/payment", "pay1"),
    "worker": ("shop/worker", "wrk1"),
}
NAMES = {key: name for name, key in KEYS.items()}

# A request's shares as {short workload name: (ms, hops)}
Named = dict[str, tuple[float, int]]


def shares_by_name(spans: list[Span], **options: int) -> dict[str, Named]:
    """Shares of every request, by span name, with workloads by short name."""
    return {
        r.span.name: {NAMES[key]: (ms, hops) for key, ms, hops in shares}
        for r, shares in critical_shares(analyse_trace(spans), **options)
    }


def shares_by_id(
    spans: list[Span], **options: int
) -> dict[bytes, dict[WorkloadRev, tuple[int, int]]]:
    """Shares of every request, by span id, in whole ns (exact to compare)."""
    return {
        r.span.span_id: {key: (round(ms * 1e6), hops) for key, ms, hops in shares}
        for r, shares in critical_shares(analyse_trace(spans), **options)
    }


class TestGolden:
    """Hand-built traces, one per rule, with the shares worked out by hand."""

    def test_sequential_children(self) -> None:
        """Own gaps, an internal span and a call in turn: all of them are critical."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        t.internal(x, "a", start_ms=10, dur_ms=20)
        t.call(x, CART, "cart", start_ms=40, dur_ms=48, gap_ms=1)  # client 40-90, server 41-89
        got = shares_by_name(t.spans)
        assert got["x"] == {"fe": (50.0, 0), "cart": (50.0, 1)}
        assert got["cart"] == {"cart": (48.0, 0)}

    def test_parallel_fan_out_only_the_longest_branch(self) -> None:
        """Two calls at once: the one ending last is critical, the other gets nothing."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        t.call(x, CART, "cart", start_ms=10, dur_ms=30, gap_ms=1)  # client 10-42
        t.call(x, PAY, "pay", start_ms=10, dur_ms=70, gap_ms=1)  # client 10-82
        assert shares_by_name(t.spans)["x"] == {"fe": (28.0, 0), "pay": (72.0, 1)}

    def test_a_callee_lasting_0_ends_where_it_starts(self) -> None:
        """Two SERVER spans under one CLIENT span: one ends before it starts, so it lasts 0 and
        ends where it starts, at the other's end; the tie goes to the smaller span id (the
        client's time is that callee's), as for any tie.  (A Hypothesis counter-example: the
        raw end of the zero-length span had lost it the tie.)"""
        t = Trace()
        x = t.server(FE, "x", dur_ms=1)
        call = t.span(FE, "call", KIND_CLIENT, parent=x, start_ms=0, dur_ms=1)
        t.span(FE, "early", KIND_SERVER, parent=call, start_ms=18, dur_ms=-1)  # smaller span id
        t.span(CART, "late", KIND_SERVER, parent=call, start_ms=1, dur_ms=17)
        assert shares_by_name(t.spans)["x"] == {"fe": (1.0, 0)}
        assert shares_by_id(t.spans) == oracle_shares(t.spans)

    def test_child_outliving_its_parent_is_clipped(self) -> None:
        """A call still running when its caller ends counts up to the caller's end only; the
        clipping cuts the callee's own path (its last part, in payment, falls outside) and
        keeps what lies inside (the call to checkout)."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        cart = t.call(x, CART, "cart", start_ms=60, dur_ms=100, gap_ms=0)  # 60-160
        t.call(cart, CHK, "chk", start_ms=62, dur_ms=4, gap_ms=1)  # 62-68
        t.call(cart, PAY, "pay", start_ms=70, dur_ms=80, gap_ms=0)  # 70-150
        got = shares_by_name(t.spans)
        assert got["x"] == {"fe": (60.0, 0), "cart": (4.0, 1), "chk": (6.0, 2), "pay": (30.0, 2)}
        assert got["cart"] == {"cart": (14.0, 0), "chk": (6.0, 1), "pay": (80.0, 1)}

    def test_client_time_goes_to_the_callee_unless_nothing_answers(self) -> None:
        """A database client span keeps its time; the network to a callee is the callee's."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        t.client(x, "SELECT", start_ms=10, dur_ms=40)  # 10-50, no request below
        t.call(x, CART, "cart", start_ms=50, dur_ms=40, gap_ms=5)  # client 50-100
        assert shares_by_name(t.spans)["x"] == {"fe": (50.0, 0), "cart": (50.0, 1)}

    def test_client_with_two_requests_gives_its_time_to_the_last(self) -> None:
        """Two attempts under one client span, one after the other: both are critical, and the
        client span's own time (30 ms around them) goes to the attempt that ended last."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        client = t.client(x, "call", start_ms=0, dur_ms=100)
        t.server(CART, "try1", parent=client, start_ms=10, dur_ms=20)
        t.server(PAY, "try2", parent=client, start_ms=40, dur_ms=50)
        assert shares_by_name(t.spans)["x"] == {"cart": (20.0, 1), "pay": (80.0, 1)}

    def test_hedged_requests_ending_together(self) -> None:
        """Two attempts ending at the same time: the earlier-started one is critical, and the
        client span's own time goes to the one with the smaller span id (the first sent)."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        client = t.client(x, "call", start_ms=0, dur_ms=100)
        t.server(CART, "first", parent=client, start_ms=10, dur_ms=80)
        t.server(PAY, "second", parent=client, start_ms=20, dur_ms=70)
        assert shares_by_name(t.spans)["x"] == {"cart": (100.0, 1)}

    def test_children_tied_at_a_clipped_end(self) -> None:
        """A callee cut short by its client span: both of its calls still running at the cut
        end there; the one started first is critical."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        client = t.client(x, "call", start_ms=10, dur_ms=50)  # 10-60
        cart = t.server(CART, "cart", parent=client, start_ms=10, dur_ms=80)  # 10-90
        t.call(cart, PAY, "pay", start_ms=20, dur_ms=63)  # client 20-85
        t.call(cart, CHK, "chk", start_ms=40, dur_ms=38)  # client 40-80
        got = shares_by_name(t.spans)
        assert got["x"] == {"fe": (50.0, 0), "cart": (10.0, 1), "pay": (40.0, 2)}
        assert got["cart"] == {"cart": (15.0, 0), "pay": (65.0, 1)}  # uncut, checkout waits

    @pytest.mark.parametrize("slow", [1, 2, 3])
    def test_slow_workload_hops_below(self, slow: int) -> None:
        """frontend -> checkout -> cart -> payment; the slow one (+100 ms of its own work) is
        ``slow`` hops below the entry and carries its time, network included, all the way up."""
        t = Trace()
        chain = [FE, CHK, CART, PAY]
        names = ["fe", "chk", "cart", "pay"]
        own = [4 + (100 if level == slow else 0) for level in range(4)]
        # Each level: 2 ms of own work, the call (1 ms of network each way), 2 ms more.
        durations = [0] * 4
        durations[3] = own[3]
        for level in (2, 1, 0):
            durations[level] = own[level] + durations[level + 1] + 2
        span = t.server(FE, "fe", start_ms=0, dur_ms=durations[0])
        start = 0
        for level in (1, 2, 3):
            start += own[level - 1] // 2 + 1
            span = t.call(
                span, chain[level], names[level], start_ms=start - 1, dur_ms=durations[level]
            )
        for level in range(4):
            got = shares_by_name(t.spans)[names[level]]
            want = {names[level]: (float(own[level]), 0)}
            want.update({names[k]: (own[k] + 2.0, k - level) for k in range(level + 1, 4)})
            assert got == want
        assert shares_by_name(t.spans)["fe"][names[slow]] == (106.0, slow)

    def test_async_consumer_is_not_on_its_producers_path(self) -> None:
        """A message consumed while the producer still runs does not delay it: the producer's
        span is critical, the consumer has its own path."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=50)
        producer = t.span(FE, "send", KIND_PRODUCER, parent=x, start_ms=40, dur_ms=10)
        t.span(WORKER, "consume", KIND_CONSUMER, parent=producer, start_ms=41, dur_ms=8)
        got = shares_by_name(t.spans)
        assert got["x"] == {"fe": (50.0, 0)}
        assert got["consume"] == {"worker": (8.0, 0)}

    def test_clock_skew_is_clipped(self) -> None:
        """A callee whose clock runs early and slow: its server span starts before and ends after
        the client span; its children are clipped with it, a backwards span counts as nothing."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        client = t.client(x, "call", start_ms=20, dur_ms=60)  # 20-80
        cart = t.server(CART, "cart", parent=client, start_ms=10, dur_ms=80)  # 10-90
        t.internal(cart, "early", start_ms=10, dur_ms=20)  # 10-30 -> 20-30
        t.internal(cart, "late", start_ms=60, dur_ms=30)  # 60-90 -> 60-80
        t.internal(cart, "backwards", start_ms=50, dur_ms=-10)
        got = shares_by_name(t.spans)
        assert got["x"] == {"fe": (40.0, 0), "cart": (60.0, 1)}
        assert got["cart"] == {"cart": (80.0, 0)}

    def test_callee_wholly_outside_its_client(self) -> None:
        """A callee whose clock is far off falls outside: the client span's time is still the
        callee's (reaching it), the callee's own span is not walked."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        client = t.client(x, "call", start_ms=20, dur_ms=60)
        cart = t.server(CART, "cart", parent=client, start_ms=200, dur_ms=60)
        t.call(cart, PAY, "pay", start_ms=210, dur_ms=10)
        got = shares_by_name(t.spans)
        assert got["x"] == {"fe": (40.0, 0), "cart": (60.0, 1)}
        assert got["cart"] == {"cart": (48.0, 0), "pay": (12.0, 1)}

    def test_zero_duration_request_has_no_shares(self) -> None:
        """A request lasting nothing has an empty path, not a crash or a division by zero."""
        t = Trace()
        t.server(FE, "x", dur_ms=0)
        assert shares_by_name(t.spans) == {"x": {}}

    def test_past_the_rewalk_budget_a_crossing_child_is_scaled(self) -> None:
        """With no re-walk budget, the clipped callee's own path is scaled to the clipped
        length (exact: cart 10, payment 30) and the total still matches."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        cart = t.call(x, CART, "cart", start_ms=60, dur_ms=100, gap_ms=0)
        t.call(cart, PAY, "pay", start_ms=70, dur_ms=80, gap_ms=0)
        got = shares_by_name(t.spans, rewalk_budget=0)["x"]
        assert got == {"fe": (60.0, 0), "cart": (8.0, 1), "pay": (32.0, 2)}


def worked_example(payment_ms: float = 196) -> list[Span]:
    """The trace of docs/blast-radius.md's critical-path example (payment's server time given:
    everything after it moves with it)."""
    more = payment_ms - 196
    t = Trace()
    fe = t.server(FE, "frontend", method="POST", route="/checkout", dur_ms=300 + more)
    t.internal(fe, "render", start_ms=10, dur_ms=30)
    client = t.client(fe, "call checkout", start_ms=50, dur_ms=240 + more)
    chk = t.server(CHK, "checkout", parent=client, start_ms=52, dur_ms=236 + more)
    t.call(chk, CART, "cart", start_ms=60, dur_ms=38)
    t.call(chk, PAY, "payment", start_ms=60, dur_ms=payment_ms, gap_ms=2)
    return t.spans


def test_the_worked_example_of_the_docs() -> None:
    """docs/blast-radius.md, "Critical path": every number of the example."""
    got = shares_by_name(worked_example())
    assert got["frontend"] == {"fe": (60.0, 0), "chk": (40.0, 1), "pay": (200.0, 2)}
    assert got["checkout"] == {"chk": (36.0, 0), "pay": (200.0, 1)}
    assert got["cart"] == {"cart": (38.0, 0)}
    slower = shares_by_name(worked_example(payment_ms=392))
    assert slower["frontend"]["pay"] == (396.0, 2)
    assert slower["frontend"]["chk"] == got["frontend"]["chk"]
    for payment_ms in (196, 392):  # checkout's self time does not move: 240 - 200 ms both times
        analysis = analyse_trace(worked_example(payment_ms))
        checkout = next(r for r in analysis.requests if r.span.name == "checkout")
        assert checkout.self_time_ms == pytest.approx(40.0)


def _duration_ms(span: Span) -> float:
    return max(span.end_ns - span.start_ns, 0) / 1e6


class TestProperties:
    """Hypothesis properties over arbitrary and well-nested traces."""

    @settings(max_examples=300, deadline=None)
    @given(messy_trace())
    def test_matches_the_oracle(self, spans: list[Span]) -> None:
        """Every request's shares and hops equal those of the brute-force walk."""
        assert shares_by_id(spans) == oracle_shares(spans)

    @settings(max_examples=100, deadline=None)
    @given(programs())
    def test_matches_the_oracle_on_nested_calls(self, program: Program) -> None:
        """Well-nested traces of work and parallel calls agree with the oracle too."""
        spans = build_program(program, lambda _, ms: ms)
        assert shares_by_id(spans) == oracle_shares(spans)

    @settings(max_examples=200, deadline=None)
    @given(messy_trace(), st.integers(0, 2))
    def test_shares_sum_to_the_duration(self, spans: list[Span], budget: int) -> None:
        """Whatever the budget: shares are positive, none above the duration, and they sum to it."""
        for r, shares in critical_shares(analyse_trace(spans), rewalk_budget=budget):
            duration = _duration_ms(r.span)
            assert all(0 < ms <= duration + 1e-9 for _, ms, _ in shares)
            assert sum(ms for _, ms, _ in shares) == pytest.approx(duration, abs=1e-6)
            assert all(hops >= 0 for _, _, hops in shares)

    @settings(max_examples=150, deadline=None)
    @given(messy_trace(), st.randoms(use_true_random=False))
    def test_arrival_order_does_not_matter(self, spans: list[Span], rnd: random.Random) -> None:
        """The same spans in another order give the same shares."""
        shuffled = list(spans)
        rnd.shuffle(shuffled)
        assert shares_by_id(shuffled) == shares_by_id(spans)

    @settings(max_examples=200, deadline=None)
    @given(programs(), st.integers(0, len(RESOURCES) - 1), st.integers(2, 4))
    def test_slower_workload_never_loses_share(
        self, program: Program, slow: int, factor: int
    ) -> None:
        """Stretching everything one workload@revision does (its own work, the network to it)
        by ``factor`` never decreases its share in any request."""
        target = RESOURCES[slow]

        def stretch(res: Resource, ms: int) -> int:
            return ms * factor if res is target else ms

        info = workload_of(target)
        key = (info.workload, info.revision)
        before = shares_by_id(build_program(program, lambda _, ms: ms))
        after = shares_by_id(build_program(program, stretch))
        assert before.keys() == after.keys()
        for sid, shares in before.items():
            assert after[sid].get(key, (0, 0))[0] >= shares.get(key, (0, 0))[0]


class TestScale:
    """Huge and hostile traces: iterative, and linear even when every level is skewed."""

    def test_huge_deep_trace(self) -> None:
        """100,000 spans, a chain of calls 10,000 spans deep plus fan-out."""
        t = Trace()
        levels = 5_000
        workloads = [FE, CHK, CART]
        span = t.server(FE, "hop-0", start_ms=0, dur_ms=4 * levels + 10)
        for level in range(1, levels):
            before = span
            span = t.call(span, workloads[level % 3], f"hop-{level}", start_ms=2 * level - 1,
                          dur_ms=4 * (levels - level) + 8, gap_ms=1)  # fmt: skip
            for leaf in range(19):  # short internal work before the call
                t.internal(before, "work", start_ms=2 * level - 2 + leaf / 20, dur_ms=0.04)
        assert len(t.spans) >= 100_000
        analysis = analyse_trace(t.shuffled(1))
        begin = time.process_time()  # CPU time: the machine running the suite may be busy
        result = critical_shares(analysis)
        elapsed = time.process_time() - begin
        by_name = {r.span.name: (r, shares) for r, shares in result}
        for r, shares in result:
            assert sum(ms for _, ms, _ in shares) == pytest.approx(_duration_ms(r.span), abs=1e-6)
        root_hops = {key: hops for key, _, hops in by_name["hop-0"][1]}
        assert root_hops == {KEYS["fe"]: 0, KEYS["chk"]: 1, KEYS["cart"]: 2}
        deep, deep_shares = by_name[f"hop-{levels - 1}"]
        assert deep.depth == levels - 1 and [hops for *_, hops in deep_shares] == [0]
        assert elapsed < 20.0, elapsed  # linear: about a second; quadratic would take hours

    def test_skew_growing_at_every_level_stays_linear(self) -> None:
        """10,000 nested requests, each starting 1 ms before its parent: every subtree crosses
        every ancestor, which the re-walk budget keeps linear; the shares still add up."""
        t = Trace()
        depth = 10_000
        span = t.server(FE, "s0", start_ms=0, dur_ms=depth + 100)
        for level in range(1, depth):
            span = t.span(RESOURCES[level % 4], f"s{level}", 2, parent=span,  # SERVER
                          start_ms=-level, dur_ms=depth + 100 - level)  # fmt: skip
        t.internal(span, "leaf", start_ms=-depth, dur_ms=5)
        analysis = analyse_trace(t.spans)
        begin = time.process_time()
        result = critical_shares(analysis)
        elapsed = time.process_time() - begin
        for r, shares in result:
            assert sum(ms for _, ms, _ in shares) == pytest.approx(_duration_ms(r.span), abs=1e-6)
            assert all(ms > 0 for _, ms, _ in shares)
        assert elapsed < 5.0, elapsed  # about 0.3 s; exact re-walks everywhere take ~15 s

    def test_no_server_spans_orphans_and_unknown_kinds(self) -> None:
        """Orphans, a trace with no SERVER span (its roots are the requests), unknown kinds."""
        t = Trace()
        root = t.span(FE, "root", KIND_INTERNAL, dur_ms=30)
        t.span(FE, "odd", 42, parent=root, start_ms=5, dur_ms=10)
        t.span(CART, "orphan", KIND_INTERNAL, parent_id=b"\x09" * 8, start_ms=0, dur_ms=7)
        got = shares_by_name(t.spans)
        assert got == {"root": {"fe": (30.0, 0)}, "orphan": {"cart": (7.0, 0)}}
