"""The request tree of one trace: failures, origins, propagation, containment, self time (SPEC §4).

``analyse_trace`` takes the spans of one trace in any order and of any shape and returns a
``TraceAnalysis``.  Definitions, as SPEC §4 states them:

* A **request** is a SERVER or CONSUMER span; a trace with none has its root spans as requests.
  Unknown span kinds count as INTERNAL.  A request has **failed** when its status is ERROR.
* A request's **parent request** is its nearest ancestor request; the **hop distance** between two
  requests is their depth difference in this tree.  The edge is **synchronous** unless the child
  is a CONSUMER.
* An **origin** is a failed request none of whose synchronous direct downstream requests failed.
  A failed non-origin inherits the origins of its failed synchronous direct downstream requests,
  transitively, and is **affected** by each at the hop distance.
* A failed synchronous direct downstream request whose parent request did not fail was
  **absorbed** by the parent's workload, on behalf of each of the child's origins.
* **Self time**: how long the caller waited for the request (the duration of its parent span when
  that is a CLIENT span and the edge is synchronous; otherwise the request's own duration) minus
  the union of the intervals it waited on its synchronous direct downstream requests, clamped at
  0.  Each waited interval is the downstream request's parent span when that span is inside the
  request's workload (the CLIENT span, which includes the network); when the downstream request
  hangs directly off the request's own span (no client span) or off a span of another workload,
  the downstream request's own interval stands in for it.
* Self time splits into **own time** (server-side self time: the request's own duration minus the
  same union of waits, clamped at 0) and **transit** (how long the caller waited minus the
  request's own duration, clamped at 0: network and queues to and from the workload's pods, and
  the caller's own scheduling; 0 without a caller CLIENT span).  Where no clamp applies (clocks
  agree), self time = own time + transit; in every case self time <= own time + transit.  A
  request's **caller workload** is the workload of its parent CLIENT span ("" without one): the
  workload whose calls the transit belongs to, normally the parent request's.

Robustness (real traces are messy): a parent id that is not in the trace makes the span the root
of its fragment; duplicate span ids keep the first span; a span naming itself or a cycle of
parents is broken at the span with the smallest span id (deterministic, independent of arrival
order).  Everything is iterative and linear in the number of spans (plus a sort per request of
its waited intervals), so traces of 100,000 spans and depth 10,000 are fine.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from podtrace_collector.analyse.workload import WorkloadInfo, workload_of
from podtrace_collector.model import (
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_SERVER,
    STATUS_ERROR,
    Span,
)

WorkloadRev = tuple[str, str]
_REQUEST_KINDS = frozenset((KIND_SERVER, KIND_CONSUMER))
# Origin workload-revision -> (smallest, largest) request-tree depth of such origins below.
OriginDepths = dict[WorkloadRev, tuple[int, int]]


class Request:
    """One request of a trace, with its place in the request tree and what analysis found.

    Attributes:
        span, info, key: the SERVER/CONSUMER (or root) span, its workload, ``(workload, revision)``.
        index: the position of ``span`` in ``TraceAnalysis.spans``.
        parent, depth: the parent request (``None`` for an entry point) and the depth below it.
        sync: the edge from the parent is synchronous (the request is not a CONSUMER).
        failed, origin: status ERROR; a failed request where the failure started.
        origins: for a failed request, origin workload-revision -> (min, max) origin depth.
        self_time_ms: see the module docstring; ``latency_ms`` is the request's own duration.
        own_ms, transit_ms: self time split into the request's own part and transit.
        caller_workload: the workload of the parent CLIENT span, or "" (then transit is 0).
        caller_revision: that span's revision ("" without one).
    """

    __slots__ = (
        "caller_revision",
        "caller_wait_ns",
        "caller_workload",
        "depth",
        "failed",
        "index",
        "info",
        "key",
        "origin",
        "origins",
        "own_ms",
        "parent",
        "self_time_ms",
        "span",
        "sync",
        "transit_ms",
        "waits",
    )

    def __init__(
        self,
        span: Span,
        info: WorkloadInfo,
        key: WorkloadRev,
        parent: Request | None,
        index: int = -1,
    ) -> None:
        self.span = span
        self.index = index
        self.info = info
        self.key = key  # (workload, revision)
        self.parent = parent
        self.depth: int = 0 if parent is None else parent.depth + 1
        self.sync = span.kind != KIND_CONSUMER
        self.failed = span.status == STATUS_ERROR
        self.origin = False
        # For a failed request: the workload-revisions of its origins (itself, for an origin).
        self.origins: OriginDepths | None = None
        self.waits: list[tuple[int, int]] | None = None
        self.self_time_ms = 0.0
        self.own_ms = 0.0
        self.transit_ms = 0.0
        # How long the caller waited: the parent CLIENT span's duration, set while building.
        self.caller_wait_ns = span.end_ns - span.start_ns
        self.caller_workload = ""  # the parent CLIENT span's workload, set while building
        self.caller_revision = ""

    @property
    def latency_ms(self) -> float:
        """The request's own duration."""
        return max(self.span.end_ns - self.span.start_ns, 0) / 1e6

    def affected_by(self) -> list[tuple[WorkloadRev, int, int]]:
        """``(origin workload-revision, min hops, max hops)`` for a failed non-origin request."""
        if self.origin or not self.origins:
            return []
        d = self.depth
        return [(k, lo - d, hi - d) for k, (lo, hi) in self.origins.items()]

    def __repr__(self) -> str:
        return f"Request({self.key[0]}@{self.key[1]} {self.span.name!r} depth={self.depth})"


class TraceAnalysis:
    """The analysed trace: deduplicated spans with their workloads, and its requests.

    ``parents``, ``span_requests`` and ``span_keys`` describe the span tree, index by index with
    ``spans``, for later passes over the same trace (``analyse.critical``); they live
    as long as the analysis, which is dropped once its trace is aggregated.
    """

    __slots__ = (
        "absorbed",
        "detached",
        "duplicates",
        "failed",
        "loose",
        "orphans",
        "parents",
        "requests",
        "seen",
        "span_keys",
        "span_requests",
        "spans",
        "start_ns",
        "unanswered",
    )

    def __init__(self) -> None:
        self.spans: list[Span] = []  # deduplicated, in arrival order
        self.parents: list[int] = []  # index of each span's parent, -1 for a root (cycles cut)
        # The nearest request at or above each span (None above every request).
        self.span_requests: list[Request | None] = []
        self.span_keys: list[WorkloadRev] = []  # (workload, revision) of each span
        # Per distinct resource: (workload, earliest span start, latest span end).
        self.seen: list[tuple[WorkloadInfo, int, int]] = []
        self.duplicates = 0
        self.start_ns = 0  # earliest positive span start (0 for an empty trace)
        self.requests: list[Request] = []  # parents before children
        # One (origin workload-revision, absorbing workload) per absorbed request and origin.
        self.absorbed: list[tuple[WorkloadRev, str]] = []
        # A fragment's open ends (``analyse.pairing``): synchronous requests whose parent span
        # is not in the trace, and the indices of CLIENT spans without a child request.
        self.orphans: list[Request] = []
        self.unanswered: list[int] = []
        # Synchronous requests without a parent request whose parent span is here, under a root
        # span naming a parent that is not (a pod's client spans cut from its server span):
        # with that parent span's id.  Their times are whole; their caller is elsewhere.
        self.loose: list[tuple[Request, bytes]] = []
        # A fragment cut from its trace above: no SERVER or CONSUMER span, and every root span
        # names a parent that is not here (its root spans stand as requests meanwhile).
        self.detached = False
        self.failed = False  # a request failed

    @property
    def trace_id(self) -> bytes:
        return self.spans[0].trace_id if self.spans else b""


def analyse_trace(spans: Iterable[Span]) -> TraceAnalysis:
    """Build the request tree of one trace and find failures, origins, containment, self time."""
    result = TraceAnalysis()
    index = _dedupe(spans, result)
    uniq = result.spans
    get = index.get  # holds no empty id: a root's parent is -1 too
    parent = result.parents = [get(s.parent_id, -1) for s in uniq]
    order = _tree_order(uniq, parent)
    meta = _resolve(result)
    result.span_keys = [m[1] for m in meta]
    near: list[Request | None] = [None] * len(uniq)
    result.span_requests = near
    result.requests = _build_requests(uniq, parent, order, meta, near, result)
    result.absorbed = _propagate(result.requests, result)
    _set_all_times(result.requests)
    return result


def _dedupe(spans: Iterable[Span], out: TraceAnalysis) -> dict[bytes, int]:
    """Keep the first span of each id; return ``{span id: index}``."""
    uniq = out.spans = list(spans)
    # Fast path (no duplicates): a comprehension keeps the *last* index of a repeated id, so a
    # size mismatch tells that there are duplicates and the slow path must run.
    index = {s.span_id: i for i, s in enumerate(uniq)}
    if len(index) == len(uniq):
        index.pop(b"", None)  # an empty span id cannot be anybody's parent
        return index
    out.spans = []
    index = {}
    for s in uniq:
        sid = s.span_id
        if sid in index:
            out.duplicates += 1
            continue
        if sid:
            index[sid] = len(out.spans)
        out.spans.append(s)
    return index


# Per distinct resource of a trace: [workload, (workload, revision), first start, last end].
_Meta = list[Any]


def _resolve(out: TraceAnalysis) -> list[_Meta]:
    """The workload of each span (``meta[i]`` for ``spans[i]``); fills ``seen``, ``start_ns``."""
    spans = out.spans
    # Spans of a trace share few resources: resolve each once (by identity, safe while alive).
    local: dict[int, _Meta] = {}
    meta: list[_Meta] = []
    append = meta.append
    last_resource = None
    got: _Meta = []
    for s in spans:
        resource = s.resource
        if resource is not last_resource:  # spans of one resource usually arrive together
            last_resource = resource
            got = local.get(id(resource))  # type: ignore[assignment]
            if got is None:
                info = workload_of(resource)
                got = local[id(resource)] = [info, (info.workload, info.revision), s.start_ns, 0]
        if s.start_ns < got[2]:
            got[2] = s.start_ns
        if s.end_ns > got[3]:
            got[3] = s.end_ns
        append(got)
    seen = out.seen = [(info, first, last) for info, _, first, last in local.values()]
    start_ns = min([first for _, first, _ in seen], default=0)
    if start_ns <= 0 and seen:  # a zero start time somewhere: find the earliest real one
        start_ns = min([t for s in spans if (t := s.start_ns) > 0], default=0)
    out.start_ns = start_ns
    return meta


def _tree_order(spans: list[Span], parent: list[int]) -> list[int]:
    """Span indices with every parent before its children; breaks cycles in ``parent``."""
    # Walk up from each span to the first one already placed, then place the path top-down.
    # Linear: every span is walked once.  ``mark`` is the number of the walk that visited it.
    mark = [0] * len(parent)
    order: list[int] = []
    walk = 0
    for i in range(len(parent)):
        if mark[i]:
            continue
        walk += 1
        path = []
        j = i
        while j >= 0 and not mark[j]:
            mark[j] = walk
            path.append(j)
            j = parent[j]
        if j >= 0 and mark[j] == walk:  # walked into its own path: a cycle (rare)
            return _tree_order_with_cycles(spans, parent)
        path.reverse()
        order += path
    return order


def _tree_order_with_cycles(spans: list[Span], parent: list[int]) -> list[int]:
    n = len(parent)
    children: list[list[int]] = [[] for _ in range(n)]
    order: list[int] = []
    for i, p in enumerate(parent):
        if p < 0:
            order.append(i)
        else:
            children[p].append(i)
    _extend_bfs(order, 0, children)
    start = len(order)  # the rest hangs off cycles: cut them, then walk down from the cuts
    order.extend(_break_cycles(spans, parent, order, children))
    _extend_bfs(order, start, children)
    return order


def _extend_bfs(order: list[int], start: int, children: list[list[int]]) -> None:
    i = start
    while i < len(order):
        kids = children[order[i]]
        if kids:
            order.extend(kids)
        i += 1


def _break_cycles(
    spans: list[Span], parent: list[int], seen: list[int], children: list[list[int]]
) -> list[int]:
    """Cut each cycle at its smallest span id; return the new roots, sorted by span id."""
    state = bytearray(len(parent))  # 0 unvisited, 1 on the current path, 2 done
    for i in seen:
        state[i] = 2
    cuts: list[int] = []
    for first in range(len(parent)):
        path: list[int] = []
        i = first
        while i >= 0 and state[i] == 0:
            state[i] = 1
            path.append(i)
            i = parent[i]
        if i >= 0 and state[i] == 1:  # walked into the current path: a new cycle
            cycle = path[path.index(i) :]
            cut = min(cycle, key=lambda j: spans[j].span_id)
            children[parent[cut]].remove(cut)
            parent[cut] = -1
            cuts.append(cut)
        for j in path:
            state[j] = 2
    cuts.sort(key=lambda j: spans[j].span_id)
    return cuts


def _build_requests(
    spans: list[Span],
    parent: list[int],
    order: list[int],
    meta: list[_Meta],
    near: list[Request | None],
    out: TraceAnalysis,
) -> list[Request]:
    """The requests, parents first; ``near[i]`` becomes the nearest request at or above span i;
    ``out.orphans`` and ``out.unanswered`` the trace's open ends."""
    any_request = any(s.kind in _REQUEST_KINDS for s in spans)
    requests: list[Request] = []
    clients: list[int] = []
    answered = bytearray(len(spans))  # 1 for a span that is a request's parent span
    for i in order:
        s = spans[i]
        p = parent[i]
        up = near[p] if p >= 0 else None
        if (s.kind in _REQUEST_KINDS) if any_request else p < 0:
            m = meta[i]
            r = Request(s, m[0], m[1], up, i)
            requests.append(r)
            near[i] = r
            if p >= 0:
                answered[p] = 1
                if r.sync:
                    ps = spans[p]
                    caller = meta[p][1]
                    if ps.kind == KIND_CLIENT:
                        r.caller_wait_ns = ps.end_ns - ps.start_ns
                        r.caller_workload, r.caller_revision = caller
                    if up is not None:  # ``up`` waited: see the module docstring
                        if ps is not up.span and caller[0] == up.key[0]:
                            interval = (ps.start_ns, ps.end_ns)
                        else:
                            interval = (s.start_ns, s.end_ns)
                        if up.waits is None:
                            up.waits = [interval]
                        else:
                            up.waits.append(interval)
                    else:
                        _add_loose(r, p, spans, parent, out)
            elif s.parent_id and r.sync:
                out.orphans.append(r)  # its caller is in another fragment, or never came
        else:
            near[i] = up
            if s.kind == KIND_CLIENT:
                clients.append(i)
    if clients:
        out.unanswered = [i for i in clients if not answered[i]]
    if not any_request:
        out.detached = bool(requests) and all(r.span.parent_id for r in requests)
    return requests


def _add_loose(
    r: Request, p: int, spans: list[Span], parent: list[int], out: TraceAnalysis
) -> None:
    while parent[p] >= 0:
        p = parent[p]
    if spans[p].parent_id:
        out.loose.append((r, spans[p].parent_id))


def _propagate(requests: list[Request], out: TraceAnalysis) -> list[tuple[WorkloadRev, str]]:
    """Children before parents: find origins, pass them up failed sync edges, note absorption."""
    absorbed: list[tuple[WorkloadRev, str]] = []
    for r in reversed(requests):
        if not r.failed:
            continue
        out.failed = True
        mine = r.origins
        if mine is None:  # no failed synchronous direct downstream request
            r.origin = True
            mine = r.origins = {r.key: (r.depth, r.depth)}
        p = r.parent
        if p is None or not r.sync:
            continue
        if not p.failed:
            workload = p.info.workload
            absorbed.extend((k, workload) for k in mine)
        elif p.origins is None:
            p.origins = dict(mine)
        else:
            theirs = p.origins
            for k, (lo, hi) in mine.items():
                cur = theirs.get(k)
                theirs[k] = (lo, hi) if cur is None else (min(cur[0], lo), max(cur[1], hi))
    return absorbed


def _set_all_times(requests: list[Request]) -> None:
    """``set_times`` of every request, ``split_times`` inlined (one or no wait is the rule)."""
    for r in requests:
        span = r.span
        waits = r.waits
        if waits is None:
            waited = 0
        elif len(waits) == 1:
            start_ns, end_ns = waits[0]
            waited = end_ns - start_ns if end_ns > start_ns else 0
        else:
            waited = union_ns(waits)
        own_ns = span.end_ns - span.start_ns
        if own_ns < 0:
            own_ns = 0
        self_ns = r.caller_wait_ns - waited
        r.self_time_ms = self_ns / 1e6 if self_ns > 0 else 0.0
        r.own_ms = (own_ns - waited) / 1e6 if own_ns > waited else 0.0
        if r.caller_workload:
            transit_ns = r.caller_wait_ns - own_ns
            r.transit_ms = transit_ns / 1e6 if transit_ns > 0 else 0.0


def set_times(r: Request) -> None:
    """(Re)compute the request's self time, own time and transit from its span, caller and waits."""
    span = r.span
    r.self_time_ms, r.own_ms, r.transit_ms = split_times(
        span.start_ns, span.end_ns, r.caller_wait_ns, bool(r.caller_workload), r.waits
    )


def split_times(
    start_ns: int,
    end_ns: int,
    caller_wait_ns: int,
    has_caller: bool,
    waits: list[tuple[int, int]] | None,
) -> tuple[float, float, float]:
    """``(self time, own time, transit)`` in ms of a request spanning ``[start_ns, end_ns]``
    whose caller waited ``caller_wait_ns`` (through a CLIENT span when ``has_caller``) and which
    waited on ``waits`` (sorted in place); see the module docstring."""
    waited = union_ns(waits) if waits else 0
    own_ns = max(end_ns - start_ns, 0)
    self_ns = caller_wait_ns - waited
    transit_ns = caller_wait_ns - own_ns if has_caller else 0
    return (
        self_ns / 1e6 if self_ns > 0 else 0.0,
        (own_ns - waited) / 1e6 if own_ns > waited else 0.0,
        transit_ns / 1e6 if transit_ns > 0 else 0.0,
    )


def union_ns(intervals: list[tuple[int, int]]) -> int:
    """The total length of the union of a non-empty list of intervals (sorted in place)."""
    intervals.sort()
    total = 0
    cur_start, cur_end = intervals[0]
    for start, end in intervals:
        if start > cur_end:
            total += max(cur_end - cur_start, 0)
            cur_start, cur_end = start, end
        elif end > cur_end:
            cur_end = end
    return total + max(cur_end - cur_start, 0)
