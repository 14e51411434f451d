"""Rollouts: each time a workload's new revision appeared, with the verdict on it.

A rollout is a consecutive pair of a workload's revisions ordered by first span seen.  Each is
summarised from the blast-radius report of the new revision with the previous one as baseline,
over the new revision's lifetime: from its first span to its last (or now).  For a revision still
serving that is the report's default window; for one already replaced it keeps the comparison to
the time it was live (and keeps the reads short).  Only the newest ``limit`` rollouts are
reported; planning is one pass over the registry, so the cost grows with the registry and the
limit, not with their product.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from podtrace_collector.aggregate.window import Registry, Snapshot, Window
from podtrace_collector.durations import format_time
from podtrace_collector.query.blast import BlastPlan, plan_blast_radius, report_of
from podtrace_collector.query.common import JSON, by_workload, identities

DEFAULT_LIMIT = 20
# The window ends just after the last span so that the bucket holding it is read.
_LAST_SPAN_MARGIN_S = 1.0

# Report fields copied into a rollout summary as they are.
_SUMMARY_FIELDS = (
    "kind",
    "service",
    "verdict",
    "p_value",
    "reasons",
    "slowdown",
    "requests",
    "errors",
    "origin_errors",
    "error_rate",
    "max_hops",
    "affected_traces",
    "affected_users",
)


@dataclass(frozen=True, slots=True)
class RolloutsPlan:
    """The rollouts to report, newest first, each with its report's plan."""

    reports: tuple[tuple[float, BlastPlan], ...]  # (started at, the new revision's plan)

    @property
    def windows(self) -> list[Window]:
        return [w for _, plan in self.reports for w in plan.windows]


def plan_rollouts(
    registry: Registry,
    *,
    now_s: float,
    since_s: float | None = None,
    until_s: float | None = None,
    limit: int = DEFAULT_LIMIT,
) -> RolloutsPlan:
    """The newest ``limit`` rollouts of every workload, and what their reports need read.

    Args:
        registry: the revision registry.
        now_s: the current time; a rollout is judged from its start until now, or until the
            last span of its new revision if that one is no longer seen.
        since_s: only rollouts that started at or after this time.
        until_s: only rollouts that started before this time.
        limit: at most this many rollouts.
    """
    groups = by_workload(registry)
    found = []
    for workload, revs in groups.items():
        for (old, _), (new, new_st) in pairwise(revs):
            started_s = new_st.first_seen_ns / 1e9
            if (since_s is None or started_s >= since_s) and (
                until_s is None or started_s < until_s
            ):
                ended_s = max(new_st.last_seen_ns / 1e9, started_s) + _LAST_SPAN_MARGIN_S
                found.append((started_s, workload, new, old, ended_s))
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    names = identities(registry.items())
    plans = tuple(
        (
            started_s,
            plan_blast_radius(
                registry,
                workload=workload,
                revision=new,
                baseline=old,
                until_s=min(now_s, ended_s),
                now_s=now_s,
                names=names,
                revisions=groups[workload],
            ),
        )
        for started_s, workload, new, old, ended_s in found[: max(limit, 0)]
    )
    return RolloutsPlan(plans)


def rollouts(snapshot: Snapshot[RolloutsPlan]) -> JSON:
    """``{"rollouts": [...]}``, newest first, from a snapshot read with ``plan_rollouts``.

    Returns:
        Each rollout: ``workload``, ``kind``, ``service``, ``from_revision``, ``to_revision``,
        ``from_version``, ``to_version``, ``started_at`` (RFC 3339), ``window`` (the new
        revision's lifetime, ``{start, end}``, in whole minutes), ``verdict``, ``p_value``,
        ``reasons``, ``slowdown``, ``requests``, ``errors``, ``origin_errors``, ``error_rate`` (of
        the new revision), ``baseline_requests``, ``affected_services`` (a count),
        ``affected_entrypoints`` (a count), ``slowed_services`` and ``slowed_entrypoints`` (counts
        of the report's ``latency_impact``), ``max_hops``, ``affected_traces``,
        ``affected_users``.
    """
    out = []
    windows = iter(snapshot.windows)
    for started_s, plan in snapshot.plan.reports:
        report = report_of(plan, [next(windows) for _ in plan.windows])
        assert plan.prior is not None  # a rollout has an old revision
        summary: JSON = {
            "workload": plan.workload,
            "from_revision": plan.prior[0],
            "to_revision": plan.revision,
            "from_version": plan.prior[1].version,
            "to_version": plan.stats.version,
            "started_at": format_time(started_s),
            "window": report["window"],
        }
        summary.update({k: report[k] for k in _SUMMARY_FIELDS})
        summary["baseline_requests"] = report["baseline"]["requests"]
        summary["affected_services"] = len(report["affected_services"])
        summary["affected_entrypoints"] = len(report["entrypoints"])
        summary["slowed_services"] = len(report["latency_impact"]["services"])
        summary["slowed_entrypoints"] = len(report["latency_impact"]["entrypoints"])
        out.append(summary)
    return {"rollouts": out}
