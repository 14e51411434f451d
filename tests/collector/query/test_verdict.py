"""Fisher's exact test, the Mann-Whitney U test and the verdict they decide."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector.aggregate.histogram import Histogram, bucket_of
from podtrace_collector.aggregate.stats import RevisionStats
from podtrace_collector.query.verdict import (
    HEALTHY,
    INSUFFICIENT_DATA,
    MIN_REQUESTS,
    REGRESSED,
    decide,
    fisher_greater,
    mann_whitney_greater,
)


def _fisher_brute(a: int, b: int, c: int, d: int) -> float:
    """P(X >= a) by exact rational summation of the hypergeometric distribution."""
    n_row, n_col, total = a + b, a + c, a + b + c + d
    hi = min(n_row, n_col)
    num = sum(math.comb(n_col, k) * math.comb(total - n_col, n_row - k) for k in range(a, hi + 1))
    return float(Fraction(num, math.comb(total, n_row)))


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


class TestFisher:
    @pytest.mark.parametrize(
        ("table", "expected"),
        [
            # Fisher's lady tasting tea: 3 of 4 cups right, one-sided p = 17/70.
            ((3, 1, 1, 3), 17 / 70),
            ((4, 0, 0, 4), 1 / 70),
            # The dieting example (Wikipedia): the observed table has probability
            # 10 * 364 / 2704156 = 0.001346, the one more extreme 91 / 2704156; together:
            ((11, 3, 1, 9), 3731 / 2704156),
            ((0, 10, 0, 10), 1.0),
            ((0, 0, 0, 0), 1.0),
            ((5, 0, 0, 0), 1.0),
        ],
    )
    def test_textbook_tables(self, table: tuple[int, int, int, int], expected: float) -> None:
        """Known one-sided p-values are reproduced."""
        assert fisher_greater(*table) == pytest.approx(expected, rel=1e-4)

    def test_every_small_table_matches_brute_force(self) -> None:
        """All tables with cells up to 6 agree with exact rational summation."""
        for table in itertools.product(range(7), repeat=4):
            assert fisher_greater(*table) == pytest.approx(_fisher_brute(*table), rel=1e-9), table

    @pytest.mark.parametrize(
        "table",
        [
            (45, 9_955, 20, 9_980),
            (90, 9_910, 20, 9_980),
            (2, 9_998, 1, 29_999),
            (50, 950, 40, 960),
        ],
    )
    def test_large_counts_match_brute_force(self, table: tuple[int, int, int, int]) -> None:
        """Exact for large tables too (no normal approximation, no overflow)."""
        assert fisher_greater(*table) == pytest.approx(_fisher_brute(*table), rel=1e-9)

    def test_very_large_counts_match_a_full_log_space_sum(self) -> None:
        """Half a million requests a side: every tail term summed independently via lgamma."""
        a, b, c, d = 700, 499_300, 500, 499_500
        n_row, n_col, total = a + b, a + c, a + b + c + d

        def log_comb(n: int, k: int) -> float:
            return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

        log_den = log_comb(total, n_row)
        terms = [
            math.exp(log_comb(n_col, k) + log_comb(total - n_col, n_row - k) - log_den)
            for k in range(a, min(n_row, n_col) + 1)
        ]
        expected = math.fsum(terms)
        assert 1e-12 < expected < 1e-6
        assert fisher_greater(a, b, c, d) == pytest.approx(expected, rel=1e-6)

    def test_extreme_table_underflows_to_zero_not_nan(self) -> None:
        """A p-value below the smallest double is 0.0, never NaN or negative."""
        p = fisher_greater(1000, 0, 0, 1000)
        assert 0.0 <= p < 1e-300

    def test_negative_counts_are_rejected(self) -> None:
        """A negative cell is a programming error, reported as such."""
        with pytest.raises(ValueError, match="negative"):
            fisher_greater(-1, 2, 3, 4)

    @settings(deadline=None)
    @given(
        st.integers(0, 400),
        st.integers(0, 400),
        st.integers(0, 400),
        st.integers(0, 400),
    )
    def test_p_is_a_probability(self, a: int, b: int, c: int, d: int) -> None:
        """Every p-value is in [0, 1]."""
        assert 0.0 <= fisher_greater(a, b, c, d) <= 1.0

    @settings(deadline=None)
    @given(st.integers(1, 3000), st.integers(0, 3000), st.integers(1, 3000), st.integers(0, 3000))
    def test_monotone_in_the_error_count(self, n1: int, k1: int, n0: int, k0: int) -> None:
        """More errors among the revision's requests never raise the p-value."""
        k1, k0 = min(k1, n1 - 1), min(k0, n0)
        fewer = fisher_greater(k1, n1 - k1, k0, n0 - k0)
        more = fisher_greater(k1 + 1, n1 - k1 - 1, k0, n0 - k0)
        assert more <= fewer * (1 + 1e-9) + 1e-15


def _mwu_brute(x: list[int], y: list[int]) -> float:
    """Pairwise U, permutation variance of the mid-rank sum, normal tail with continuity."""
    u = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)
    pooled = sorted(x + y)
    ranks = {v: (pooled.index(v) + 1 + len(pooled) - pooled[::-1].index(v)) / 2 for v in pooled}
    n1, n2, n = len(x), len(y), len(pooled)
    mean_rank = (n + 1) / 2
    var = n1 * n2 / (n * (n - 1)) * sum((ranks[v] - mean_rank) ** 2 for v in pooled)
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(var)
    return 1 - NormalDist().cdf(z)


def _mwu_exact(x: list[int], y: list[int]) -> float:
    """The exact permutation p-value P(rank sum of x >= observed), by dynamic programming."""
    pooled = sorted(x + y)
    n, n1 = len(pooled), len(x)
    # Doubled mid-ranks are integers.
    twice = {v: pooled.index(v) + 1 + n - pooled[::-1].index(v) for v in pooled}
    observed = sum(twice[v] for v in x)
    ways: list[dict[int, int]] = [{0: 1}] + [{} for _ in range(n1)]
    for v in pooled:
        for j in range(n1, 0, -1):
            for s, c in ways[j - 1].items():
                ways[j][s + twice[v]] = ways[j].get(s + twice[v], 0) + c
    total = math.comb(n, n1)
    return sum(c for s, c in ways[n1].items() if s >= observed) / total


def _bins(values: list[int]) -> Histogram:
    """A histogram holding each value as a bin index (the test compares bins, not ms)."""
    h = Histogram()
    for v in values:
        h.counts[v] = h.counts.get(v, 0) + 1
        h.total += 1
    return h


class TestMannWhitney:
    @pytest.mark.parametrize(
        ("x", "y"),
        [
            ([5, 6, 7, 8, 9], [1, 2, 3, 4, 5]),
            ([1, 1, 2, 2, 3], [1, 2, 2, 3, 3, 3]),
            ([3, 3, 3, 3], [3, 3, 3, 4]),
            ([10, 20, 30], [15, 25, 35, 45]),
            ([1, 2, 3, 4], [4, 5, 6]),
        ],
    )
    def test_matches_brute_force_ranks(self, x: list[int], y: list[int]) -> None:
        """Bin ranks with ties give the same p as pairwise U and a permutation variance."""
        assert mann_whitney_greater(_bins(x), _bins(y)) == pytest.approx(_mwu_brute(x, y), rel=1e-9)

    def test_close_to_the_exact_test_at_twenty_per_side(self) -> None:
        """At n = 20 per side with ties, the approximation is within 0.01 of the exact p."""
        x = [3, 4, 4, 5, 5, 5, 6, 6, 7, 7, 8, 8, 8, 9, 9, 10, 11, 11, 12, 13]
        y = [1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6, 6, 7, 7, 8, 9, 9, 10, 10, 11]
        exact = _mwu_exact(x, y)
        assert 0.001 < exact < 0.2
        assert mann_whitney_greater(_bins(x), _bins(y)) == pytest.approx(exact, abs=0.01)

    def test_all_tied_or_empty_is_no_evidence(self) -> None:
        """Identical constant samples, or an empty side, give p = 1."""
        assert mann_whitney_greater(_bins([4] * 30), _bins([4] * 30)) == 1.0
        assert mann_whitney_greater(Histogram(), _bins([1, 2])) == 1.0

    def test_direction(self) -> None:
        """Slower x gives a small p; faster x gives a p near 1."""
        slow, fast = _hist([20.0 + i for i in range(30)]), _hist([10.0 + i for i in range(30)])
        assert mann_whitney_greater(slow, fast) < 0.01
        assert mann_whitney_greater(fast, slow) > 0.99

    @settings(deadline=None)
    @given(
        st.lists(st.integers(-50, 50), min_size=1, max_size=60),
        st.lists(st.integers(-50, 50), min_size=1, max_size=60),
    )
    def test_p_is_a_probability(self, x: list[int], y: list[int]) -> None:
        """Every p-value is in [0, 1]."""
        assert 0.0 <= mann_whitney_greater(_bins(x), _bins(y)) <= 1.0

    @settings(deadline=None)
    @given(
        st.lists(st.integers(0, 40), min_size=2, max_size=40),
        st.lists(st.integers(0, 40), min_size=2, max_size=40),
    )
    def test_shifting_x_up_never_raises_p(self, x: list[int], y: list[int]) -> None:
        """Making the revision slower can only strengthen the evidence."""
        shifted = [v + 5 for v in x]
        assert (
            mann_whitney_greater(_bins(shifted), _bins(y))
            <= mann_whitney_greater(_bins(x), _bins(y)) + 1e-12
        )


def _spread(center: float, n: int) -> list[float]:
    """n self times spread +-30 % around ``center``."""
    return [center * (0.7 + 0.6 * i / max(n - 1, 1)) for i in range(n)]


class TestDecide:
    def test_regressed_by_origin_errors(self) -> None:
        """10 % origin errors against 0.2 % is a regression, with Fisher's p."""
        cur, base = _stats(1000, 100), _stats(1000, 2)
        v = decide(cur, base)
        assert v.verdict == REGRESSED
        assert v.p_value == pytest.approx(fisher_greater(100, 900, 2, 998))
        assert "origin error rate" in v.reasons[0]

    def test_zero_to_one_error_is_not_regressed(self) -> None:
        """A single new error is not evidence of a regression."""
        v = decide(_stats(100, 1), _stats(100, 0))
        assert v.verdict == HEALTHY
        assert v.p_value == pytest.approx(0.5)

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
        assert v.p_value == pytest.approx(mann_whitney_greater(cur.self_time, base.self_time))
        assert "self time" in v.reasons[0]

    def test_small_latency_shift_is_immaterial(self) -> None:
        """10 % slower is significant over many requests but below the 20 % effect floor."""
        cur, base = _stats(2000, 0, [11.0] * 2000), _stats(2000, 0, [10.0] * 2000)
        assert bucket_of(11.0) != bucket_of(10.0)
        assert mann_whitney_greater(cur.self_time, base.self_time) < 0.01
        assert decide(cur, base).verdict == HEALTHY

    def test_p95_alone_can_be_material(self) -> None:
        """A slow tail (p95 up, median unchanged) is a material self-time regression."""
        base_ms = [10.0] * 200
        cur_ms = [10.0] * 170 + [50.0] * 30
        v = decide(_stats(200, 0, cur_ms), _stats(200, 0, base_ms))
        assert v.verdict == REGRESSED
        assert "p95" in v.reasons[0] and "median" not in v.reasons[0]

    def test_both_tests_deciding_reports_the_smaller_p(self) -> None:
        """When errors and self time both regress, p is the smaller of the two."""
        cur, base = _stats(300, 60, _spread(30.0, 300)), _stats(300, 0, _spread(10.0, 300))
        v = decide(cur, base)
        p_err = fisher_greater(60, 240, 0, 300)
        p_lat = mann_whitney_greater(cur.self_time, base.self_time)
        assert v.verdict == REGRESSED and len(v.reasons) == 2
        assert v.p_value == pytest.approx(min(p_err, p_lat))

    def test_healthy_reports_the_smallest_p_run(self) -> None:
        """A healthy verdict carries the strongest (insufficient) evidence found."""
        cur, base = _stats(100, 1, _spread(10.0, 100)), _stats(100, 0, _spread(10.0, 100))
        v = decide(cur, base)
        assert v.verdict == HEALTHY
        assert v.p_value == pytest.approx(
            min(
                fisher_greater(1, 99, 0, 100),
                mann_whitney_greater(cur.self_time, base.self_time),
            )
        )

    @pytest.mark.parametrize(
        ("cur_n", "base_n"),
        [(MIN_REQUESTS - 1, 1000), (1000, MIN_REQUESTS - 1), (0, 0)],
    )
    def test_insufficient_data(self, cur_n: int, base_n: int) -> None:
        """Fewer than MIN_REQUESTS on either side: no verdict, no p-value."""
        v = decide(_stats(cur_n, cur_n), _stats(base_n, 0))
        assert (v.verdict, v.p_value) == (INSUFFICIENT_DATA, None)
        assert str(MIN_REQUESTS) in v.reasons[0]

    def test_exactly_the_minimum_is_enough(self) -> None:
        """MIN_REQUESTS on both sides is enough to decide."""
        v = decide(_stats(MIN_REQUESTS, 0), _stats(MIN_REQUESTS, 0))
        assert v.verdict == HEALTHY

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


@pytest.mark.parametrize(
    ("cur", "base", "verdict"),
    [
        ((1200, 230), (1000, 2), REGRESSED),
        ((1000, 13), (1000, 2), REGRESSED),
        ((1000, 7), (1000, 2), HEALTHY),
        ((50, 1), (50, 0), HEALTHY),
        ((1_000_000, 1300), (1_000_000, 1000), HEALTHY),
        ((1000, 500), (19, 0), INSUFFICIENT_DATA),
    ],
)
def test_the_table_in_the_docs(cur: tuple[int, int], base: tuple[int, int], verdict: str) -> None:
    """The examples in docs/blast-radius.md decide as the page says."""
    assert decide(_stats(*cur, []), _stats(*base, [])).verdict == verdict
