"""The query layer: the pure read-time core, from stored ``Aggregates`` to the API's answers.

No I/O: each answer is planned from the revision registry by a pure function (which windows to
read, which keys to load), the store answers the plan from one snapshot, and another pure
function builds the JSON from what was read.  Errors are domain errors (``errors.QueryError``
and its kinds); the API maps them to HTTP.

- ``resolve_workload`` — ``workload=`` / ``service=[&version=]`` parameters to a workload name
- ``plan_blast_radius`` → ``blast_report`` — ``GET /api/v1/blast-radius``
- ``plan_gate`` → ``gate_answer`` — ``GET /api/v1/gate`` (a rollout gate's explicit state)
- ``plan_rollouts`` → ``rollouts`` — ``GET /api/v1/rollouts``
- ``WorkloadsPlan`` → ``workloads`` — ``GET /api/v1/workloads``
- ``graph_window`` → ``graph`` — ``GET /api/v1/graph``
"""

from __future__ import annotations

from podtrace_collector.query.blast import (
    BEFORE_REVISION,
    SAME_WINDOW,
    BlastPlan,
    blast_radius,
    blast_report,
    plan_blast_radius,
)
from podtrace_collector.query.gate import GatePlan, gate_answer, plan_gate
from podtrace_collector.query.graph import graph, graph_window
from podtrace_collector.query.inventory import WorkloadsPlan, workloads
from podtrace_collector.query.resolve import check_workload, resolve_workload
from podtrace_collector.query.rollouts import RolloutsPlan, plan_rollouts, rollouts

__all__ = [
    "BEFORE_REVISION",
    "SAME_WINDOW",
    "BlastPlan",
    "GatePlan",
    "RolloutsPlan",
    "WorkloadsPlan",
    "blast_radius",
    "blast_report",
    "check_workload",
    "gate_answer",
    "graph",
    "graph_window",
    "plan_blast_radius",
    "plan_gate",
    "plan_rollouts",
    "resolve_workload",
    "rollouts",
    "workloads",
]
