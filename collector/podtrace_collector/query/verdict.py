"""The verdict on a revision: is it worse than its baseline, beyond chance and by enough to matter?

Two one-sided tests (``query.stats``), both at ``ALPHA = 0.01``:

- **origin error rate** — Fisher's exact test on the 2x2 table (origin errors, other requests) x
  (revision, baseline); the effect must also be material: the rate at least
  ``MIN_RATE_INCREASE`` (one percentage point) higher in absolute terms *and* at least
  ``MIN_RATE_RATIO`` (2x) the baseline's rate.
- **self time** — the Mann-Whitney U test over the two self-time histograms (exact for small
  samples, ties by histogram bin); the effect must also be material: the median or the p95 at
  least ``MIN_LATENCY_RATIO`` (1.2x) the baseline's.

A test *can decide* when its most extreme outcome with the requests at hand (every failure on the
revision's side; every revision self time above every baseline one) would reach ``ALPHA``.
``insufficient_data``: a first revision (no baseline), fewer than ``MIN_SIDE_REQUESTS`` requests
on a side, or no test that can decide.  ``regressed``: a test finds a significant, material
regression — except that a self-time regression does not count against a baseline whose own
origin error rate is significantly, materially higher (failed requests end early or late: the
self times are not comparable), which also keeps the verdict antisymmetric: of two revisions
judged against each other, at most one is ``regressed``.  ``healthy`` otherwise.

A self-time regression is then located (``query.control``): in the revision's own code (its
own time regressed), or in transit (slower to reach) — and, against a baseline measured before
the revision appeared, a transit-only regression whose worse callers got as much slower on
their other calls too is the callers' own slowness: it does not count.  ``reasons`` say which
test decided and, for a latency regression, where the time went.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import RevisionStats
from podtrace_collector.query.control import (
    ALPHA,
    MIN_LATENCY_RATIO,
    MIN_SIDE_REQUESTS,
    CallerTransit,
    Location,
    locate,
)
from podtrace_collector.query.stats import (
    MANN_WHITNEY_EXACT,
    Evidence,
    fisher_test,
    mann_whitney_test,
)

# A baseline seen in the revision's window with fewer requests than this is measured over the
# window before the revision instead (``query.blast``): a canary must carry enough traffic.
MIN_REQUESTS = 20
MIN_RATE_INCREASE = 0.01
MIN_RATE_RATIO = 2.0

ERROR_RATE = "origin error rate"
SELF_TIME = "self time"

REGRESSED = "regressed"
HEALTHY = "healthy"
INSUFFICIENT_DATA = "insufficient_data"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision, the p-value that backs it (``None`` when no test ran) and why, in words.

    ``latency``: where a self-time regression went (``control.Location``), ``None`` when the
    self-time test found none.
    """

    verdict: str
    p_value: float | None
    reasons: list[str] = field(default_factory=list)
    latency: Location | None = None

    @property
    def latency_regressed(self) -> bool:
        """The self-time test is among those that decided ``regressed`` (not excused as the
        callers' own slowness): what lists a latency blast radius (SPEC §5)."""
        return self.latency is not None and not self.latency.excused


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One test: what it measured, its evidence, and the regression it found ("" for none)."""

    subject: str
    evidence: Evidence
    regression: str = ""
    not_run: str = ""  # why the test did not run (it then cannot decide)
    where: str = ""  # for a self-time regression: where the time went, in words

    @property
    def cited(self) -> str:
        return f"{self.evidence.method} p={self.evidence.p_value:.3g}"

    @property
    def reason(self) -> str:
        """The regression found, with the test that found it (and where the time went)."""
        found = f"{self.regression} ({self.cited})"
        return f"{found}, {self.where}" if self.where else found


def decide(
    current: RevisionStats,
    baseline: RevisionStats | None,
    *,
    callers: Sequence[CallerTransit] = (),
    control: bool = False,
) -> Verdict:
    """The verdict on ``current`` against ``baseline`` (``None`` for a first revision).

    A self-time regression is located (``control.locate``): in the revision's own code, or in
    transit, where ``callers`` (each caller's transit to the revision and to the baseline) name
    the callers whose transit got worse.  With ``control`` (the baseline was measured before the
    revision appeared), a transit-only regression whose worse callers all got as much slower on
    their other calls is theirs, not the revision's: it does not count.

    Returns:
        ``regressed`` with the smallest p-value of the tests that found a significant, material
        regression; ``healthy`` with the smallest p-value of the tests that could decide; or
        ``insufficient_data`` with ``p_value=None``.  ``reasons`` name the deciding test.
    """
    if baseline is None:
        return Verdict(INSUFFICIENT_DATA, None, ["first revision: there is no baseline"])
    short = _too_few(current, "revision") + _too_few(baseline, "baseline")
    if short:
        return Verdict(INSUFFICIENT_DATA, None, short)
    able: list[_Outcome] = []
    notes: list[str] = []
    for outcome in (_error_test(current, baseline), _latency_test(current, baseline)):
        if outcome.evidence.can_reach(ALPHA):
            able.append(outcome)
        else:
            notes.append(_cannot_decide(outcome))
    if not able:
        return Verdict(INSUFFICIENT_DATA, None, notes)
    found = [o for o in able if o.regression]
    where = _latency_found(found, notes, current, baseline, callers, control)
    if found:
        p_value = min(o.evidence.p_value for o in found)
        return Verdict(REGRESSED, p_value, [o.reason for o in found] + notes, where)
    p_value = min(o.evidence.p_value for o in able)
    if where is not None and where.excused:
        # notes[0] names the callers; any other test that could decide found nothing either.
        rest = [o for o in able if o.subject != SELF_TIME]
        cited = "; ".join(f"{o.subject}: {o.cited}" for o in rest)
        tail = [f"no other significant, material regression ({cited})"] if rest else []
        return Verdict(HEALTHY, p_value, [notes[0], *tail, *notes[1:]], where)
    cited = "; ".join(f"{o.subject}: {o.cited}" for o in able)
    return Verdict(
        HEALTHY, p_value, [f"no significant, material regression ({cited})", *notes], where
    )


def _latency_found(
    found: list[_Outcome],
    notes: list[str],
    current: RevisionStats,
    baseline: RevisionStats,
    callers: Sequence[CallerTransit],
    control: bool,
) -> Location | None:
    """Weigh a self-time regression in ``found`` (in place): not comparable, excused, located."""
    slower = next((o for o in found if o.subject == SELF_TIME), None)
    if slower is None:
        return None
    reverse = _error_test(baseline, current)
    if reverse.regression:
        found.remove(slower)  # the baseline fails more: its self times are not comparable
        notes.append(
            f"{slower.regression} not counted: the baseline fails more "
            f"(its {reverse.regression}, {reverse.cited})"
        )
        return None
    where = locate(current.own_time, baseline.own_time, callers, control=control)
    i = found.index(slower)
    if where.excused:
        del found[i]  # the callers' own slowness, not this revision's
        notes.insert(0, f"{slower.reason} is {where.reason}")
    else:
        found[i] = _Outcome(SELF_TIME, slower.evidence, slower.regression, where=where.reason)
    return where


def _too_few(stats: RevisionStats, side: str) -> list[str]:
    if stats.requests >= MIN_SIDE_REQUESTS:
        return []
    return [f"{side} has {stats.requests} requests; at least {MIN_SIDE_REQUESTS} are needed"]


def _cannot_decide(o: _Outcome) -> str:
    if o.not_run:
        return f"{o.subject} cannot decide: {o.not_run}"
    best = o.evidence.best_p_value
    if o.subject == ERROR_RATE:
        return (
            f"{o.subject} cannot decide: even with every failure on the revision's side, "
            f"p={best:.3g} would not reach {ALPHA:g}"
        )
    return (
        f"{o.subject} cannot decide: even with every revision request slower than every baseline "
        f"one, p={best:.3g} would not reach {ALPHA:g}"
    )


def _error_test(cur: RevisionStats, base: RevisionStats) -> _Outcome:
    k1, n1 = min(cur.origin_errors, cur.requests), cur.requests
    k0, n0 = min(base.origin_errors, base.requests), base.requests
    evidence = fisher_test(k1, n1 - k1, k0, n0 - k0)
    if k1 + k0 == 0:  # said plainly, rather than as the p-value no outcome could beat
        return _Outcome(ERROR_RATE, evidence, not_run="no origin failures on either side")
    r1, r0 = k1 / n1, k0 / n0
    material = r1 - r0 >= MIN_RATE_INCREASE and r1 >= MIN_RATE_RATIO * r0
    if evidence.p_value < ALPHA and material:
        return _Outcome(ERROR_RATE, evidence, f"origin error rate {r1:.2%} vs {r0:.2%}")
    return _Outcome(ERROR_RATE, evidence)


def _latency_test(cur: RevisionStats, base: RevisionStats) -> _Outcome:
    x, y = cur.self_time, base.self_time
    if x.total < MIN_SIDE_REQUESTS or y.total < MIN_SIDE_REQUESTS:
        why = f"recorded for fewer than {MIN_SIDE_REQUESTS} requests on a side"
        return _Outcome(SELF_TIME, Evidence(1.0, 1.0, MANN_WHITNEY_EXACT), not_run=why)
    evidence = mann_whitney_test(x.counts, y.counts)
    worse = _material_quantiles(x, y)
    if evidence.p_value < ALPHA and worse:
        return _Outcome(SELF_TIME, evidence, f"self time {', '.join(worse)}")
    return _Outcome(SELF_TIME, evidence)


def _material_quantiles(x: Histogram, y: Histogram) -> list[str]:
    return [
        f"{name} {qx:g} ms vs {qy:g} ms"
        for name, q in (("median", 0.5), ("p95", 0.95))
        if (qx := x.quantile(q)) is not None
        and (qy := y.quantile(q)) is not None
        and qx > qy
        and qx >= MIN_LATENCY_RATIO * qy
    ]
