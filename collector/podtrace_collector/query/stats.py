"""One-sided two-sample tests for the verdict: Fisher's exact test and the Mann-Whitney U test.

Both answer "is the first sample worse than the second?" and return an ``Evidence``: the p-value,
the smallest p-value the data at hand could have given (``best_p_value``: when even that is not
below the significance level, the test cannot decide either way), and the method used.

- **Fisher's exact test** on the 2x2 table ``[[a, b], [c, d]]`` (failed, other requests x first,
  second sample): exact for any counts.  Its most extreme table keeps both margins (the requests
  of each side and the failures in all) and puts as many failures as possible in the first row.
- **Mann-Whitney U** over binned samples (``{bin: count}``, as the histograms store them): every
  value of a bin is a tie, ranked at the bin's mid-rank.  The p-value is the exact conditional
  permutation probability ``P(rank sum of x >= observed)`` over the pooled bins when computing it
  is cheap (``EXACT_BUDGET_BITS``: about 20 requests a side, or a few against a few hundred), else
  the tie-corrected normal approximation with continuity correction, which is conservative
  there (never below the exact p-value in measured cases, within 30 % of it at 30 a side:
  ``bench/bench_stats.py``).  Its most extreme outcome is every value of x above every value of
  y, among the values pooled.

The exact distribution is a dynamic program over the bins: the number of ways to draw ``j`` of the
pooled values with doubled rank sum ``s`` (doubled mid-ranks are integers).  The table is packed
into one Python integer, one ``b``-bit digit per ``(j, s)`` (Kronecker substitution), so a bin with
``t`` ties is added with at most ``t + 1`` shifts and adds of whole integers, not a loop per cell.
Pure functions, standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FISHER = "Fisher exact"
MANN_WHITNEY_EXACT = "Mann-Whitney exact"
MANN_WHITNEY_NORMAL = "Mann-Whitney normal approx."

# The exact Mann-Whitney distribution is computed when its dynamic program is estimated to touch
# at most this many bits (shifts and adds of the packed table): 5 to 40 ms on a busy 2-core host.
EXACT_BUDGET_BITS = 2 * 10**8
# A side larger than this never fits the budget; it also keeps the cost estimate cheap.
_EXACT_MAX_SIDE = 64
# Summing stops once a term adds less than this to the running total (double precision).
_NEGLIGIBLE = 1e-17

Bins = list[tuple[int, int]]  # pooled (values tied in the bin, doubled mid-rank), ascending


@dataclass(frozen=True, slots=True)
class Evidence:
    """A one-sided test's p-value, the smallest p-value possible with this data, the method."""

    p_value: float
    best_p_value: float
    method: str

    def can_reach(self, alpha: float) -> bool:
        """Whether the most extreme outcome with the data at hand would be significant."""
        return self.best_p_value < alpha


def fisher_test(a: int, b: int, c: int, d: int) -> Evidence:
    """Fisher's exact test: is ``a / (a + b)`` greater than ``c / (c + d)``?

    Raises:
        ValueError: a negative count.
    """
    p = fisher_greater(a, b, c, d)
    n_row, n_col = a + b, a + c
    top = min(n_row, n_col)  # the most failures the first row can hold, margins unchanged
    best = fisher_greater(top, n_row - top, n_col - top, c + d - (n_col - top))
    return Evidence(p, best, FISHER)


def fisher_greater(a: int, b: int, c: int, d: int) -> float:
    """One-sided Fisher's exact p-value ``P(X >= a)`` for the table ``[[a, b], [c, d]]``.

    ``X`` is hypergeometric with the table's margins.  The first term comes from ``lgamma`` and
    the rest from the ratio of consecutive terms, summed from the largest term down until they
    stop mattering: exact for any counts.

    Raises:
        ValueError: a negative count.
    """
    if min(a, b, c, d) < 0:
        raise ValueError(f"negative count in table {[[a, b], [c, d]]}")
    n_row, n_col, total = a + b, a + c, a + b + c + d
    lo, hi = max(0, n_row + n_col - total), min(n_row, n_col)
    if a <= lo:
        return 1.0
    mode = math.floor((n_row + 1) * (n_col + 1) / (total + 2))
    if a > mode:
        # Upper tail entirely past the mode: terms shrink as k grows.
        return _clamp(_tail_sum(a, hi, +1, n_row, n_col, total))
    # The upper tail holds the mode, so it is at least ~1/2: 1 - lower tail loses nothing.
    return _clamp(1.0 - _tail_sum(a - 1, lo, -1, n_row, n_col, total))


def mann_whitney_test(x: Mapping[int, int], y: Mapping[int, int]) -> Evidence:
    """Mann-Whitney U over binned samples: are the values of ``x`` stochastically greater?

    ``x`` and ``y`` map a bin (larger is slower) to how many values fell in it.  An empty side,
    or every value in one bin, is no evidence: ``p_value = best_p_value = 1``.

    Raises:
        ValueError: a negative count.
    """
    bins, observed, n1 = _pool(x, y)
    n0 = sum(t for t, _ in bins) - n1
    if n1 == 0 or n0 == 0 or len(bins) < 2:
        return Evidence(1.0, 1.0, MANN_WHITNEY_EXACT)
    extreme = _extreme_rank_sum(bins, n1)
    if _exact_cost_bits(bins, min(n1, n0)) <= EXACT_BUDGET_BITS:
        p, best = _exact_upper_tails(bins, n1, (observed, extreme))
        return Evidence(p, best, MANN_WHITNEY_EXACT)
    p, best = (_normal_upper_tail(bins, n1, s) for s in (observed, extreme))
    return Evidence(p, best, MANN_WHITNEY_NORMAL)


def _pool(x: Mapping[int, int], y: Mapping[int, int]) -> tuple[Bins, int, int]:
    """The pooled bins, ``x``'s doubled rank sum and ``x``'s size."""
    if min(x.values(), default=0) < 0 or min(y.values(), default=0) < 0:
        raise ValueError("negative count in a histogram")
    bins: Bins = []
    below = rank_sum = n1 = 0
    for key in sorted(x.keys() | y.keys()):
        cx, cy = x.get(key, 0), y.get(key, 0)
        t = cx + cy
        if t == 0:
            continue
        doubled_mid_rank = 2 * below + t + 1
        bins.append((t, doubled_mid_rank))
        rank_sum += cx * doubled_mid_rank
        n1 += cx
        below += t
    return bins, rank_sum, n1


def _extreme_rank_sum(bins: Bins, n1: int) -> int:
    """``x``'s doubled rank sum when its values are the ``n1`` largest pooled values."""
    left, total = n1, 0
    for t, w in reversed(bins):
        take = min(t, left)
        total += take * w
        left -= take
        if not left:
            break
    return total


def _exact_cost_bits(bins: Bins, m: int) -> float:
    if m > _EXACT_MAX_SIDE:
        return math.inf
    n = sum(t for t, _ in bins)
    table_bits = (_log2_comb(n, m) + 2) * (m + 1) * (2 * m * (n - m) + 1)
    return table_bits * sum(min(t, m) + 2 for t, _ in bins)


def _exact_upper_tails(bins: Bins, n1: int, thresholds: Sequence[int]) -> list[float]:
    """``P(S >= s)`` for each ``s``, ``S`` the doubled rank sum of ``n1`` values drawn at random."""
    n = sum(t for t, _ in bins)
    if 2 * n1 <= n:
        counts, ways = _RankSums(bins, n1), math.comb(n, n1)
        return [counts.at_least(s) / ways for s in thresholds]
    # Count the smaller side: y's rank sum is the pooled total minus x's.
    counts, ways = _RankSums(bins, n - n1), math.comb(n, n1)
    grand = sum(t * w for t, w in bins)
    return [counts.at_most(grand - s) / ways for s in thresholds]


class _RankSums:
    """How many ways ``m`` of the pooled values (``m <= n / 2``) have each doubled rank sum.

    One ``b``-bit digit per (values drawn ``j``, rank sum): block ``j`` holds ``stride`` digits.
    Each value scores its doubled mid-rank minus ``n + 1`` (the mean), so that every block is
    centred on ``offset``: ``|sum|`` of ``j`` scores is at most ``j (n - j) <= m (n - m)``.
    """

    __slots__ = ("b", "counts", "offset", "shift")

    def __init__(self, bins: Bins, m: int) -> None:
        n = sum(t for t, _ in bins)
        b = self.b = math.comb(n, m).bit_length() + 1  # a count never exceeds C(n, m): no carry
        offset = self.offset = m * (n - m)
        self.shift = m * (n + 1)  # m scores' total centring
        stride = b * (2 * offset + 1)
        table = 1 << (b * offset)
        for t, w in bins:
            step = stride + b * (w - n - 1)  # one more value drawn, from this bin
            acc = table
            for c in range(1, min(t, m) + 1):
                acc += math.comb(t, c) * (_blocks_up_to(table, m - c, stride) << (c * step))
            table = acc
        self.counts = table >> (stride * m)

    def at_least(self, doubled_rank_sum: int) -> int:
        return _digit_sum(self.counts >> (self.b * max(0, self._digit(doubled_rank_sum))), self.b)

    def at_most(self, doubled_rank_sum: int) -> int:
        digits = self._digit(doubled_rank_sum) + 1
        return _digit_sum(self.counts & ((1 << (self.b * max(0, digits))) - 1), self.b)

    def _digit(self, doubled_rank_sum: int) -> int:
        return self.offset + doubled_rank_sum - self.shift


def _blocks_up_to(table: int, j: int, stride: int) -> int:
    # Blocks past m are never formed: a centred sum of more than m values could run into the
    # digits of the block below.
    bits = stride * (j + 1)
    return table if table.bit_length() <= bits else table & ((1 << bits) - 1)


def _digit_sum(packed: int, b: int) -> int:
    # Base 2**b digits sum to the number modulo 2**b - 1; the sum is below it, so this is exact.
    return packed % ((1 << b) - 1)


def _normal_upper_tail(bins: Bins, n1: int, doubled_rank_sum: int) -> float:
    n = sum(t for t, _ in bins)
    n0 = n - n1
    u = doubled_rank_sum / 2 - n1 * (n1 + 1) / 2
    ties = sum(float(t) ** 3 - t for t, _ in bins)
    variance = n1 * n0 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - n1 * n0 / 2 - 0.5) / math.sqrt(variance)
    return _clamp(0.5 * math.erfc(z / math.sqrt(2)))


def _tail_sum(start: int, stop: int, step: int, n_row: int, n_col: int, total: int) -> float:
    """Sum of hypergeometric probabilities from ``start`` towards ``stop`` (inclusive)."""
    term = math.exp(_log_pmf(start, n_row, n_col, total))
    acc, k = term, start
    while k != stop and term > _NEGLIGIBLE * acc:
        if step > 0:
            term *= (n_row - k) * (n_col - k) / ((k + 1) * (total - n_row - n_col + k + 1))
        else:
            term *= k * (total - n_row - n_col + k) / ((n_row - k + 1) * (n_col - k + 1))
        k += step
        acc += term
    return acc


def _log_pmf(k: int, n_row: int, n_col: int, total: int) -> float:
    return _log_choose(n_col, k) + _log_choose(total - n_col, n_row - k) - _log_choose(total, n_row)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _log2_comb(n: int, k: int) -> float:
    return _log_choose(n, k) / math.log(2)


def _clamp(p: float) -> float:
    return min(1.0, max(0.0, p))
