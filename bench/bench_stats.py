"""The verdict's Mann-Whitney test: what the exact distribution costs, and what the normal
approximation loses, side by side on the same samples.

For sample sizes around the exact budget (``query.stats.EXACT_BUDGET_BITS``), self times drawn
from a log-normal (sigma 0.3, as real latencies) with R shifted up just enough for p-values near
the 0.01 decision level, binned like the histograms.  Printed per size: the method the test picks,
the exact program's time (median), and the normal p-value over the exact one (min .. max) where
the exact p-value is between 0.001 and 0.03.

Run: ``.venv/bin/python -m bench bench_stats``.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections import Counter

from podtrace_collector.aggregate.histogram import bucket_of
from podtrace_collector.query import stats

SIZES = [(5, 5), (8, 8), (12, 12), (20, 20), (25, 25), (30, 30), (5, 100), (5, 400), (10, 100)]
TRIALS = 60


def _sample(rng: random.Random, n: int, shift: float) -> dict[int, int]:
    return dict(
        Counter(bucket_of(math.exp(rng.gauss(math.log(10) + shift, 0.3))) for _ in range(n))
    )


def _row(n1: int, n0: int) -> str:
    rng = random.Random(n1 * 1000 + n0)
    budget = stats.EXACT_BUDGET_BITS
    picked: Counter[str] = Counter()
    times, ratios = [], []
    for _ in range(TRIALS):
        x, y = _sample(rng, n1, rng.uniform(0.1, 0.4)), _sample(rng, n0, 0.0)
        picked[stats.mann_whitney_test(x, y).method] += 1
        stats.EXACT_BUDGET_BITS = math.inf
        begin = time.perf_counter()
        exact = stats.mann_whitney_test(x, y).p_value
        times.append(time.perf_counter() - begin)
        stats.EXACT_BUDGET_BITS = 0
        normal = stats.mann_whitney_test(x, y).p_value
        stats.EXACT_BUDGET_BITS = budget
        if 0.001 <= exact <= 0.03:
            ratios.append(normal / exact)
    spread = f"{min(ratios):.2f} .. {max(ratios):.2f}" if ratios else "-"
    method = ", ".join(f"{m} x{c}" for m, c in picked.most_common())
    return (
        f"  {n1:>3} vs {n0:<4} exact {statistics.median(times) * 1e3:7.2f} ms   "
        f"normal/exact {spread:<13} ({len(ratios)} near 0.01)   picks: {method}"
    )


def main() -> None:
    for n1, n0 in SIZES:
        print(_row(n1, n0), flush=True)


if __name__ == "__main__":
    main()
