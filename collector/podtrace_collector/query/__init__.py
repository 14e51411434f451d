"""The query layer: stored ``Aggregates`` in, the JSON answers of the API (SPEC §3) out.

Plain functions, no I/O of their own: each takes the store's reader (``Reader``: start and end in
Unix seconds, ``None`` for unbounded, returning the merged ``Aggregates``) and/or the revision
registry (``Registry``), and raises a domain error (``errors.QueryError`` and its kinds) for a
query it cannot answer.

- ``resolve_workload`` — ``workload=`` / ``service=[&version=]`` parameters to a workload name
- ``blast_radius`` — ``GET /api/v1/blast-radius``
- ``rollouts`` — ``GET /api/v1/rollouts``
- ``workloads`` — ``GET /api/v1/workloads``
- ``graph`` — ``GET /api/v1/graph`` (over ``read(since, until)``)
"""

from __future__ import annotations

from podtrace_collector.query.blast import BEFORE_REVISION, SAME_WINDOW, blast_radius
from podtrace_collector.query.common import Reader, Registry
from podtrace_collector.query.graph import graph
from podtrace_collector.query.inventory import workloads
from podtrace_collector.query.resolve import check_workload, resolve_workload
from podtrace_collector.query.rollouts import rollouts

__all__ = [
    "BEFORE_REVISION",
    "SAME_WINDOW",
    "Reader",
    "Registry",
    "blast_radius",
    "check_workload",
    "graph",
    "resolve_workload",
    "rollouts",
    "workloads",
]
