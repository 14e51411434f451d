"""Fisher's exact test and the Mann-Whitney U test, checked against independent computations."""

from __future__ import annotations

import itertools
import math
import random
import time
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector.query import stats
from podtrace_collector.query.stats import (
    FISHER,
    MANN_WHITNEY_EXACT,
    MANN_WHITNEY_NORMAL,
    fisher_greater,
    fisher_test,
    mann_whitney_test,
)
from scipy import stats as scipy_stats


def _fisher_brute(a: int, b: int, c: int, d: int) -> float:
    """P(X >= a) by exact rational summation of the hypergeometric distribution."""
    n_row, n_col, total = a + b, a + c, a + b + c + d
    hi = min(n_row, n_col)
    num = sum(math.comb(n_col, k) * math.comb(total - n_col, n_row - k) for k in range(a, hi + 1))
    return float(Fraction(num, math.comb(total, n_row)))


def _bins(values: list[int]) -> dict[int, int]:
    """Values as histogram bins: each value is a bin index, repeated values are ties."""
    return dict(Counter(values))


def _enumerated(x: list[int], y: list[int]) -> tuple[float, float]:
    """(p, best p) by listing every assignment of the pooled values to x: no dynamic program.

    Ranks are mid-ranks of the pooled values; p is the share of assignments whose rank sum is
    at least the observed one, best p the share reaching the largest possible rank sum.
    """
    pooled = sorted(x + y)
    rank = {
        v: Fraction(pooled.index(v) + 1 + len(pooled) - pooled[::-1].index(v), 2) for v in pooled
    }
    sums = [
        sum(rank[pooled[i]] for i in chosen)
        for chosen in itertools.combinations(range(len(pooled)), len(x))
    ]
    observed, top = sum(rank[v] for v in x), max(sums)
    return (
        sum(s >= observed for s in sums) / len(sums),
        sum(s >= top for s in sums) / len(sums),
    )


def _rank_sum(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    ranks = scipy_stats.rankdata(np.concatenate([a, b], axis=axis), axis=axis)
    return ranks[..., : a.shape[axis]].sum(axis=axis)  # type: ignore[no-any-return]


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

    @pytest.mark.parametrize(
        "table", [(3, 1, 1, 3), (6, 0, 0, 6), (2, 4, 0, 6), (30, 970, 5, 995), (1, 4, 0, 5)]
    )
    def test_matches_scipy(self, table: tuple[int, int, int, int]) -> None:
        """scipy.stats.fisher_exact gives the same one-sided p-value."""
        a, b, c, d = table
        expected = scipy_stats.fisher_exact([[a, b], [c, d]], alternative="greater").pvalue
        assert fisher_test(*table).p_value == pytest.approx(expected, rel=1e-9)

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
            fisher_test(-1, 2, 3, 4)

    @pytest.mark.parametrize(
        ("table", "extreme"),
        [
            # One failure among 12 requests: at best it is on the revision's side, p = 6/12.
            ((0, 6, 1, 5), (1, 5, 0, 6)),
            ((1, 5, 0, 6), (1, 5, 0, 6)),
            # Six failures, six requests on the revision's side: all six there, p = 1/924.
            ((2, 4, 4, 2), (6, 0, 0, 6)),
            # More failures than the revision's requests: the revision's row fills up.
            ((1, 4, 9, 91), (5, 0, 5, 95)),
            ((0, 10, 0, 10), (0, 10, 0, 10)),
        ],
    )
    def test_best_p_is_the_most_extreme_table_with_the_same_margins(
        self, table: tuple[int, int, int, int], extreme: tuple[int, int, int, int]
    ) -> None:
        """best_p_value is the p-value of the table with the most failures on the first row."""
        evidence = fisher_test(*table)
        assert evidence.best_p_value == pytest.approx(_fisher_brute(*extreme), rel=1e-9)
        assert evidence.best_p_value <= evidence.p_value and evidence.method == FISHER

    @settings(deadline=None)
    @given(st.integers(0, 400), st.integers(0, 400), st.integers(0, 400), st.integers(0, 400))
    def test_p_is_a_probability(self, a: int, b: int, c: int, d: int) -> None:
        """Every p-value is in [0, 1], and never below the best one possible."""
        evidence = fisher_test(a, b, c, d)
        assert 0.0 <= evidence.best_p_value <= evidence.p_value * (1 + 1e-9) <= 1.0 + 1e-9

    @settings(deadline=None)
    @given(st.integers(1, 3000), st.integers(0, 3000), st.integers(1, 3000), st.integers(0, 3000))
    def test_monotone_in_the_error_count(self, n1: int, k1: int, n0: int, k0: int) -> None:
        """More errors among the revision's requests never raise the p-value."""
        k1, k0 = min(k1, n1 - 1), min(k0, n0)
        fewer = fisher_greater(k1, n1 - k1, k0, n0 - k0)
        more = fisher_greater(k1 + 1, n1 - k1 - 1, k0, n0 - k0)
        assert more <= fewer * (1 + 1e-9) + 1e-15


class TestMannWhitneyExact:
    @pytest.mark.parametrize(
        ("x", "y"),
        [
            ([5, 6, 7, 8, 9], [1, 2, 3, 4, 5]),
            ([1, 1, 2, 2, 3], [1, 2, 2, 3, 3, 3]),
            ([3, 3, 3, 3], [3, 3, 3, 4]),
            ([10, 20, 30], [15, 25, 35, 45]),
            ([1, 2, 3, 4], [4, 5, 6]),
            ([7, 7, 7, 7, 7, 7], [1, 1, 1, 1, 1, 7]),
            ([2, 2, 2, 9, 9, 9, 9], [1, 2, 2, 9]),
        ],
    )
    def test_matches_enumeration_of_every_assignment(self, x: list[int], y: list[int]) -> None:
        """Tied samples: p and best p equal the shares of all assignments of the pooled values."""
        evidence = mann_whitney_test(_bins(x), _bins(y))
        p, best = _enumerated(x, y)
        assert evidence.method == MANN_WHITNEY_EXACT
        assert evidence.p_value == pytest.approx(p, rel=1e-12)
        assert evidence.best_p_value == pytest.approx(best, rel=1e-12)

    @settings(deadline=None, max_examples=150)
    @given(
        st.lists(st.integers(0, 6), min_size=1, max_size=7),
        st.lists(st.integers(0, 6), min_size=1, max_size=7),
    )
    def test_any_tiny_sample_matches_enumeration(self, x: list[int], y: list[int]) -> None:
        """Whatever the ties, the exact p-value is the enumerated one."""
        evidence = mann_whitney_test(_bins(x), _bins(y))
        p, best = _enumerated(x, y) if len(set(x + y)) > 1 else (1.0, 1.0)
        assert evidence.p_value == pytest.approx(p, rel=1e-12)
        assert evidence.best_p_value == pytest.approx(best, rel=1e-12)

    @pytest.mark.parametrize(("n1", "n0"), [(5, 5), (6, 6), (3, 17), (12, 9), (20, 20), (8, 40)])
    def test_untied_samples_match_scipy_exact(self, n1: int, n0: int) -> None:
        """Without ties, scipy's exact Mann-Whitney distribution gives the same p-value."""
        rng = random.Random(n1 * 100 + n0)
        for shift in (0, 20, 60):
            values = rng.sample(range(1000), n1 + n0)
            x, y = [v + shift for v in values[:n1]], values[n1:]
            if set(x) & set(y):
                continue
            expected = scipy_stats.mannwhitneyu(x, y, alternative="greater", method="exact")
            evidence = mann_whitney_test(_bins(x), _bins(y))
            assert evidence.method == MANN_WHITNEY_EXACT
            assert evidence.p_value == pytest.approx(expected.pvalue, rel=1e-9)
            assert evidence.best_p_value == pytest.approx(1 / math.comb(n1 + n0, n1), rel=1e-9)

    @pytest.mark.parametrize("seed", range(3))
    def test_tied_samples_match_scipy_permutation_test(self, seed: int) -> None:
        """With heavy ties, scipy's exhaustive permutation test of the rank sum agrees."""
        rng = random.Random(seed)
        x = [rng.randint(2, 8) for _ in range(8)]
        y = [rng.randint(0, 6) for _ in range(9)]
        expected = scipy_stats.permutation_test(
            (x, y),
            _rank_sum,
            permutation_type="independent",
            alternative="greater",
            n_resamples=np.inf,
            vectorized=True,
        )
        assert mann_whitney_test(_bins(x), _bins(y)).p_value == pytest.approx(
            expected.pvalue, rel=1e-9
        )

    def test_the_larger_side_first_counts_the_smaller_one(self) -> None:
        """x larger than y (the program then counts y's draws) gives the same p as enumeration."""
        x, y = [1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9], [2, 4, 4, 6]
        evidence = mann_whitney_test(_bins(x), _bins(y))
        assert evidence.p_value == pytest.approx(_enumerated(x, y)[0], rel=1e-12)

    def test_six_requests_ten_times_slower(self) -> None:
        """Six against six, every one slower: p = 1/924, the smallest p possible."""
        evidence = mann_whitney_test({160: 3, 161: 3}, {100: 4, 101: 2})
        assert evidence.p_value == pytest.approx(1 / 924)
        assert evidence.best_p_value == evidence.p_value

    def test_best_p_with_ties_across_the_boundary(self) -> None:
        """The most extreme outcome puts x on the top values: C(ties, j) / C(n, n1) with ties."""
        # Pooled: 9 values in bin 5, one in bin 1; x takes 5 of the 9: 126 / 252.
        evidence = mann_whitney_test({5: 5}, {5: 4, 1: 1})
        assert evidence.best_p_value == pytest.approx(math.comb(9, 5) / math.comb(10, 5))

    def test_all_tied_or_empty_is_no_evidence(self) -> None:
        """Identical constant samples, or an empty side, give p = best p = 1."""
        for x, y in (({4: 30}, {4: 30}), ({}, {1: 1, 2: 1}), ({1: 3}, {}), ({3: 0}, {3: 2})):
            evidence = mann_whitney_test(x, y)
            assert (evidence.p_value, evidence.best_p_value) == (1.0, 1.0)

    def test_negative_counts_are_rejected(self) -> None:
        """A negative bin count is a programming error, reported as such."""
        with pytest.raises(ValueError, match="negative"):
            mann_whitney_test({1: -1}, {2: 3})

    def test_the_largest_exact_case_is_fast(self) -> None:
        """At 20 a side over many bins (the costliest exact case) it stays well under a second."""
        rng = random.Random(5)
        x = _bins([rng.randint(0, 400) for _ in range(20)])
        y = _bins([rng.randint(0, 400) for _ in range(20)])
        begin = time.process_time()
        evidence = mann_whitney_test(x, y)
        assert evidence.method == MANN_WHITNEY_EXACT
        assert time.process_time() - begin < 1.0


class TestMannWhitneyNormal:
    @pytest.mark.parametrize(("n1", "n0"), [(100, 100), (300, 40), (1000, 1000), (8, 5000)])
    def test_large_samples_match_scipy_asymptotic(self, n1: int, n0: int) -> None:
        """Past the exact budget: scipy's tie- and continuity-corrected normal p-value."""
        rng = random.Random(n1 + n0)
        x = [int(rng.gauss(52, 12)) for _ in range(n1)]
        y = [int(rng.gauss(50, 12)) for _ in range(n0)]
        expected = scipy_stats.mannwhitneyu(
            x, y, alternative="greater", method="asymptotic", use_continuity=True
        )
        evidence = mann_whitney_test(_bins(x), _bins(y))
        assert evidence.method == MANN_WHITNEY_NORMAL
        assert evidence.p_value == pytest.approx(expected.pvalue, rel=1e-9)

    @pytest.mark.parametrize("seed", range(3))
    def test_close_to_the_exact_test_just_past_the_budget(
        self, seed: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """At 30 a side the approximation is used: within 30 % of the exact p, never below it."""
        rng = random.Random(seed)
        x = _bins([rng.randint(60, 1000) for _ in range(30)])
        y = _bins([rng.randint(0, 900) for _ in range(30)])
        approx = mann_whitney_test(x, y)
        monkeypatch.setattr(stats, "EXACT_BUDGET_BITS", math.inf)
        exact = mann_whitney_test(x, y)
        assert (approx.method, exact.method) == (MANN_WHITNEY_NORMAL, MANN_WHITNEY_EXACT)
        assert 0.0005 < exact.p_value < 0.2
        assert exact.p_value <= approx.p_value <= 1.3 * exact.p_value


class TestMannWhitneyProperties:
    @settings(deadline=None)
    @given(
        st.lists(st.integers(-50, 50), min_size=1, max_size=60),
        st.lists(st.integers(-50, 50), min_size=1, max_size=60),
    )
    def test_p_is_a_probability(self, x: list[int], y: list[int]) -> None:
        """Every p-value is in [0, 1], and never below the best one possible."""
        evidence = mann_whitney_test(_bins(x), _bins(y))
        assert 0.0 <= evidence.best_p_value <= evidence.p_value * (1 + 1e-9) <= 1.0 + 1e-9

    @settings(deadline=None)
    @given(
        st.lists(st.integers(0, 40), min_size=1, max_size=50),
        st.lists(st.integers(0, 40), min_size=1, max_size=50),
    )
    def test_both_directions_never_both_significant(self, x: list[int], y: list[int]) -> None:
        """P(x greater) + P(y greater) is at least 1: at most one side is ever significant."""
        forth = mann_whitney_test(_bins(x), _bins(y)).p_value
        back = mann_whitney_test(_bins(y), _bins(x)).p_value
        assert forth + back >= 1.0 - 1e-9

    @settings(deadline=None)
    @given(
        st.lists(st.integers(0, 40), min_size=2, max_size=40),
        st.lists(st.integers(0, 40), min_size=2, max_size=40),
    )
    def test_shifting_x_up_never_raises_p(self, x: list[int], y: list[int]) -> None:
        """Making the revision slower can only strengthen the evidence."""
        shifted = [v + 5 for v in x]
        assert (
            mann_whitney_test(_bins(shifted), _bins(y)).p_value
            <= mann_whitney_test(_bins(x), _bins(y)).p_value + 1e-12
        )

    def test_direction(self) -> None:
        """Slower x gives a small p; faster x gives a p near 1."""
        slow, fast = _bins(list(range(20, 50))), _bins(list(range(10, 40)))
        assert mann_whitney_test(slow, fast).p_value < 0.01
        assert mann_whitney_test(fast, slow).p_value > 0.99
