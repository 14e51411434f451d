"""The verdict on a revision: is it worse than its baseline, beyond chance and by enough to matter?

Two one-sided tests, both at ``ALPHA = 0.01``:

- **origin error rate** — Fisher's exact test on the 2x2 table (origin errors, other requests) x
  (revision, baseline); the effect must also be material: the rate at least
  ``MIN_RATE_INCREASE`` (one percentage point) higher in absolute terms *and* at least
  ``MIN_RATE_RATIO`` (2x) the baseline's rate.
- **self time** — the Mann-Whitney U test over the two self-time histograms (ranks by histogram
  bin, tie-corrected normal approximation with continuity correction); the effect must also be
  material: the median or the p95 at least ``MIN_LATENCY_RATIO`` (1.2x) the baseline's.

Either test passing makes the revision ``regressed``; fewer than ``MIN_REQUESTS`` requests on either
side makes it ``insufficient_data`` (and so does a first revision, which has no baseline).  Pure
functions, standard library only: ``math.lgamma`` and ``math.erfc`` replace scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import RevisionStats

ALPHA = 0.01
MIN_REQUESTS = 20
MIN_RATE_INCREASE = 0.01
MIN_RATE_RATIO = 2.0
MIN_LATENCY_RATIO = 1.2

REGRESSED = "regressed"
HEALTHY = "healthy"
INSUFFICIENT_DATA = "insufficient_data"

# Summing stops once a term adds less than this to the running total (double precision).
_NEGLIGIBLE = 1e-17


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision, the p-value that backs it (``None`` when no test ran) and why, in words."""

    verdict: str
    p_value: float | None
    reasons: list[str] = field(default_factory=list)


def fisher_greater(a: int, b: int, c: int, d: int) -> float:
    """One-sided Fisher's exact test on the table ``[[a, b], [c, d]]``.

    The alternative is that row 1's proportion ``a / (a + b)`` is greater than row 2's
    ``c / (c + d)``: the p-value is ``P(X >= a)`` for the hypergeometric ``X`` with the table's
    margins.  Exact for any counts: the first term comes from ``lgamma`` and the rest from the
    ratio of consecutive terms, summed from the largest term down until they stop mattering.

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


def mann_whitney_greater(x: Histogram, y: Histogram) -> float:
    """One-sided Mann-Whitney U test: are values of ``x`` stochastically greater than ``y``'s?

    Both histograms share bins, so each bin is one group of ties ranked at its mid-rank.  The
    p-value uses the normal approximation with tie correction and continuity correction, accurate
    for samples of about 20 or more per side.  Returns 1.0 when either side is empty or every value
    is tied (no evidence either way).
    """
    n1, n2 = x.total, y.total
    n = n1 + n2
    if n1 == 0 or n2 == 0:
        return 1.0
    rank_sum, below, ties = 0.0, 0, 0.0
    for b in sorted(x.counts.keys() | y.counts.keys()):
        c1, c2 = x.counts.get(b, 0), y.counts.get(b, 0)
        t = c1 + c2
        rank_sum += c1 * (below + (t + 1) / 2)
        below += t
        ties += float(t) ** 3 - t
    u = rank_sum - n1 * (n1 + 1) / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return _clamp(0.5 * math.erfc(z / math.sqrt(2)))


def decide(current: RevisionStats, baseline: RevisionStats | None) -> Verdict:
    """The verdict on ``current`` against ``baseline`` (``None`` for a first revision).

    Returns:
        ``regressed`` with the smallest p-value of the tests that found a significant, material
        regression; ``healthy`` with the smallest p-value of the tests run; or
        ``insufficient_data`` with ``p_value=None``.
    """
    if baseline is None:
        return Verdict(INSUFFICIENT_DATA, None, ["first revision: there is no baseline"])
    short = _too_few(current, "revision") + _too_few(baseline, "baseline")
    if short:
        return Verdict(INSUFFICIENT_DATA, None, short)
    results = (_error_test(current, baseline), _latency_test(current, baseline))
    ran = [(p, why) for p, why in results if p is not None]
    decided = [(p, why) for p, why in ran if why]
    if decided:
        return Verdict(REGRESSED, min(p for p, _ in decided), [why for _, why in decided])
    return Verdict(HEALTHY, min(p for p, _ in ran), ["no significant, material regression"])


def _too_few(stats: RevisionStats, side: str) -> list[str]:
    if stats.requests >= MIN_REQUESTS:
        return []
    return [f"{side} has {stats.requests} requests; at least {MIN_REQUESTS} are needed"]


def _error_test(cur: RevisionStats, base: RevisionStats) -> tuple[float | None, str]:
    k1, n1 = min(cur.origin_errors, cur.requests), cur.requests
    k0, n0 = min(base.origin_errors, base.requests), base.requests
    p = fisher_greater(k1, n1 - k1, k0, n0 - k0)
    r1, r0 = k1 / n1, k0 / n0
    material = r1 - r0 >= MIN_RATE_INCREASE and r1 >= MIN_RATE_RATIO * r0
    if p < ALPHA and material:
        return p, f"origin error rate {r1:.2%} vs {r0:.2%} (Fisher p={p:.3g})"
    return p, ""


def _latency_test(cur: RevisionStats, base: RevisionStats) -> tuple[float | None, str]:
    x, y = cur.self_time, base.self_time
    if x.total < MIN_REQUESTS or y.total < MIN_REQUESTS:
        return None, ""  # self time not recorded for enough requests: the error test decides
    p = mann_whitney_greater(x, y)
    worse = [
        f"{name} {qx:g} ms vs {qy:g} ms"
        for name, q in (("median", 0.5), ("p95", 0.95))
        if (qx := x.quantile(q)) is not None
        and (qy := y.quantile(q)) is not None
        and qx > qy
        and qx >= MIN_LATENCY_RATIO * qy
    ]
    if p < ALPHA and worse:
        return p, f"self time {', '.join(worse)} (Mann-Whitney p={p:.3g})"
    return p, ""


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


def _clamp(p: float) -> float:
    return min(1.0, max(0.0, p))
