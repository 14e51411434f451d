"""The verdict: which test decides, small samples, and when there is too little data."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector.aggregate.histogram import Histogram, bucket_of
from podtrace_collector.aggregate.stats import RevisionStats
from podtrace_collector.query.stats import (
    FISHER,
    MANN_WHITNEY_EXACT,
    MANN_WHITNEY_NORMAL,
    fisher_greater,
    mann_whitney_test,
)
from podtrace_collector.query.verdict import (
    HEALTHY,
    INSUFFICIENT_DATA,
    MIN_SIDE_REQUESTS,
    REGRESSED,
    decide,
)


def _hist(values: list[float]) -> Histogram:
    h = Histogram()
    for v in values:
        h.add(v)
    return h


def _stats(requests: int, origin_errors: int, self_ms: list[float] | None = None) -> RevisionStats:
    st_ = RevisionStats(requests=requests, errors=origin_errors, origin_errors=origin_errors)
    st_.self_time = _hist(self_ms if self_ms is not None else [10.0] * requests)
    st_.latency = Histogram(st_.self_time.counts)
    return st_


def _spread(center: float, n: int) -> list[float]:
    """n self times spread +-30 % around ``center``."""
    return [center * (0.7 + 0.6 * i / max(n - 1, 1)) for i in range(n)]


def _mw_p(cur: RevisionStats, base: RevisionStats) -> float:
    return mann_whitney_test(cur.self_time.counts, base.self_time.counts).p_value


class TestDecide:
    def test_regressed_by_origin_errors(self) -> None:
        """10 % origin errors against 0.2 % is a regression, with Fisher's p."""
        cur, base = _stats(1000, 100), _stats(1000, 2)
        v = decide(cur, base)
        assert v.verdict == REGRESSED
        assert v.p_value == pytest.approx(fisher_greater(100, 900, 2, 998))
        assert v.reasons[0].startswith("origin error rate 10.00% vs 0.20%")
        assert f"({FISHER} p=" in v.reasons[0]

    def test_one_new_error_is_not_a_regression(self) -> None:
        """A single error cannot make the error test decide; the self-time test finds nothing."""
        cur, base = _stats(100, 1, _spread(10.0, 100)), _stats(100, 0, _spread(10.0, 100))
        v = decide(cur, base)
        assert v.verdict == HEALTHY
        assert v.p_value == pytest.approx(_mw_p(cur, base))
        assert any("origin error rate cannot decide" in r and "p=0.5" in r for r in v.reasons)

    def test_no_failures_on_either_side_is_said_plainly(self) -> None:
        """Without a failure anywhere the error test has nothing to weigh: said in words, not as
        the p-value that no outcome could beat; the self-time test still decides."""
        cur, base = _stats(100, 0, _spread(30.0, 100)), _stats(100, 0, _spread(10.0, 100))
        v = decide(cur, base)
        assert v.verdict == REGRESSED
        assert "origin error rate cannot decide: no origin failures on either side" in v.reasons
        assert not any("every failure" in r for r in v.reasons)

    def test_significant_but_immaterial_error_increase_is_healthy(self) -> None:
        """0.13 % vs 0.10 % over a million requests is significant but below the effect floor."""
        cur, base = _stats(1_000_000, 1300, []), _stats(1_000_000, 1000, [])
        assert fisher_greater(1300, 998_700, 1000, 999_000) < 0.01
        assert decide(cur, base).verdict == HEALTHY

    def test_regressed_by_self_time(self) -> None:
        """Self time twice as long, no new errors: regressed by Mann-Whitney."""
        cur, base = _stats(40, 0, _spread(20.0, 40)), _stats(40, 0, _spread(10.0, 40))
        v = decide(cur, base)
        assert v.verdict == REGRESSED
        assert v.p_value == pytest.approx(_mw_p(cur, base))
        assert v.reasons[0].startswith("self time median")
        assert v.latency_regressed

    def test_an_error_regression_alone_is_no_latency_regression(self) -> None:
        """Regressed by errors with unchanged self times: the latency test did not decide."""
        cur, base = _stats(1000, 100, _spread(10.0, 1000)), _stats(1000, 2, _spread(10.0, 1000))
        v = decide(cur, base)
        assert v.verdict == REGRESSED and not v.latency_regressed

    def test_small_latency_shift_is_immaterial(self) -> None:
        """10 % slower is significant over many requests but below the 20 % effect floor."""
        cur, base = _stats(2000, 0, [11.0] * 2000), _stats(2000, 0, [10.0] * 2000)
        assert bucket_of(11.0) != bucket_of(10.0)
        assert _mw_p(cur, base) < 0.01
        assert decide(cur, base).verdict == HEALTHY

    def test_p95_alone_can_be_material(self) -> None:
        """A slow tail (p95 up, median unchanged) is a material self-time regression."""
        base_ms = [10.0] * 200
        cur_ms = [10.0] * 170 + [50.0] * 30
        v = decide(_stats(200, 0, cur_ms), _stats(200, 0, base_ms))
        assert v.verdict == REGRESSED
        assert "p95" in v.reasons[0] and "median" not in v.reasons[0]
        assert f"({MANN_WHITNEY_NORMAL} p=" in v.reasons[0]

    def test_both_tests_deciding_reports_the_smaller_p(self) -> None:
        """When errors and self time both regress, p is the smaller of the two."""
        cur, base = _stats(300, 60, _spread(30.0, 300)), _stats(300, 0, _spread(10.0, 300))
        v = decide(cur, base)
        p_err = fisher_greater(60, 240, 0, 300)
        assert v.verdict == REGRESSED and len(v.reasons) == 2 and v.latency_regressed
        assert v.p_value == pytest.approx(min(p_err, _mw_p(cur, base)))

    def test_healthy_names_every_test_that_could_decide(self) -> None:
        """Healthy: the smallest p of the tests that could decide, each named with its p."""
        cur, base = _stats(100, 8, _spread(10.0, 100)), _stats(100, 6, _spread(10.4, 100))
        v = decide(cur, base)
        assert v.verdict == HEALTHY
        assert v.p_value == pytest.approx(min(fisher_greater(8, 92, 6, 94), _mw_p(cur, base)))
        assert "origin error rate: Fisher exact p=" in v.reasons[0]
        assert "self time: Mann-Whitney" in v.reasons[0]

    def test_first_revision_has_no_baseline(self) -> None:
        """Without a baseline there is nothing to compare: insufficient_data."""
        v = decide(_stats(1000, 500), None)
        assert (v.verdict, v.p_value) == (INSUFFICIENT_DATA, None)
        assert "first revision" in v.reasons[0]

    def test_missing_self_times_leave_the_error_test_to_decide(self) -> None:
        """Requests without recorded self time do not block the count test."""
        v = decide(_stats(1000, 100, []), _stats(1000, 2, []))
        assert v.verdict == REGRESSED
        assert v.p_value == pytest.approx(fisher_greater(100, 900, 2, 998))
        assert any("self time cannot decide: recorded for fewer" in r for r in v.reasons)


class TestSmallSamples:
    def test_six_requests_ten_times_slower_is_regressed(self) -> None:
        """Six requests a side, every one ten times slower: exact p = 1/924."""
        v = decide(_stats(6, 0, _spread(100.0, 6)), _stats(6, 0, _spread(10.0, 6)))
        assert v.verdict == REGRESSED
        assert v.p_value == pytest.approx(1 / 924)
        assert f"({MANN_WHITNEY_EXACT} p=0.00108)" in v.reasons[0]

    def test_five_a_side_ten_times_slower_is_regressed(self) -> None:
        """The smallest samples judged: five a side, exact p = 1/252."""
        v = decide(_stats(5, 0, _spread(100.0, 5)), _stats(5, 0, _spread(10.0, 5)))
        assert (v.verdict, v.p_value) == (REGRESSED, pytest.approx(1 / 252))

    def test_six_requests_unchanged_is_healthy(self) -> None:
        """The same six-request service, unchanged: judged, and not regressed."""
        v = decide(_stats(6, 0, _spread(10.0, 6)), _stats(6, 0, _spread(10.0, 6)))
        assert v.verdict == HEALTHY and v.p_value is not None and v.p_value > 0.3

    def test_six_requests_all_failing_is_regressed(self) -> None:
        """Six of six failing against none of six: Fisher p = 1/924."""
        v = decide(_stats(6, 6, _spread(10.0, 6)), _stats(6, 0, _spread(10.0, 6)))
        assert (v.verdict, v.p_value) == (REGRESSED, pytest.approx(1 / 924))

    @pytest.mark.parametrize(
        ("cur_n", "base_n"),
        [(MIN_SIDE_REQUESTS - 1, 1000), (1000, MIN_SIDE_REQUESTS - 1), (0, 0)],
    )
    def test_fewer_than_five_requests_a_side(self, cur_n: int, base_n: int) -> None:
        """Fewer than five requests on either side: no verdict, no p-value."""
        cur = _stats(cur_n, cur_n, _spread(100.0, cur_n))
        v = decide(cur, _stats(base_n, 0, _spread(10.0, base_n)))
        assert (v.verdict, v.p_value) == (INSUFFICIENT_DATA, None)
        assert f"at least {MIN_SIDE_REQUESTS} are needed" in v.reasons[0]

    def test_no_outcome_could_reach_significance(self) -> None:
        """No errors and every self time in one bin: neither test can decide either way."""
        v = decide(_stats(50, 0, [10.0] * 50), _stats(50, 0, [10.0] * 50))
        assert (v.verdict, v.p_value) == (INSUFFICIENT_DATA, None)
        assert [r.split(" cannot decide")[0] for r in v.reasons] == [
            "origin error rate",
            "self time",
        ]

    def test_ties_across_the_extreme_leave_too_little(self) -> None:
        """Revision's 5 self times tied with 4 of the baseline's 5: at best p = 126/252."""
        v = decide(_stats(5, 0, [40.0] * 5), _stats(5, 0, [40.0] * 4 + [10.0]))
        assert (v.verdict, v.p_value) == (INSUFFICIENT_DATA, None)
        assert "self time cannot decide" in v.reasons[1] and "p=0.5 " in v.reasons[1]

    def test_one_test_able_to_decide_is_enough(self) -> None:
        """Errors cannot decide (one in all), self time can: a healthy verdict, with a note."""
        v = decide(_stats(8, 1, _spread(10.0, 8)), _stats(8, 0, _spread(10.5, 8)))
        assert v.verdict == HEALTHY
        assert v.reasons[0].startswith("no significant, material regression (self time:")
        assert "origin error rate cannot decide" in v.reasons[1]


class TestAntisymmetry:
    def test_a_baseline_that_fails_more_is_no_latency_yardstick(self) -> None:
        """Slower than a baseline whose requests fail fast: not regressed, and said why."""
        cur = _stats(200, 0, _spread(20.0, 200))
        base = _stats(200, 80, _spread(10.0, 200))
        v = decide(cur, base)
        assert v.verdict == HEALTHY and not v.latency_regressed
        assert any("not counted: the baseline fails more" in r for r in v.reasons)
        assert decide(base, cur).verdict == REGRESSED

    @settings(deadline=None, max_examples=300)
    @given(
        st.tuples(st.integers(0, 80), st.integers(0, 80)),
        st.tuples(st.integers(0, 80), st.integers(0, 80)),
        st.floats(1.0, 100.0),
        st.floats(1.0, 100.0),
        st.floats(0.0, 1.0),
    )
    def test_swapping_the_new_revision_never_makes_both_regressed(
        self,
        a: tuple[int, int],
        b: tuple[int, int],
        a_ms: float,
        b_ms: float,
        spread: float,
    ) -> None:
        """decide(a, b) and decide(b, a) are never both regressed."""
        (na, ka), (nb, kb) = a, b
        sa = _stats(na, min(ka, na), [a_ms * (1 + spread * (i % 7)) for i in range(na)])
        sb = _stats(nb, min(kb, nb), [b_ms * (1 + spread * (i % 5)) for i in range(nb)])
        assert (decide(sa, sb).verdict, decide(sb, sa).verdict) != (REGRESSED, REGRESSED)


@pytest.mark.parametrize(
    ("cur", "base", "verdict"),
    [
        ((1200, 230), (1000, 2), REGRESSED),
        ((1000, 13), (1000, 2), REGRESSED),
        ((1000, 7), (1000, 2), HEALTHY),
        ((50, 1), (50, 0), INSUFFICIENT_DATA),
        ((1_000_000, 1300), (1_000_000, 1000), HEALTHY),
        ((12, 6), (12, 0), REGRESSED),
        ((1000, 500), (4, 0), INSUFFICIENT_DATA),
    ],
)
def test_the_table_in_the_docs(cur: tuple[int, int], base: tuple[int, int], verdict: str) -> None:
    """The examples in docs/blast-radius.md decide as the page says (no self times recorded)."""
    assert decide(_stats(*cur, []), _stats(*base, [])).verdict == verdict
