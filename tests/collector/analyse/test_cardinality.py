"""The cap on workload-revisions first seen per minute, and what the Analyzer does past it."""

from __future__ import annotations

from podtrace_collector.analyse.analyzer import Analyzer
from podtrace_collector.analyse.cardinality import FORGET_AFTER_S, SWEEP_EVERY_S, RevisionCap

from tests.collector.analyse.tracebuilder import Clock, Trace, deployment


def keys(*names: str) -> set[tuple[str, str]]:
    return {(f"ns/{n}", "r1") for n in names}


class TestRevisionCap:
    def test_admits_up_to_the_cap_per_minute(self) -> None:
        """Three new a minute: the fourth waits for the next minute."""
        clock = Clock(1000.0)
        cap = RevisionCap(3, clock=clock)
        assert all(cap.admit(keys(n)) for n in "abc")
        assert not cap.admit(keys("d"))
        clock.now += 59
        assert not cap.admit(keys("d"))
        clock.now += 1
        assert cap.admit(keys("d"))
        assert cap.registered == 4 and len(cap) == 4

    def test_known_ones_always_pass(self) -> None:
        """Past the cap, traces naming only known workload-revisions still pass."""
        cap = RevisionCap(1, clock=Clock(1000.0))
        assert cap.admit(keys("a"))
        assert not cap.admit(keys("b"))
        assert cap.admit(keys("a"))

    def test_a_trace_is_admitted_whole_or_not_at_all(self) -> None:
        """Two new ones when one is left: refused, and neither is registered."""
        cap = RevisionCap(2, clock=Clock(1000.0))
        assert cap.admit(keys("a"))
        assert not cap.admit(keys("b", "c"))
        assert cap.registered == 1 and len(cap) == 1
        assert cap.admit(keys("b"))

    def test_seeded_ones_are_not_new(self) -> None:
        """Workload-revisions the store already has do not use the allowance."""
        cap = RevisionCap(1, known=keys("a", "b", "c"), clock=Clock(1000.0))
        assert cap.admit(keys("a", "b", "c")) and cap.registered == 0
        assert cap.admit(keys("d")) and not cap.admit(keys("e"))

    def test_idle_ones_are_forgotten(self) -> None:
        """A workload-revision silent for a day is forgotten (memory stays bounded)."""
        clock = Clock(1000.0)
        cap = RevisionCap(10, clock=clock)
        cap.admit(keys("old"))
        clock.now += FORGET_AFTER_S / 2
        cap.admit(keys("recent"))
        clock.now += FORGET_AFTER_S / 2 + SWEEP_EVERY_S
        cap.admit(keys("now"))
        assert len(cap) == 2  # "old" is gone; "recent" and "now" remain
        assert cap.registered == 3


def _trace(workload: str, *, callee: str | None = None) -> Trace:
    t = Trace()
    root = t.server(deployment("ns", workload, "r1"), "GET /", method="GET", route="/")
    if callee is not None:
        t.call(root, deployment("ns", callee, "r1"), "GET /x")
    return t


class TestAnalyzerPastTheCap:
    def test_over_the_cap_traces_count_in_totals_only(self) -> None:
        """Traces naming new workloads past the cap: in the minute's totals and the capped
        counters, with no registry entry, request, edge or entry operation."""
        analyzer = Analyzer(cap=RevisionCap(2, clock=Clock(1000.0)))
        admitted = _trace("frontend", callee="cart")
        analyzer.on_trace(admitted.spans, late=False)
        refused = [_trace(f"fake-{i}", callee="cart") for i in range(5)]
        for t in refused:
            analyzer.on_trace(t.spans, late=False)
        analyzer.on_trace(_trace("frontend", callee="cart").spans, late=False)  # known: analysed
        ((_, agg),) = analyzer.drain().items()
        assert set(agg.revisions) == {("ns/frontend", "r1"), ("ns/cart", "r1")}
        assert agg.revisions[("ns/frontend", "r1")].requests == 2
        assert set(agg.edges) == {("ns/frontend", "ns/cart")}
        assert set(agg.entry_totals) == {("ns/frontend", "GET /")}
        totals = agg.totals[()]
        assert (totals.traces, totals.spans) == (7, 7 * len(admitted.spans))
        assert (analyzer.capped_traces, analyzer.capped_spans) == (5, 5 * len(admitted.spans))
        assert analyzer.traces == 2 and analyzer.registered_revisions == 2

    def test_without_a_cap_everything_is_analysed(self) -> None:
        """No cap (tests, benchmarks): every workload is registered."""
        analyzer = Analyzer()
        for i in range(50):
            analyzer.on_trace(_trace(f"w{i}").spans, late=False)
        ((_, agg),) = analyzer.drain().items()
        assert len(agg.revisions) == 50 and analyzer.capped_traces == 0
