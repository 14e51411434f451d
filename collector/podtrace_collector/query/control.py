"""Where a self-time regression went: the workload's own code, or reaching it (SPEC §6).

Self time is own time (server-side self time) plus transit (how long the caller's CLIENT span
waited minus the request's own duration).  Once the self-time test has found a regression,
``locate`` says where it is:

1. **own code** — the own-time test (the same one-sided Mann-Whitney test and 1.2x materiality
   rule as self time) finds own time regressed: the revision itself is slower.
2. **transit** — otherwise the time went into reaching the workload.  Each caller with at least
   ``MIN_SIDE_REQUESTS`` transit samples a side is tested: its transit to the revision against
   its transit to the baseline (same test, same rule).  Those significantly and materially worse
   are the *worse callers*.
3. **the caller's** — only when the baseline was measured before the revision appeared (``control``;
   a canary, measured alongside, shares its callers' state and needs no control): each worse
   caller's transit to every *other* workload is compared across the same two windows.  When every
   worse caller got worse there too (Mann-Whitney p < 0.01, its median at least 1.2x *and* at least
   half as many added milliseconds as its transit to the revision gained), the slowdown is the
   callers' own: the revision is excused.  A caller that calls nothing else, whose other calls did
   not slow, or whose other calls cannot decide, keeps the regression on the revision; so does a
   slowdown that no single caller shows.

The control can only excuse a regression the self-time test found, never find one: the verdict
stays antisymmetric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.query.stats import Evidence, mann_whitney_test

ALPHA = 0.01
MIN_SIDE_REQUESTS = 5
MIN_LATENCY_RATIO = 1.2
# A caller's other calls must have gained at least this share of the milliseconds its transit
# to the revision gained (at the median) for the caller to be "equally" slower everywhere.
MIN_OTHER_SHARE = 0.5

OWN_CODE = "own_code"  # slower in its own code
TRANSIT = "transit"  # slower to reach
CALLER = "caller"  # slower to reach through its callers' own slowness: excused


@dataclass(frozen=True, slots=True)
class CallerTransit:
    """One caller's transit samples, as the control needs them.

    Attributes:
        caller: the caller workload.
        to_revision: its transit to the revision, over the revision's window.
        to_baseline: its transit to the baseline revision, over the baseline's window.
        other_calls: ``(over the revision's window, over the baseline's window)``: its transit to
            every workload but this one, merged when first asked for (most callers never are).
    """

    caller: str
    to_revision: Histogram
    to_baseline: Histogram
    other_calls: Callable[[], tuple[Histogram, Histogram]]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One one-sided test of two transit samples, with their medians and p95s."""

    now: Histogram
    before: Histogram
    evidence: Evidence

    @property
    def p_value(self) -> float:
        return self.evidence.p_value

    def medians(self) -> tuple[float, float]:
        return self.now.quantile(0.5) or 0.0, self.before.quantile(0.5) or 0.0

    def cited(self) -> str:
        """``X ms vs Y ms (method p=P)``: the medians and the test."""
        now, before = self.medians()
        return f"{now:g} ms vs {before:g} ms ({self.evidence.method} p={self.evidence.p_value:.3g})"


@dataclass(frozen=True, slots=True)
class CallerFinding:
    """A caller whose transit to the revision is significantly, materially worse."""

    caller: str
    transit: Comparison
    others: Comparison | None  # its other calls across the same windows (None: not tested)
    slower_everywhere: bool  # its other calls got as much slower: the slowdown is its own
    why: str  # how the other calls decided, in words


@dataclass(frozen=True, slots=True)
class Location:
    """Where a self-time regression went, and whether the control excused it."""

    where: str  # OWN_CODE, TRANSIT, CALLER, or "" when own time was not recorded
    reason: str
    callers: list[CallerFinding] = field(default_factory=list)

    @property
    def excused(self) -> bool:
        return self.where == CALLER


def compare(now: Histogram, before: Histogram) -> Comparison:
    """The one-sided Mann-Whitney test: is ``now`` slower than ``before``?"""
    return Comparison(now, before, mann_whitney_test(now.counts, before.counts))


def materially_slower(c: Comparison) -> bool:
    """Significant, and the median or the p95 at least ``MIN_LATENCY_RATIO`` x."""
    if c.p_value >= ALPHA:
        return False
    for q in (0.5, 0.95):
        now, before = c.now.quantile(q), c.before.quantile(q)
        if (
            now is not None
            and before is not None
            and now > before
            and now >= MIN_LATENCY_RATIO * before
        ):
            return True
    return False


def locate(
    own_now: Histogram,
    own_before: Histogram,
    callers: Sequence[CallerTransit],
    *,
    control: bool,
) -> Location:
    """Where a self-time regression went (see the module docstring).

    Args:
        own_now, own_before: the revision's and the baseline's own times.
        callers: each caller's transit to the revision and to the baseline.
        control: the baseline was measured before the revision appeared: callers may excuse it.
    """
    if min(own_now.total, own_before.total) >= MIN_SIDE_REQUESTS:
        own = compare(own_now, own_before)
        if materially_slower(own):
            return Location(OWN_CODE, f"in its own code: own time median {own.cited()}")
        own_note = f"own time did not regress, median {own.cited()}"
    else:
        return Location("", "not split: own time recorded for too few requests")
    worse = [f for c in callers if (f := _worse(c, control)) is not None]
    if not worse:
        return Location(
            TRANSIT,
            f"in transit (slower to reach): {own_note}; "
            "no single caller's transit to it is significantly, materially worse",
        )
    named = "; ".join(_cited(f) for f in worse)
    if control and all(f.slower_everywhere for f in worse):
        return Location(
            CALLER, f"the callers' own slowness, not this revision's: {own_note}; {named}", worse
        )
    return Location(TRANSIT, f"in transit (slower to reach): {own_note}; {named}", worse)


def _worse(c: CallerTransit, control: bool) -> CallerFinding | None:
    if min(c.to_revision.total, c.to_baseline.total) < MIN_SIDE_REQUESTS:
        return None
    transit = compare(c.to_revision, c.to_baseline)
    if not materially_slower(transit):
        return None
    if not control:
        return CallerFinding(c.caller, transit, None, False, "")
    now, before = c.other_calls()
    if now.total == 0 and before.total == 0:
        return CallerFinding(c.caller, transit, None, False, "it calls nothing else")
    if min(now.total, before.total) < MIN_SIDE_REQUESTS:
        return CallerFinding(c.caller, transit, None, False, "too few other calls to decide")
    others = compare(now, before)
    slower, why = _slower_everywhere(transit, others)
    return CallerFinding(c.caller, transit, others, slower, why)


def _slower_everywhere(transit: Comparison, others: Comparison) -> tuple[bool, str]:
    cited = f"its other calls, median {others.cited()}"
    if not others.evidence.can_reach(ALPHA):
        return False, f"{cited}: cannot decide"
    if others.p_value >= ALPHA:
        return False, f"{cited}: not significantly slower"
    now, before = others.medians()
    if now < MIN_LATENCY_RATIO * before or now <= before:
        return False, f"{cited}: less than {MIN_LATENCY_RATIO:g}x"
    to_now, to_before = transit.medians()
    if now - before < MIN_OTHER_SHARE * (to_now - to_before):
        return False, f"{cited}: far less added time than to this workload"
    return True, cited


def _cited(f: CallerFinding) -> str:
    text = f"{f.caller}'s transit to it, median {f.transit.cited()}"
    if not f.why:
        return text
    joiner = " and " if f.slower_everywhere else ", but "
    return f"{text}{joiner}{f.why}"


def callers_of(
    workload: str, revision: str, baseline: str, now: Aggregates, before: Aggregates
) -> list[CallerTransit]:
    """Each caller's transit to ``workload`` at ``revision`` (over ``now``) and at ``baseline``
    (over ``before``, the baseline's window: ``now`` again for a canary), by caller name.

    A caller's other calls are its total transit (``transit_out``, every revision of the caller)
    less its transit to every revision of ``workload``: the two windows must hold all of them
    (the report's plan reads the transit of the workload's revisions and of its callers',
    ``blast.plan_blast_radius``).
    """
    names = {c for (w, r, c) in now.transit if w == workload and r == revision}
    names |= {c for (w, r, c) in before.transit if w == workload and r == baseline}
    return [
        CallerTransit(
            caller,
            _transit(now, (workload, revision, caller)),
            _transit(before, (workload, baseline, caller)),
            partial(_other_calls, caller, workload, now, before),
        )
        for caller in sorted(names)
    ]


def _transit(agg: Aggregates, key: tuple[str, str, str]) -> Histogram:
    stats = agg.transit.get(key)
    return stats.transit if stats is not None else Histogram()


def _other_calls(
    caller: str, workload: str, now: Aggregates, before: Aggregates
) -> tuple[Histogram, Histogram]:
    return _others(caller, workload, now), _others(caller, workload, before)


def _others(caller: str, workload: str, agg: Aggregates) -> Histogram:
    counts: dict[int, int] = {}
    for (c, _), stats in agg.transit_out.items():  # every revision of the caller
        if c == caller:
            for b, n in stats.transit.counts.items():
                counts[b] = counts.get(b, 0) + n
    for (w, _, c), stats in agg.transit.items():
        if w == workload and c == caller:
            for b, n in stats.transit.counts.items():
                counts[b] = counts.get(b, 0) - n
    return Histogram({b: n for b, n in counts.items() if n > 0})
