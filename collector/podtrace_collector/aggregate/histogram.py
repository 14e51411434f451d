"""A mergeable log-bucketed histogram for latencies in milliseconds.

Bucket ``i`` holds values in ``(GAMMA**(i-1), GAMMA**i]``; with ``GAMMA = 1.04`` a quantile is
reported within 2 % of the true value.  Histograms of different minutes, revisions or collectors
merge by adding counts, which is what lets the store answer any window from per-minute rows.
Values at or below ``MIN_MS`` share bucket ``ZERO_BUCKET``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

GAMMA = 1.04
_LOG_GAMMA = math.log(GAMMA)
MIN_MS = 0.001
ZERO_BUCKET = math.ceil(math.log(MIN_MS) / _LOG_GAMMA)


def bucket_of(value_ms: float) -> int:
    if value_ms <= MIN_MS:
        return ZERO_BUCKET
    return math.ceil(math.log(value_ms) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """A representative value of a bucket: the geometric middle of its bounds."""
    if index <= ZERO_BUCKET:
        return 0.0
    return float(GAMMA ** (index - 0.5))


class Histogram:
    """Counts per log bucket.  Mutable; ``merge`` adds another histogram into this one."""

    __slots__ = ("counts", "total")

    def __init__(self, counts: Mapping[int, int] | None = None) -> None:
        self.counts: dict[int, int] = dict(counts) if counts else {}
        self.total = sum(self.counts.values())

    def add(self, value_ms: float, count: int = 1) -> None:
        b = bucket_of(value_ms)
        self.counts[b] = self.counts.get(b, 0) + count
        self.total += count

    def merge(self, other: Histogram) -> None:
        counts = self.counts
        for b, c in other.counts.items():
            counts[b] = counts.get(b, 0) + c
        self.total += other.total

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1), or ``None`` for an empty histogram."""
        if self.total == 0:
            return None
        rank = q * (self.total - 1)
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen > rank:
                return round(bucket_value(b), 3)
        return round(bucket_value(max(self.counts)), 3)

    def summary(self) -> dict[str, float | None]:
        """``{"p50", "p95", "p99"}`` in milliseconds, as the API reports them."""
        return {"p50": self.quantile(0.5), "p95": self.quantile(0.95), "p99": self.quantile(0.99)}

    def to_json(self) -> dict[str, int]:
        return {str(b): c for b, c in self.counts.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, int]) -> Histogram:
        return cls({int(b): int(c) for b, c in data.items()})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Histogram) and self.counts == other.counts

    def __repr__(self) -> str:
        return f"Histogram(total={self.total})"
