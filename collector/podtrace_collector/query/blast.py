"""The blast-radius report of one workload revision (SPEC §3 report, §4 definitions).

Two pure steps around one store read: ``plan_blast_radius`` picks the revision, its baseline and
the windows to read from the registry; the store answers the plan from one snapshot; and
``blast_radius`` turns the plan and its two windows (the report's window, and the equal window
just before the revision appeared) into the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import (
    MAPS,
    MAX_USERS,
    Aggregates,
    EntryTotal,
    RevisionStats,
)
from podtrace_collector.aggregate.window import Registry, Snapshot, Window
from podtrace_collector.errors import BadRequest, BadTime, UnknownRevision
from podtrace_collector.query.common import (
    JSON,
    Revisions,
    counts_json,
    identities,
    require_revisions,
    window_json,
)
from podtrace_collector.query.control import Comparison, Location, callers_of
from podtrace_collector.query.latency import latency_impact, no_latency_impact
from podtrace_collector.query.resolve import check_workload
from podtrace_collector.query.verdict import MIN_REQUESTS, Verdict, decide

# Baseline measured alongside the revision (a canary) or just before the revision appeared.
SAME_WINDOW = "same_window"
BEFORE_REVISION = "before_revision"

_MAX_NAME = 320  # longest name echoed back in an error message
# A report reads every map but the graph's edges.
# Transit is read in windows of its own, each map for its own keys: the transit to the
# workload's revisions, and the total transit of its callers' revisions (the caller control).
_TRANSIT, _TRANSIT_OUT = frozenset({"transit"}), frozenset({"transit_out"})
_REPORT_MAPS = frozenset(spec.name for spec in MAPS) - {"edges"} - _TRANSIT - _TRANSIT_OUT
_NOTHING = Window(maps=frozenset())


@dataclass(frozen=True, slots=True)
class BlastPlan:
    """What a report needs read: the revision, its baseline, the window, and the two reads."""

    workload: str
    revision: str
    stats: RevisionStats  # the revision's registry entry
    prior: tuple[str, RevisionStats] | None  # the baseline revision, if any
    first_s: float  # the revision's first span
    start_s: float
    end_s: float
    names: dict[str, tuple[str, str]]  # workload -> (kind, service)
    # The report's window, the window before the revision, the same two for the transit to the
    # workload, and for its callers' total transit.
    windows: tuple[Window, Window, Window, Window, Window, Window]


def plan_blast_radius(
    registry: Registry,
    *,
    workload: str,
    revision: str | None = None,
    baseline: str | None = None,
    since_s: float | None = None,
    until_s: float | None = None,
    now_s: float,
    names: dict[str, tuple[str, str]] | None = None,
    revisions: Revisions | None = None,
) -> BlastPlan:
    """Plan the report of ``workload`` at ``revision`` from the registry.

    Defaults: ``revision`` is the newest revision (by first span seen); the window runs from its
    first span until ``now_s``; ``baseline`` is the revision first seen before it.  ``names`` and
    ``revisions`` (the workload's, oldest first) may be given when planning many reports from one
    registry (``rollouts``), so that each plan does not walk the whole registry again.

    Raises:
        UnknownWorkload, UnknownRevision: nothing retained of that workload or revision.
        BadRequest: a malformed name or a baseline equal to the revision.
        BadTime: a bad window.
    """
    check_workload(workload)
    revs = revisions if revisions is not None else require_revisions(registry, workload)
    rev, stats = _pick(revs, workload, revision, "revision")
    prior = (
        _previous(revs, rev) if baseline is None else _pick(revs, workload, baseline, "baseline")
    )
    if prior is not None and prior[0] == rev:
        raise BadRequest(f"baseline {rev!r} is the revision itself: compare two revisions")
    first_s = stats.first_seen_ns / 1e9
    start_s, end_s = _window(first_s, since_s, until_s, now_s)
    keys = frozenset({(workload, rev)} | ({(workload, prior[0])} if prior else set()))
    callees, callers = _transit_keys(registry, workload, revs)
    current = Window(start_s, end_s, maps=_REPORT_MAPS, origins=keys, details=keys)
    transit = Window(start_s, end_s, maps=_TRANSIT, origins=callees)
    out = Window(start_s, end_s, maps=_TRANSIT_OUT, origins=callers)
    before = before_transit = before_out = _NOTHING
    if prior is not None:
        b_keys = frozenset({(workload, prior[0])})
        length = end_s - start_s
        before = Window(
            first_s - length, first_s, maps=_REPORT_MAPS, origins=b_keys, details=b_keys
        )
        before_transit = replace(transit, start_s=first_s - length, end_s=first_s)
        before_out = replace(out, start_s=first_s - length, end_s=first_s)
    return BlastPlan(
        workload=workload,
        revision=rev,
        stats=stats,
        prior=prior,
        first_s=first_s,
        start_s=start_s,
        end_s=end_s,
        names=names if names is not None else identities(registry.items()),
        windows=(current, before, transit, before_transit, out, before_out),
    )


def blast_report(snapshot: Snapshot[BlastPlan]) -> JSON:
    """The report of a snapshot read with a ``BlastPlan``."""
    return report_of(snapshot.plan, snapshot.windows)


def report_of(plan: BlastPlan, windows: Sequence[Aggregates]) -> JSON:
    """The report from the aggregates read for ``plan.windows`` (in their order)."""
    current, before, transit, before_transit, out, before_out = windows
    current.transit, current.transit_out = transit.transit, out.transit_out
    before.transit, before.transit_out = before_transit.transit, before_out.transit_out
    return blast_radius(plan, current, before)


def blast_radius(plan: BlastPlan, agg: Aggregates, before: Aggregates) -> JSON:
    """The blast-radius report (SPEC §3 fields, and more) from the plan's two windows.

    The baseline is measured over the same window when it served at least ``MIN_REQUESTS``
    requests there after the revision appeared (a canary), else over the equal-length window
    ending when the revision appeared (``baseline_window.mode`` says which).

    Added fields: ``origin_error_rate`` (and in ``baseline``), ``reasons`` (the verdict in words),
    ``slowdown`` (where a self-time regression went: ``where`` is ``own_code``, ``transit`` or
    ``caller`` — the callers' own slowness, excused — with the ``callers`` whose transit to the
    revision got worse; null without a self-time regression),
    ``baseline_window`` (``{start, end, mode}`` or null), ``first_seen`` (the revision's first
    span), ``affected_users_capped`` (true when a user set hit its cap, making
    ``affected_users`` a lower bound), ``affected_users_reason`` (why ``affected_users`` is
    null: no affected entry request carried an ``enduser.id``), ``hops`` on entry points.
    ``latency_impact`` (SPEC §5, ``query.latency``) lists what the revision slowed only when its
    verdict found a self-time regression; ``max_hops`` covers it too.
    The window is the one read: whole minutes, since aggregates are kept per minute.
    """
    workload, rev = plan.workload, plan.revision
    current = agg.revisions.get((workload, rev)) or _empty_like(plan.stats)
    base = None if plan.prior is None else _baseline(plan, agg, before)
    report: JSON = {
        "workload": workload,
        "kind": plan.stats.kind,
        "service": plan.stats.service or workload.split("/", 1)[1],
        "revision": rev,
        "version": plan.stats.version,
        "window": window_json(*_read_window(plan.start_s, plan.end_s)),
        "first_seen": window_json(plan.first_s, plan.first_s)["start"],
        **counts_json(current),
    }
    fields, verdict = _verdict_fields(plan, current, base, agg, before)
    report.update(fields)
    report.update(_impact_fields(agg, plan.names, workload, rev))
    slowed = no_latency_impact()
    if base is not None and verdict.latency_regressed:
        base_agg = agg if base.mode == SAME_WINDOW else before
        slowed = latency_impact(agg, base_agg, plan.names, workload, rev, base.revision)
    report["latency_impact"] = slowed
    hops = [x["hops"] for rows in slowed.values() for x in rows]
    report["max_hops"] = max([report["max_hops"], *hops])
    return report


@dataclass(frozen=True, slots=True)
class _Baseline:
    revision: str
    version: str
    stats: RevisionStats
    start_s: float
    end_s: float
    mode: str


def _transit_keys(
    registry: Registry, workload: str, revs: Revisions
) -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    """Whose transit a report reads: to every revision of the workload, and the total of every
    revision of each workload that called it (the caller control takes a caller's total
    transit less its transit to every revision of the workload)."""
    callers = set().union(*(st.callers for _, st in revs))
    return (
        frozenset((workload, r) for r, _ in revs),
        frozenset((w, r) for w, r in registry if w in callers),
    )


def _pick(revs: Revisions, workload: str, name: str | None, what: str) -> tuple[str, RevisionStats]:
    if name is None:
        return revs[-1]
    if not name.strip():
        raise BadRequest(f"{what} is empty")
    for r, st in revs:
        if r == name:
            return r, st
    known = [r for r, _ in revs][-10:]
    raise UnknownRevision(
        f"workload {workload!r} has no {what} {name[:_MAX_NAME]!r} (newest known: {known})"
    )


def _previous(revs: Revisions, rev: str) -> tuple[str, RevisionStats] | None:
    i = next(i for i, (r, _) in enumerate(revs) if r == rev)
    return revs[i - 1] if i > 0 else None


def _window(
    first_s: float, since_s: float | None, until_s: float | None, now_s: float
) -> tuple[float, float]:
    for value in (since_s, until_s):
        if value is not None and not math.isfinite(value):
            raise BadTime(f"window bound {value} is not a time")
    end_s = now_s if until_s is None else until_s
    # A first span stamped after ``now`` (clock skew) must not reverse the default window.
    start_s = min(first_s, end_s) if since_s is None else since_s
    if start_s > end_s:
        raise BadTime("the window starts after it ends (since > until)")
    return start_s, end_s


def _read_window(start_s: float, end_s: float) -> tuple[float, float]:
    """The whole minutes a read of ``[start_s, end_s)`` covers: what the counts are over."""
    if start_s == end_s:
        return start_s, end_s  # empty: nothing is read
    return math.floor(start_s / 60) * 60, math.ceil(end_s / 60) * 60


def _baseline(plan: BlastPlan, agg: Aggregates, before: Aggregates) -> _Baseline:
    assert plan.prior is not None
    rev, life = plan.prior
    same = agg.revisions.get((plan.workload, rev))
    # Windows resolve to whole minutes, so a baseline that stopped just before R appeared can
    # still have requests "in" R's window: only a baseline seen after R's first span ran alongside.
    alongside = life.last_seen_ns >= plan.first_s * 1e9
    if same is not None and same.requests >= MIN_REQUESTS and alongside:
        return _Baseline(rev, life.version, same, plan.start_s, plan.end_s, SAME_WINDOW)
    # Too few requests alongside the revision: compare with the time just before it appeared.
    window = plan.windows[1]
    assert window.start_s is not None and window.end_s is not None
    stats = before.revisions.get((plan.workload, rev)) or RevisionStats()
    return _Baseline(rev, life.version, stats, window.start_s, window.end_s, BEFORE_REVISION)


def _verdict_fields(
    plan: BlastPlan,
    current: RevisionStats,
    base: _Baseline | None,
    agg: Aggregates,
    before: Aggregates,
) -> tuple[JSON, Verdict]:
    if base is None:
        verdict = decide(current, None)
        out: JSON = {"baseline": None, "baseline_window": None}
    else:
        control = base.mode == BEFORE_REVISION
        base_agg = before if control else agg
        callers = callers_of(plan.workload, plan.revision, base.revision, agg, base_agg)
        verdict = decide(current, base.stats, callers=callers, control=control)
        counts = counts_json(base.stats)
        out = {"baseline": {"revision": base.revision, "version": base.version, **counts}}
        window = window_json(*_read_window(base.start_s, base.end_s))
        out["baseline_window"] = {**window, "mode": base.mode}
    out.update(verdict=verdict.verdict, p_value=verdict.p_value, reasons=list(verdict.reasons))
    out["slowdown"] = _slowdown_json(verdict.latency, plan.names)
    return out, verdict


def _slowdown_json(where: Location | None, names: dict[str, tuple[str, str]]) -> JSON | None:
    """Where a self-time regression went, and the callers whose transit to it got worse."""
    if where is None:
        return None
    return {
        "where": where.where or None,
        "callers": [
            {
                "workload": f.caller,
                "service": _service(names, f.caller),
                **_comparison_json(f.transit),
                "other_calls": None if f.others is None else _comparison_json(f.others),
                "slower_everywhere": f.slower_everywhere,
            }
            for f in where.callers
        ],
    }


def _comparison_json(c: Comparison) -> JSON:
    return {
        "transit_ms": _p50_p95(c.now),
        "baseline_transit_ms": _p50_p95(c.before),
        "p_value": c.p_value,
    }


def _p50_p95(h: Histogram) -> JSON:
    return {"p50": h.quantile(0.5), "p95": h.quantile(0.95)}


def _impact_fields(
    agg: Aggregates, names: dict[str, tuple[str, str]], workload: str, rev: str
) -> JSON:
    totals = agg.requests_by_workload()
    affected: list[JSON] = [
        {
            "workload": w,
            "service": _service(names, w),
            "hops": imp.min_hops,
            "affected_requests": imp.affected_requests,
            "requests": totals.get(w, 0),
        }
        for (ow, orev, w), imp in agg.impacts.items()
        if ow == workload and orev == rev and w != workload and imp.affected_requests > 0
    ]
    affected.sort(key=lambda a: (a["hops"], -a["affected_requests"], a["workload"]))
    entries, users, capped = _entrypoints(agg, names, workload, rev)
    origin = agg.origins.get((workload, rev))
    if origin is not None:
        capped = capped or len(origin.users) >= MAX_USERS
        users |= origin.users
    # OriginStats.max_hops already covers these; taking them too keeps max_hops >= every hops.
    hops = [a["hops"] for a in affected] + [e["hops"] for e in entries]
    out: JSON = {
        "affected_services": affected,
        "entrypoints": entries,
        "contained_by": _contained_by(agg, names, workload, rev),
        "max_hops": max([origin.max_hops if origin else 0, *hops]),
        "affected_traces": origin.affected_traces if origin else 0,
        "affected_users": len(users),
        "affected_users_capped": capped,
        "affected_users_reason": None,
        "exemplar_trace_ids": list(origin.exemplars) if origin else [],
    }
    if entries and not users and not _users_recorded(agg, entries):
        out["affected_users"] = None
        out["affected_users_reason"] = "no enduser.id on entry spans"
    return out


def _users_recorded(agg: Aggregates, entries: list[JSON]) -> bool:
    """Whether any request of the affected entry operations carried an ``enduser.id``."""
    return any(
        (total := agg.entry_totals.get((e["workload"], e["operation"]))) is not None
        and total.with_user > 0
        for e in entries
    )


def _entrypoints(
    agg: Aggregates, names: dict[str, tuple[str, str]], workload: str, rev: str
) -> tuple[list[JSON], set[str], bool]:
    entries: list[JSON] = []
    users: set[str] = set()
    capped = False
    for (ow, orev, w, op), imp in agg.entry_impacts.items():
        if ow != workload or orev != rev or imp.affected_requests <= 0:
            continue
        entries.append(
            {
                "workload": w,
                "service": _service(names, w),
                "operation": op,
                "hops": imp.min_hops,
                "affected_requests": imp.affected_requests,
                "requests": _requests(agg.entry_totals.get((w, op))),
                "affected_users": len(imp.users),
            }
        )
        users |= imp.users
        capped = capped or len(imp.users) >= MAX_USERS
    entries.sort(key=lambda e: (-e["affected_requests"], e["workload"], e["operation"]))
    return entries, users, capped


def _contained_by(
    agg: Aggregates, names: dict[str, tuple[str, str]], workload: str, rev: str
) -> list[JSON]:
    out: list[JSON] = [
        {"workload": w, "service": _service(names, w), "absorbed_requests": n.requests}
        for (ow, orev, w), n in agg.absorbed.items()
        if ow == workload and orev == rev and n.requests > 0
    ]
    out.sort(key=lambda c: (-c["absorbed_requests"], c["workload"]))
    return out


def _requests(count: EntryTotal | None) -> int:
    return 0 if count is None else count.requests


def _service(names: dict[str, tuple[str, str]], workload: str) -> str:
    return names.get(workload, ("", workload.split("/", 1)[-1]))[1]


def _empty_like(stats: RevisionStats) -> RevisionStats:
    return RevisionStats(kind=stats.kind, service=stats.service, version=stats.version)
