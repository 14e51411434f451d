"""The rollout gate (``GET /api/v1/gate``): a revision's verdict as one explicit state.

A deployment controller (an Argo Rollouts web metric, a Flagger webhook, a CI step) asks about a
canary that may be too young to judge, or not seen at all yet; an error answer there reads as a
failed check, so the gate answers every well-formed question with a state:

- ``regressed`` — the blast-radius verdict found a significant, material regression;
- ``healthy`` — a test could decide and found none;
- ``insufficient_data`` — the revision is seen but cannot be judged yet: too few requests on a
  side, no test that could decide, or no baseline to compare with;
- ``not_seen`` — no span of the workload, or of that revision, is retained yet.

Like the report, the gate is planned from the registry (``plan_gate``) and answered from one
snapshot (``gate_answer``); a malformed parameter is still a ``BadRequest``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlencode

from podtrace_collector.aggregate.window import Registry, Snapshot, Window
from podtrace_collector.errors import BadRequest, UnknownRevision, UnknownWorkload
from podtrace_collector.query.blast import BlastPlan, plan_blast_radius, report_of
from podtrace_collector.query.common import JSON, Revisions, require_revisions
from podtrace_collector.query.resolve import resolve_workload

NOT_SEEN = "not_seen"
STATES = ("regressed", "healthy", "insufficient_data", NOT_SEEN)
_NO_READ = Window(maps=frozenset())


@dataclass(frozen=True, slots=True)
class GatePlan:
    """The question asked, and the report to read when the revision is seen."""

    workload: str
    revision: str | None
    baseline: str | None
    report: BlastPlan | None  # None: not seen, nothing to read
    note: str = ""  # why the state is what it is, when the report does not say it

    @property
    def windows(self) -> tuple[Window, ...]:
        return self.report.windows if self.report is not None else ()


def plan_gate(
    registry: Registry,
    *,
    workload: str | None,
    service: str | None = None,
    version: str | None = None,
    revision: str | None = None,
    baseline: str | None = None,
    since_s: float | None = None,
    until_s: float | None = None,
    now_s: float,
) -> GatePlan:
    """Plan the gate's answer: ``not_seen`` needs no read; otherwise the blast-radius report's.

    Raises:
        BadRequest: a malformed parameter (names, window).
    """
    for what, value in (("revision", revision), ("baseline", baseline)):
        if value is not None and not value.strip():
            raise BadRequest(f"{what} is empty")
    asked = workload if workload is not None else service or ""
    try:
        name, by_version = resolve_workload(
            registry, workload=workload, service=service, version=version
        )
    except UnknownWorkload:
        return GatePlan(asked, revision, baseline, None, f"no span of {asked} is retained yet")
    except UnknownRevision:
        note = f"no span of {asked} at version {version} is retained yet"
        return GatePlan(asked, revision, baseline, None, note)
    revs = require_revisions(registry, name)
    rev = revision if revision is not None else by_version
    if rev is not None and not _known(revs, rev):
        note = f"no span of revision {rev} of {name} is retained yet"
        return GatePlan(name, rev, baseline, None, note)
    note = ""
    if baseline is not None and (baseline == (rev or revs[-1][0]) or not _known(revs, baseline)):
        note = (
            f"the baseline {baseline} is the revision itself: nothing to compare with"
            if baseline == (rev or revs[-1][0])
            else f"no span of the baseline {baseline} of {name} is retained: nothing to compare"
        )
    report = plan_blast_radius(
        registry,
        workload=name,
        revision=rev,
        baseline=None if note else baseline,
        since_s=since_s,
        until_s=until_s,
        now_s=now_s,
        revisions=revs,
    )
    if note:  # judged as a first revision: no baseline, so insufficient_data
        w = report.windows
        windows = (w[0], _NO_READ, w[2], _NO_READ, w[4], _NO_READ)
        report = replace(report, prior=None, windows=windows)
    return GatePlan(name, report.revision, baseline, report, note)


def gate_answer(snapshot: Snapshot[GatePlan]) -> JSON:
    """The gate's JSON for a snapshot read with a ``GatePlan``."""
    plan = snapshot.plan
    if plan.report is None:
        return _answer(plan, NOT_SEEN, [plan.note], None)
    report = report_of(plan.report, snapshot.windows)
    reasons = [plan.note] if plan.note else list(report["reasons"])
    return _answer(plan, str(report["verdict"]), reasons, report)


def _answer(plan: GatePlan, state: str, reasons: list[str], report: JSON | None) -> JSON:
    base = report["baseline"] if report is not None else None
    query = {"workload": plan.workload, "revision": plan.revision, "baseline": plan.baseline}
    return {
        "state": state,
        "reason": "; ".join(reasons),
        "reasons": reasons,
        "workload": plan.workload,
        "revision": plan.revision,
        "baseline": base["revision"] if base else None,
        "verdict": report["verdict"] if report else None,
        "p_value": report["p_value"] if report else None,
        "window": report["window"] if report else None,
        "first_seen": report["first_seen"] if report else None,
        "requests": report["requests"] if report else 0,
        "errors": report["errors"] if report else 0,
        "origin_error_rate": report["origin_error_rate"] if report else 0.0,
        "baseline_requests": base["requests"] if base else None,
        "baseline_origin_error_rate": base["origin_error_rate"] if base else None,
        "affected_services": len(report["affected_services"]) if report else 0,
        "affected_entrypoints": len(report["entrypoints"]) if report else 0,
        "max_hops": report["max_hops"] if report else 0,
        "report": _report_path(query) if report is not None else None,
    }


def _report_path(query: dict[str, str | None]) -> str:
    return "/api/v1/blast-radius?" + urlencode({k: v for k, v in query.items() if v is not None})


def _known(revs: Revisions, name: str) -> bool:
    return any(r == name for r, _ in revs)
