"""Where a self-time regression went: own code, transit, or the callers' own slowness."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import Aggregates, RevisionStats, TransitStats
from podtrace_collector.query.control import (
    CALLER,
    OWN_CODE,
    TRANSIT,
    CallerTransit,
    callers_of,
)
from podtrace_collector.query.verdict import HEALTHY, REGRESSED, decide

FE, API = "shop/frontend", "shop/api"


def _hist(center: float, n: int) -> Histogram:
    """``n`` values spread +-30 % around ``center``."""
    h = Histogram()
    for i in range(n):
        h.add(center * (0.7 + 0.6 * i / max(n - 1, 1)))
    return h


def _stats(n: int, own_ms: float, transit_ms: float) -> RevisionStats:
    """``n`` requests whose self time is ``own_ms + transit_ms``."""
    return RevisionStats(
        requests=n, self_time=_hist(own_ms + transit_ms, n), own_time=_hist(own_ms, n)
    )


def _caller(
    name: str,
    to_rev: float,
    to_base: float,
    others: tuple[float, float] | None,
    n: int = 30,
) -> CallerTransit:
    """A caller's transit to the revision / baseline and to its other callees (now, before)."""
    other = (_hist(others[0], n), _hist(others[1], n)) if others else (Histogram(), Histogram())
    return CallerTransit(name, _hist(to_rev, n), _hist(to_base, n), lambda: other)


class TestLocate:
    def test_own_code(self) -> None:
        """Own time ten times longer: regressed, in its own code, whatever the callers did."""
        callers = [_caller(FE, 50.0, 5.0, (50.0, 5.0))]
        v = decide(_stats(30, 100.0, 5.0), _stats(30, 10.0, 5.0), callers=callers, control=True)
        assert v.verdict == REGRESSED and v.latency is not None
        assert v.latency.where == OWN_CODE and v.latency_regressed
        assert "in its own code: own time median" in v.reasons[0]
        assert v.reasons[0].startswith("self time median")

    def test_the_callers_own_slowness_is_excused(self) -> None:
        """Only transit grew, and the caller got as much slower on its other calls: healthy."""
        callers = [_caller(FE, 60.0, 5.0, (58.0, 5.0))]
        v = decide(_stats(30, 10.0, 60.0), _stats(30, 10.0, 5.0), callers=callers, control=True)
        assert v.verdict == HEALTHY and v.latency is not None
        assert v.latency.where == CALLER
        assert not v.latency_regressed  # excused: no latency blast radius either
        assert v.reasons[0].startswith("self time median")
        assert "the callers' own slowness" in v.reasons[0]
        assert "shop/frontend's transit to it, median" in v.reasons[0]
        assert "its other calls, median" in v.reasons[0]
        [finding] = v.latency.callers
        assert finding.slower_everywhere and finding.others is not None

    def test_a_canary_needs_no_control(self) -> None:
        """The same numbers measured alongside (a canary): the slowdown is the revision's."""
        callers = [_caller(FE, 60.0, 5.0, (58.0, 5.0))]
        v = decide(_stats(30, 10.0, 60.0), _stats(30, 10.0, 5.0), callers=callers, control=False)
        assert v.verdict == REGRESSED and v.latency is not None
        assert v.latency.where == TRANSIT and v.latency_regressed
        assert "in transit (slower to reach)" in v.reasons[0]
        assert "shop/frontend's transit to it" in v.reasons[0]

    def test_slow_to_reach_stays_regressed(self) -> None:
        """The caller's other calls did not slow: the revision's pods are slow to reach."""
        callers = [_caller(FE, 60.0, 5.0, (5.0, 5.0))]
        v = decide(_stats(30, 10.0, 60.0), _stats(30, 10.0, 5.0), callers=callers, control=True)
        assert v.verdict == REGRESSED and v.latency is not None
        assert v.latency.where == TRANSIT
        assert "transit" in v.reasons[0] and "slower to reach" in v.reasons[0]
        assert "but its other calls, median" in v.reasons[0]

    def test_a_caller_calling_nothing_else_cannot_excuse(self) -> None:
        """No other calls to compare with: the regression stays on the revision."""
        callers = [_caller(FE, 60.0, 5.0, None)]
        v = decide(_stats(30, 10.0, 60.0), _stats(30, 10.0, 5.0), callers=callers, control=True)
        assert v.verdict == REGRESSED
        assert "it calls nothing else" in v.reasons[0]

    def test_too_few_other_calls_cannot_excuse(self) -> None:
        """Three other calls a side cannot decide: regressed."""
        other = (_hist(60.0, 3), _hist(5.0, 3))
        caller = CallerTransit(FE, _hist(60.0, 30), _hist(5.0, 30), lambda: other)
        v = decide(_stats(30, 10.0, 60.0), _stats(30, 10.0, 5.0), callers=[caller], control=True)
        assert v.verdict == REGRESSED
        assert "too few other calls" in v.reasons[0]

    def test_every_worse_caller_must_be_slower_everywhere(self) -> None:
        """One starved caller and one healthy caller both seeing it slower: regressed."""
        callers = [_caller(FE, 60.0, 5.0, (58.0, 5.0)), _caller(API, 60.0, 5.0, (5.0, 5.0))]
        v = decide(_stats(60, 10.0, 60.0), _stats(60, 10.0, 5.0), callers=callers, control=True)
        assert v.verdict == REGRESSED and v.latency is not None
        assert {f.caller: f.slower_everywhere for f in v.latency.callers} == {FE: True, API: False}

    def test_callers_without_a_worse_transit_do_not_excuse(self) -> None:
        """A caller whose transit to it did not change is no witness either way."""
        callers = [_caller(FE, 5.0, 5.0, (58.0, 5.0))]
        v = decide(_stats(30, 10.0, 60.0), _stats(30, 10.0, 5.0), callers=callers, control=True)
        assert v.verdict == REGRESSED
        assert "no single caller's transit to it" in v.reasons[0]

    def test_other_calls_barely_slower_are_not_equally_slower(self) -> None:
        """Other calls 2 ms -> 3 ms while transit to it went 5 -> 60 ms: not the caller's."""
        callers = [_caller(FE, 60.0, 5.0, (3.0, 2.0))]
        v = decide(_stats(30, 10.0, 60.0), _stats(30, 10.0, 5.0), callers=callers, control=True)
        assert v.verdict == REGRESSED
        assert "far less added time" in v.reasons[0]

    def test_own_time_not_recorded_is_not_split(self) -> None:
        """Data without own times (recorded before they were): regressed, said not split."""
        cur, base = _stats(30, 10.0, 60.0), _stats(30, 10.0, 5.0)
        cur.own_time = base.own_time = Histogram()
        v = decide(cur, base, callers=[_caller(FE, 60.0, 5.0, (58.0, 5.0))], control=True)
        assert v.verdict == REGRESSED and v.latency is not None and v.latency.where == ""
        assert "not split" in v.reasons[0]

    def test_errors_still_decide_when_latency_is_excused(self) -> None:
        """An excused slowdown does not hide an error regression."""
        cur, base = _stats(300, 10.0, 60.0), _stats(300, 10.0, 5.0)
        cur.origin_errors = 60
        callers = [_caller(FE, 60.0, 5.0, (58.0, 5.0))]
        v = decide(cur, base, callers=callers, control=True)
        assert v.verdict == REGRESSED
        assert v.reasons[0].startswith("origin error rate")
        assert any("the callers' own slowness" in r for r in v.reasons)


@settings(deadline=None, max_examples=200)
@given(
    st.floats(1.0, 100.0),
    st.floats(1.0, 100.0),
    st.floats(0.0, 100.0),
    st.floats(0.0, 100.0),
    st.floats(0.5, 100.0),
    st.floats(0.5, 100.0),
    st.booleans(),
)
def test_the_control_only_excuses(
    own_a: float,
    own_b: float,
    transit_a: float,
    transit_b: float,
    other_now: float,
    other_before: float,
    control: bool,
) -> None:
    """With callers, a verdict is the one without them, or healthy instead of regressed."""
    cur, base = _stats(20, own_a, transit_a), _stats(20, own_b, transit_b)
    callers = [_caller(FE, transit_a + 0.1, transit_b + 0.1, (other_now, other_before), n=20)]
    plain = decide(cur, base).verdict
    with_callers = decide(cur, base, callers=callers, control=control).verdict
    assert with_callers == plain or (plain, with_callers) == (REGRESSED, HEALTHY)
    swapped = decide(base, cur, callers=callers, control=control).verdict
    assert (with_callers, swapped) != (REGRESSED, REGRESSED)


def test_callers_of_reads_each_window() -> None:
    """Transit to the revision from the revision's window, to the baseline from the other one;
    other calls exclude every revision of the workload."""
    now, before = Aggregates(), Aggregates()
    for agg, key, h in (
        (now, ("shop/cart", "new", FE), _hist(50.0, 3)),
        (now, ("shop/cart", "old", FE), _hist(1.0, 9)),  # the canary side: not its baseline
        (now, ("shop/pay", "p1", FE), _hist(7.0, 4)),
        (now, ("shop/pay", "p1", API), _hist(7.0, 4)),  # not a cart caller
        (before, ("shop/cart", "old", FE), _hist(5.0, 5)),
        (before, ("shop/pay", "p1", FE), _hist(6.0, 6)),
        (before, ("shop/pay", "p0", FE), _hist(6.0, 2)),
    ):
        agg.transit[key] = TransitStats(h.total, h)
        out = agg.transit_out.setdefault((key[2], "r1"), TransitStats())
        out.merge(TransitStats(h.total, h))
    [fe] = callers_of("shop/cart", "new", "old", now, before)
    assert fe.caller == FE
    assert (fe.to_revision.total, fe.to_baseline.total) == (3, 5)
    others_now, others_before = fe.other_calls()
    # Its total less its calls to every revision of cart: pay's 4 now, pay's 8 before.
    assert (others_now.total, others_before.total) == (4, 8)
    assert others_now == _hist(7.0, 4)
