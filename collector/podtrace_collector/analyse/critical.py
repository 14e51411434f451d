"""The critical path of every request of a trace and its time per workload@revision (SPEC §5).

``critical_shares`` takes an analysed trace (``requests.analyse_trace``) and returns, for each
request X, the shares ``cp(X, W@R)``: how much of X's duration each workload@revision decided,
with the hop distance from X to the nearest request of W@R on the path.

The walk (Jaeger's critical path; CRISP, USENIX ATC 2022), over X's whole subtree:

* Each span is clipped to its parent's clipped interval (X to its own).  A span with no positive
  overlap is ignored with its subtree; a span ending before it starts lasts 0.
* From X's end, the next critical child is the child with the latest clipped end at or before the
  current time; ties go to the earliest start, then the smallest span id.  The gap between that
  end and the current time is the parent's own critical time; the child is walked likewise, then
  the parent continues from the child's clipped start.  What is left before the first critical
  child is the parent's own.
* A CONSUMER span is the root of its own request and never a child in a walk: asynchronous work
  does not delay its producer, even when it happens to run inside the producer's span.  The
  PRODUCER span (handing the message over) does count.

Attribution: a span's own critical time belongs to its workload@revision, except that a CLIENT
span's belongs to the synchronous request that is its child (the network and queues to reach
those pods; with several, the one ending last, then the smallest span id); a CLIENT span with no
such child (a database, an external API) keeps its time.  The requests *on X's path* are those
the walk goes through and those a CLIENT span gives its time to; ``hops`` of W@R is the depth
difference from X to the nearest of them in W@R (0 for X's own).  Time of a span whose nearest
request is of another workload (an internal span carrying another resource) counts at the depth
of that nearest request.

How it is computed, once per trace, children before parents: each request's walk is summarised as
``{W@R: (critical ns, smallest request depth)}``.  The walk of a request X goes through the spans
of X itself (down to its downstream requests) and reuses the summary of a downstream request that
lies inside its clipped parent: that request's subtree is then clipped exactly as in its own
walk.  A downstream request crossing the interval (clock skew, a call outliving its caller) is
walked again, clipped, reusing in turn the summaries of the requests below it that lie inside.
Such re-walks are bounded by ``REWALK_BUDGET`` requests per walk: past it, a crossing request's
summary is scaled to its clipped length instead.  Real clock skew crosses a few requests at a
service boundary; only skew growing over many nested levels (a crafted trace) reaches the bound,
which keeps the worst case linear in the number of spans.  Nothing is kept once
``critical_shares`` returns.
"""

from __future__ import annotations

from typing import cast

from podtrace_collector.analyse.requests import Request, TraceAnalysis, WorkloadRev
from podtrace_collector.model import KIND_CLIENT, KIND_CONSUMER, KIND_SERVER, Span

# (workload@revision, critical time in ms, hops from the request)
Share = tuple[WorkloadRev, float, int]
RequestShares = tuple[Request, list[Share]]

REWALK_BUDGET = 32

# W@R -> (critical ns, smallest depth of a request of it on the path); values are immutable.
Summary = dict[WorkloadRev, tuple[int, int]]
_Owner = tuple[WorkloadRev, int]  # whose a span's own time is, and the depth of that request
_NO_OWNER: _Owner = (("", ""), 0)
# The walker's tables, bound once per trace: kids, summaries, near, spans, owners, keys, children.
_Tables = tuple[
    list["list[int] | None"],
    list["Summary | None"],
    list[Request],
    list[Span],
    list[_Owner],
    list[WorkloadRev],
    list["list[int] | None"],
]


def critical_shares(
    trace: TraceAnalysis, *, rewalk_budget: int = REWALK_BUDGET
) -> list[RequestShares]:
    """The critical-path shares of every request of ``trace``, in ``trace.requests`` order.

    Args:
        trace: the analysis of one trace, from ``requests.analyse_trace``.
        rewalk_budget: requests walked again, clipped, per walk before falling back to scaling
            their summaries (see the module docstring).

    Returns:
        ``(request, [(workload@revision, share_ms, hops), ...])`` per request, in no particular
        order within a request; only positive shares.  The shares of a request sum to its
        duration (up to float rounding).
    """
    summaries = critical_summaries(trace, rewalk_budget=rewalk_budget)
    out: list[RequestShares] = []
    for r in trace.requests:
        summary = summaries[r.index]
        if summary is not None:
            out.append((r, _shares_of(summary, r.depth)))
        else:
            length = max(r.span.end_ns - r.span.start_ns, 0)
            out.append((r, [(r.key, length / 1e6, 0)] if length > 0 else []))
    return out


def critical_summaries(
    trace: TraceAnalysis, *, rewalk_budget: int = REWALK_BUDGET
) -> list[Summary | None]:
    """``critical_shares`` before it is turned into lists, for the ingest path.

    Returns:
        Index by index with ``trace.spans``: for each request whose walk went through children,
        ``{W@R: (critical ns, depth of its nearest request on the path)}``, where a value's ns
        may be 0 (a request on the path with no time of its own); ``None`` for a request whose
        whole duration is its own (a share of its duration, 0 hops, when positive) and for
        every span that is not a request.
    """
    if not trace.requests:
        return []
    walker = _Walker(trace, rewalk_budget)
    walker.run(trace)
    return walker.summaries


class _Walker:
    """The walkable span tree of one trace, index by index with ``TraceAnalysis.spans``."""

    __slots__ = (
        "budget",
        "children",
        "keys",
        "kids",
        "near",
        "owners",
        "spans",
        "summaries",
    )

    def __init__(self, trace: TraceAnalysis, budget: int) -> None:
        spans = self.spans = trace.spans
        n = len(spans)
        self.budget = budget
        # Every span a walk reaches lies below a request: ``None`` is never read.
        self.near = cast(list[Request], trace.span_requests)
        self.keys = trace.span_keys
        children: list[list[int] | None] = [None] * n
        for i, p in enumerate(trace.parents):
            if p >= 0:
                c = children[p]
                if c is None:
                    children[p] = [i]
                else:
                    c.append(i)
        self.children = children
        # Prepared when first walked (``_prepare``): the children a walk goes through, sorted
        # latest end first, then earliest start, then span id; and whose own time the span's is.
        self.kids: list[list[int] | None] = [None] * n
        self.owners: list[_Owner] = [_NO_OWNER] * n
        self.summaries: list[Summary | None] = [None] * n  # of requests with a walk

    def run(self, trace: TraceAnalysis) -> None:
        """Every request's summary; children first, so a request's downstream requests have
        theirs when it is walked."""
        children, summaries = self.children, self.summaries
        prepare, walk = self._prepare, self._walk
        tables = (self.kids, summaries, self.near, self.spans, self.owners, self.keys, children)
        for r in reversed(trace.requests):
            x = r.index
            if children[x] is not None and prepare(x):
                summaries[x] = walk(x, tables)

    def _prepare(self, span: int) -> list[int]:
        """The children of ``span`` (it has some) a walk goes through, sorted; sets its owner."""
        spans = self.spans
        me = spans[span]
        lo, hi = me.start_ns, me.end_ns
        client = me.kind == KIND_CLIENT
        owner = span
        children = self.children[span]
        assert children is not None
        if len(children) == 1:  # most spans: no sorting, and a CLIENT span's SERVER is this one
            k = children[0]
            child = spans[k]
            kind = child.kind
            kids = []
            if kind != KIND_CONSUMER:  # asynchronous: the root of its own walk
                if client and kind == KIND_SERVER:
                    owner = k
                end, start = child.end_ns, child.start_ns
                if (end if end < hi else hi) > (start if start > lo else lo):  # overlaps the span
                    kids.append(k)
        else:
            kids = self._sorted_kids(children, lo, hi)
            if client:
                owner = self._called(children, span)
        self.kids[span] = kids
        self.owners[span] = (self.keys[owner], self.near[owner].depth)
        return kids

    def _sorted_kids(self, children: list[int], lo: int, hi: int) -> list[int]:
        """The children overlapping ``[lo, hi]`` (not CONSUMER spans), latest clipped end first,
        then earliest start, then span id (then arrival: ``children`` is in index order)."""
        spans = self.spans
        order = [
            (-(s.end_ns if s.end_ns < hi else hi), s.start_ns, s.span_id, k)
            for k in children
            if (s := spans[k]).kind != KIND_CONSUMER
        ]
        order.sort()
        return [item[3] for item in order if -item[0] > (item[1] if item[1] > lo else lo)]

    def _called(self, children: list[int], span: int) -> int:
        """A CLIENT span's SERVER child ending last (then smallest span id), else itself."""
        spans = self.spans
        called = span
        for k in children:
            child = spans[k]
            if child.kind == KIND_SERVER and (called == span or _ends_after(child, spans[called])):
                called = k
        return called

    def _walk(self, x: int, tables: _Tables) -> Summary:
        """The critical path of request ``x`` (prepared; its downstream requests have theirs).

        Iterative: the span being walked lives in locals, its ancestors on ``stack``.
        """
        kids_of, summaries, near, spans, owners, keys, children = tables
        budget = self.budget
        acc: Summary = {}
        get = acc.get
        stack: list[tuple[int, int, int, list[int], int, int, int]] = []
        span, lo, hi, idx, forced = x, spans[x].start_ns, spans[x].end_ns, 0, -1
        t, own = hi, 0
        kids = kids_of[x]
        assert kids is not None
        while True:
            c = -1
            if forced >= 0:  # the first child of a span whose end is clipped
                c, ce, forced = forced, hi, -1
            else:
                n_kids = len(kids)
                while idx < n_kids:
                    k = kids[idx]
                    idx += 1
                    ce = spans[k].end_ns
                    if ce > hi:
                        ce = hi
                    if ce <= t:
                        if ce > lo:
                            c = k
                        else:
                            idx = n_kids
                        break
            if c < 0:  # the span is done: the rest is its own
                own += t - lo
                if own or near[span].index == span:  # a request registers its depth
                    key, depth = owners[span]
                    cur = get(key)
                    if cur is None:
                        acc[key] = (own, depth)
                    else:
                        acc[key] = (cur[0] + own, depth if depth < cur[1] else cur[1])
                if not stack:
                    return acc
                span, lo, hi, kids, idx, t, own = stack.pop()
                continue
            own += t - ce
            child = spans[c]
            t = cs = child.start_ns if child.start_ns > lo else lo
            while True:  # child ``c`` over ``[cs, ce]``
                grandchildren = children[c]
                if grandchildren is None:  # a leaf: all of its time is its own
                    key, depth = keys[c], near[c].depth
                    cur = get(key)
                    if cur is None:
                        acc[key] = (ce - cs, depth)
                    else:
                        acc[key] = (cur[0] + ce - cs, depth if depth < cur[1] else cur[1])
                    break
                sub = summaries[c]
                if sub is None and len(grandchildren) == 1:
                    # One child (a CLIENT span and its SERVER span: most calls), not walked
                    # apart: the span's own time is around the child clipped to it, and the walk
                    # goes on in the child.  ``_prepare`` in short.
                    k = grandchildren[0]
                    s = spans[k]
                    kind = s.kind
                    k_end = s.end_ns if s.end_ns < ce else ce
                    k_start = s.start_ns if s.start_ns > cs else cs
                    if kind == KIND_CONSUMER or k_end <= k_start:
                        ns = ce - cs
                    else:
                        ns = ce - k_end + k_start - cs
                    if ns:
                        owner = k if kind == KIND_SERVER and child.kind == KIND_CLIENT else c
                        key, depth = keys[owner], near[owner].depth
                        cur = get(key)
                        if cur is None:
                            acc[key] = (ns, depth)
                        else:
                            acc[key] = (cur[0] + ns, depth if depth < cur[1] else cur[1])
                    if kind == KIND_CONSUMER or k_end <= k_start:
                        break
                    c, child, cs, ce = k, s, k_start, k_end
                    continue
                ckids = kids_of[c]
                if ckids is None:
                    ckids = self._prepare(c)
                child_end = child.end_ns
                if not ckids:
                    _add(acc, owners[c], ce - cs)
                elif sub is not None and cs == child.start_ns and ce == child_end:
                    _merge(acc, sub)  # a downstream request inside its clipped parent
                elif sub is not None and budget <= 0:
                    self._scaled(c, ce - cs, acc)
                else:  # descend; a clipped downstream request costs budget
                    budget -= sub is not None
                    stack.append((span, lo, hi, kids, idx, t, own))
                    span, lo, hi, kids, idx, t, own = c, cs, ce, ckids, 0, ce, 0
                    if ce < child_end:
                        # Every child ending at or after ``ce`` now ends there, so the first
                        # critical one is the earliest to start of them (then the smallest span
                        # id).  They lead the sorted kids: the walk goes on past them.
                        n_kids = len(kids)
                        best = None
                        while idx < n_kids:
                            k = kids[idx]
                            s = spans[k]
                            if (s.end_ns if s.end_ns < child_end else child_end) < ce:
                                break
                            idx += 1
                            if s.start_ns < ce and (
                                best is None
                                or (s.start_ns, s.span_id) < (best.start_ns, best.span_id)
                            ):
                                best, forced = s, k
                break

    def _scaled(self, request: int, length: int, acc: Summary) -> None:
        """Past the re-walk budget: the request's own summary scaled down to ``length``."""
        sub = self.summaries[request]
        assert sub is not None
        full = self.spans[request].end_ns - self.spans[request].start_ns
        given = 0
        for key, (ns, depth) in sub.items():
            part = ns * length // full
            if part:
                _add(acc, (key, depth), part)
                given += part
        if length > given:
            _add(acc, self.owners[request], length - given)


def _ends_after(a: Span, b: Span) -> bool:
    """``a`` ends after ``b``, or at the same time with a smaller span id; a span ending before
    it starts ends where it starts (it lasts 0, as everywhere in the walk)."""
    a_end = a.end_ns if a.end_ns > a.start_ns else a.start_ns
    b_end = b.end_ns if b.end_ns > b.start_ns else b.start_ns
    return (a_end, b.span_id) > (b_end, a.span_id)


def _add(acc: Summary, owner: _Owner, ns: int) -> None:
    key, depth = owner
    cur = acc.get(key)
    if cur is None:
        acc[key] = (ns, depth)
    else:
        acc[key] = (cur[0] + ns, depth if depth < cur[1] else cur[1])


def _merge(acc: Summary, sub: Summary) -> None:
    get = acc.get
    for key, value in sub.items():
        cur = get(key)
        if cur is None:
            acc[key] = value
        else:
            depth = value[1]
            acc[key] = (cur[0] + value[0], depth if depth < cur[1] else cur[1])


def _shares_of(summary: Summary, depth: int) -> list[Share]:
    return [(key, ns / 1e6, d - depth) for key, (ns, d) in summary.items() if ns > 0]
