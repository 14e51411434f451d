"""The query API: ``/api/v1/workloads``, ``rollouts``, ``blast-radius``, ``gate`` and ``graph``.

Thin edges around the pure functions of ``query``: parse the parameters, read what the query
plans from one snapshot of the store (``Store.read(plan)``), build the answer, return its JSON.
Every problem with a request is a domain error (``errors.QueryError``), which the app maps to its
HTTP status in one table (``api/errors.py``) and renders as ``{"error": {"code", "message"}}``.
Routes are plain ``def`` functions: FastAPI runs them in its thread pool, where each thread reads
SQLite through its own connection.

``router`` also carries the web page (``api.page``), so the app includes one router.  The bearer
token (``--api-token``) is checked by the app for every path, not here.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from podtrace_collector import query as report
from podtrace_collector.api import page
from podtrace_collector.durations import parse_window
from podtrace_collector.errors import BadRequest, NoStore
from podtrace_collector.store.base import Registry, Store, read_windows

JSON = dict[str, Any]
MAX_PARAM_CHARS = 512  # longer than any Kubernetes name or time; anything longer is garbage


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    """Every error response: ``{"error": {"code": "...", "message": "..."}}``."""

    error: ErrorDetail


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorEnvelope,
        "description": "a malformed parameter (`bad_request`, `bad_time`)",
    },
    401: {"model": ErrorEnvelope, "description": "`--api-token` is set and was not given"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "`unknown_workload` or `unknown_revision`"},
}

api = APIRouter(prefix="/api/v1", tags=["query"])

Since = Annotated[
    str | None,
    Query(
        description="Window start: RFC 3339 (`2026-11-24T10:00:00Z`) or a duration back from"
        " now (`15m`, `2h`, `7d`).",
        examples=["15m"],
    ),
]
Until = Annotated[
    str | None,
    Query(description="Window end, same formats as `since`; default: now.", examples=["5m"]),
]


def _store(request: Request) -> Store:
    store: Store | None = getattr(request.app.state, "store", None)
    if store is None:
        raise NoStore(
            "this collector stores no results (a sidecar): query the gateway",
        )
    return store


def _check(**params: str | None) -> None:
    for name, value in params.items():
        if value is not None and (len(value) > MAX_PARAM_CHARS or "\x00" in value):
            raise BadRequest(f"parameter {name} is too long or holds a NUL character")


def _window(
    since: str | None, until: str | None, now_s: float
) -> tuple[float | None, float | None]:
    _check(since=since, until=until)
    return parse_window(since, until, now_s)


@api.get("/workloads", summary="Workloads and their revisions", responses=_ERRORS)
def get_workloads(request: Request, since: Since = None, until: Until = None) -> JSON:
    """Every workload seen, with its revisions (version, first/last seen, pods) and their
    requests and errors over the window (default: everything retained)."""
    since_s, until_s = _window(since, until, time.time())
    snapshot = _store(request).read(lambda _: report.WorkloadsPlan(since_s, until_s))
    return report.workloads(snapshot)


@api.get("/rollouts", summary="Rollouts, newest first", responses=_ERRORS)
def get_rollouts(
    request: Request,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many rollouts.")] = 50,
) -> JSON:
    """Each time a workload's new revision appeared: from/to revision, when it started, and the
    verdict with summary counts of its blast radius (judged from its start until now)."""
    now_s = time.time()
    since_s, until_s = _window(since, until, now_s)
    snapshot = _store(request).read(
        lambda registry: report.plan_rollouts(
            registry, now_s=now_s, since_s=since_s, until_s=until_s, limit=limit
        )
    )
    return report.rollouts(snapshot)


@api.get(
    "/blast-radius",
    summary="The blast radius of a workload's revision",
    responses={**_ERRORS, **_NOT_FOUND},
)
def get_blast_radius(
    request: Request,
    workload: Annotated[
        str | None, Query(description="`namespace/name` of the workload.", examples=["shop/cart"])
    ] = None,
    revision: Annotated[
        str | None, Query(description="The revision (pod-template-hash); default: the newest.")
    ] = None,
    baseline: Annotated[
        str | None,
        Query(description="The revision to compare with; default: the one seen before it."),
    ] = None,
    since: Since = None,
    until: Until = None,
    service: Annotated[
        str | None,
        Query(description="A `service.name` instead of `workload` (services outside Kubernetes)."),
    ] = None,
    version: Annotated[
        str | None,
        Query(description="With `service` or `workload`: the newest revision of this version."),
    ] = None,
) -> JSON:
    """What the revision broke, how far away, for whom: its requests, errors and latency against
    the baseline with a verdict, the services and entry points its failures reached (with hop
    distances), where they were contained, affected users and exemplar trace ids.  The window
    defaults to the revision's first span until now."""
    _check(
        workload=workload, revision=revision, baseline=baseline, service=service, version=version
    )
    now_s = time.time()
    since_s, until_s = _window(since, until, now_s)

    def plan(registry: Registry) -> report.BlastPlan:
        name, by_version = report.resolve_workload(
            registry, workload=workload, service=service, version=version
        )
        return report.plan_blast_radius(
            registry,
            workload=name,
            revision=revision if revision is not None else by_version,
            baseline=baseline,
            since_s=since_s,
            until_s=until_s,
            now_s=now_s,
        )

    return report.blast_report(_store(request).read(plan))


class GateAnswer(BaseModel):
    """The gate's answer: one explicit state, always with status 200."""

    state: Literal["regressed", "healthy", "insufficient_data", "not_seen"] = Field(
        description="`regressed`: stop the rollout. `healthy`: no significant, material"
        " regression. `insufficient_data`: seen, but too few requests to judge yet (or no"
        " baseline). `not_seen`: no span of the workload or revision retained yet."
    )
    reason: str = Field(description="Why, in words (the verdict's reasons joined).")
    reasons: list[str]
    workload: str
    revision: str | None
    baseline: str | None = Field(description="The revision compared with; null when none.")
    verdict: str | None = Field(description="The report's verdict; null when `not_seen`.")
    p_value: float | None
    window: dict[str, str] | None = Field(description="`{start, end}`, whole minutes.")
    first_seen: str | None
    requests: int
    errors: int
    origin_error_rate: float
    baseline_requests: int | None
    baseline_origin_error_rate: float | None
    affected_services: int = Field(description="How many other workloads its failures reached.")
    affected_entrypoints: int
    max_hops: int
    report: str | None = Field(description="The path of the full blast-radius report.")


@api.get(
    "/gate",
    summary="A rollout gate: the revision's verdict as an explicit state",
    responses=_ERRORS,
    response_model=GateAnswer,
)
def get_gate(
    request: Request,
    workload: Annotated[
        str | None, Query(description="`namespace/name` of the workload.", examples=["shop/cart"])
    ] = None,
    revision: Annotated[
        str | None,
        Query(description="The revision under test (the canary's pod-template-hash)."),
    ] = None,
    baseline: Annotated[
        str | None, Query(description="The revision to compare with (the stable hash).")
    ] = None,
    since: Since = None,
    until: Until = None,
    service: Annotated[
        str | None, Query(description="A `service.name` instead of `workload`.")
    ] = None,
    version: Annotated[
        str | None, Query(description="With `service` or `workload`: the newest revision of it.")
    ] = None,
) -> JSON:
    """For deployment controllers (Argo Rollouts, Flagger, CI): the blast-radius verdict of a
    revision as `state`, answered with 200 even when the revision is too young to judge
    (`insufficient_data`) or not seen yet (`not_seen`), so that only `regressed` needs to stop
    a rollout.  Malformed parameters are still 400s."""
    _check(
        workload=workload, revision=revision, baseline=baseline, service=service, version=version
    )
    now_s = time.time()
    since_s, until_s = _window(since, until, now_s)
    snapshot = _store(request).read(
        lambda registry: report.plan_gate(
            registry,
            workload=workload,
            service=service,
            version=version,
            revision=revision,
            baseline=baseline,
            since_s=since_s,
            until_s=until_s,
            now_s=now_s,
        )
    )
    return report.gate_answer(snapshot)


@api.get("/graph", summary="The service dependency graph", responses=_ERRORS)
def get_graph(request: Request, since: Since = None, until: Until = None) -> JSON:
    """Workloads as nodes and caller→callee edges with calls, errors and latency over the
    window (default: everything retained)."""
    since_s, until_s = _window(since, until, time.time())
    (window,) = read_windows(_store(request), report.graph_window(since_s, until_s))
    return report.graph(window)


router = APIRouter()
router.include_router(api)
router.include_router(page.router)
