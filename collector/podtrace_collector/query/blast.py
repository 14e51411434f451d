"""The blast-radius report of one workload revision (SPEC §3 report, §4 definitions).

Plain functions over stored ``Aggregates``: the store's reader is called once for the report's
window and at most once more for a baseline measured before the revision appeared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from podtrace_collector.aggregate.stats import (
    MAX_USERS,
    Aggregates,
    RevisionStats,
    WorkloadRev,
)
from podtrace_collector.errors import BadRequest, BadTime, UnknownRevision
from podtrace_collector.query.common import (
    JSON,
    OriginReader,
    Reader,
    Registry,
    counts_json,
    identities,
    require_revisions,
    window_json,
)
from podtrace_collector.query.resolve import check_workload
from podtrace_collector.query.verdict import MIN_REQUESTS, decide

# Baseline measured alongside the revision (a canary) or just before the revision appeared.
SAME_WINDOW = "same_window"
BEFORE_REVISION = "before_revision"

_MAX_NAME = 320  # longest name echoed back in an error message


@dataclass(frozen=True, slots=True)
class _Baseline:
    revision: str
    version: str
    stats: RevisionStats
    start_s: float
    end_s: float
    mode: str


def blast_radius(
    read: Reader,
    registry: Registry,
    *,
    workload: str,
    revision: str | None = None,
    baseline: str | None = None,
    since_s: float | None = None,
    until_s: float | None = None,
    now_s: float,
    origin_read: OriginReader | None = None,
) -> JSON:
    """The blast-radius report of ``workload`` at ``revision`` (SPEC §3 fields, and more).

    Defaults: ``revision`` is the newest revision (by first span seen); the window runs from its
    first span until ``now_s``; ``baseline`` is the revision first seen before it, measured over
    the same window when it served at least ``MIN_REQUESTS`` requests there (a canary), else over
    an equal-length window ending when the revision appeared (``baseline_window.mode`` says which).

    Added fields: ``origin_error_rate`` (and in ``baseline``), ``reasons`` (the verdict in words),
    ``baseline_window`` (``{start, end, mode}`` or null), ``affected_users_capped`` (true when a
    user set hit its cap, making ``affected_users`` a lower bound), ``hops`` on entry points.

    ``origin_read`` (``Store.read``), when given, is used instead of ``read`` and asked for the
    report's origin's impacts only: the same report, without reading every other origin's.

    Raises:
        UnknownWorkload, UnknownRevision: nothing retained of that workload or revision.
        BadRequest: a malformed name or a baseline equal to the revision.
        BadTime: a bad window.
    """
    revs = require_revisions(registry, check_workload(workload))
    rev, stats = _pick(revs, workload, revision, "revision")
    prior = (
        _previous(revs, rev) if baseline is None else _pick(revs, workload, baseline, "baseline")
    )
    if prior is not None and prior[0] == rev:
        raise BadRequest(f"baseline {rev!r} is the revision itself: compare two revisions")
    first_s = stats.first_seen_ns / 1e9
    start_s, end_s = _window(first_s, since_s, until_s, now_s)
    agg = _reader(read, origin_read, (workload, rev))(start_s, end_s)
    current = agg.revisions.get((workload, rev)) or _empty_like(stats)
    base = None
    if prior is not None:
        # The baseline uses revision counters only: no impacts but the prior's are needed.
        prior_read = _reader(read, origin_read, (workload, prior[0]))
        base = _baseline(prior_read, agg, workload, prior, first_s, start_s, end_s)
    report: JSON = {
        "workload": workload,
        "kind": stats.kind,
        "service": stats.service or workload.split("/", 1)[1],
        "revision": rev,
        "version": stats.version,
        "window": window_json(start_s, end_s),
        **counts_json(current),
    }
    report.update(_verdict_fields(current, base))
    report.update(_impact_fields(agg, registry, workload, rev))
    return report


def _reader(read: Reader, origin_read: OriginReader | None, origin: WorkloadRev) -> Reader:
    if origin_read is None:
        return read
    return lambda start_s, end_s: origin_read(start_s, end_s, origin=origin)


def _pick(
    revs: list[tuple[str, RevisionStats]], workload: str, name: str | None, what: str
) -> tuple[str, RevisionStats]:
    if name is None:
        return revs[-1]
    if not name.strip():
        raise BadRequest(f"{what} is empty")
    for r, st in revs:
        if r == name:
            return r, st
    known = [r for r, _ in revs][-10:]
    raise UnknownRevision(
        f"workload {workload!r} has no {what} {name[:_MAX_NAME]!r} (newest known: {known})",
    )


def _previous(revs: list[tuple[str, RevisionStats]], rev: str) -> tuple[str, RevisionStats] | None:
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


def _baseline(
    read: Reader,
    agg: Aggregates,
    workload: str,
    prior: tuple[str, RevisionStats],
    first_s: float,
    start_s: float,
    end_s: float,
) -> _Baseline:
    rev, version = prior[0], prior[1].version
    same = agg.revisions.get((workload, rev))
    # Windows resolve to whole minutes, so a baseline that stopped just before R appeared can
    # still have requests "in" R's window: only a baseline seen after R's first span ran alongside.
    alongside = prior[1].last_seen_ns >= first_s * 1e9
    if same is not None and same.requests >= MIN_REQUESTS and alongside:
        return _Baseline(rev, version, same, start_s, end_s, SAME_WINDOW)
    # Too few requests alongside the revision: compare with the time just before it appeared.
    b_start, b_end = first_s - (end_s - start_s), first_s
    before = read(b_start, b_end).revisions.get((workload, rev)) or RevisionStats()
    return _Baseline(rev, version, before, b_start, b_end, BEFORE_REVISION)


def _verdict_fields(current: RevisionStats, base: _Baseline | None) -> JSON:
    verdict = decide(current, None if base is None else base.stats)
    out: JSON = {"baseline": None, "baseline_window": None}
    if base is not None:
        counts = counts_json(base.stats)
        out["baseline"] = {"revision": base.revision, "version": base.version, **counts}
        out["baseline_window"] = {**window_json(base.start_s, base.end_s), "mode": base.mode}
    out.update(verdict=verdict.verdict, p_value=verdict.p_value, reasons=list(verdict.reasons))
    return out


def _impact_fields(agg: Aggregates, registry: Registry, workload: str, rev: str) -> JSON:
    names = identities(registry.items(), agg.revisions.items())
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
    return {
        "affected_services": affected,
        "entrypoints": entries,
        "contained_by": _contained_by(agg, names, workload, rev),
        "max_hops": max([origin.max_hops if origin else 0, *hops]),
        "affected_traces": origin.affected_traces if origin else 0,
        "affected_users": len(users),
        "affected_users_capped": capped,
        "exemplar_trace_ids": list(origin.exemplars) if origin else [],
    }


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
                "requests": agg.entry_totals.get((w, op), 0),
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
        {"workload": w, "service": _service(names, w), "absorbed_requests": n}
        for (ow, orev, w), n in agg.absorbed.items()
        if ow == workload and orev == rev and n > 0
    ]
    out.sort(key=lambda c: (-c["absorbed_requests"], c["workload"]))
    return out


def _service(names: dict[str, tuple[str, str]], workload: str) -> str:
    return names.get(workload, ("", workload.split("/", 1)[-1]))[1]


def _empty_like(stats: RevisionStats) -> RevisionStats:
    return RevisionStats(kind=stats.kind, service=stats.service, version=stats.version)
