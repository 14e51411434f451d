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

from podtrace_collector.analyse.requests import Request, TraceAnalysis, WorkloadRev
from podtrace_collector.model import KIND_CLIENT, KIND_CONSUMER

# (workload@revision, critical time in ms, hops from the request)
Share = tuple[WorkloadRev, float, int]
RequestShares = tuple[Request, list[Share]]

REWALK_BUDGET = 32

# W@R -> (critical ns, smallest depth of a request of it on the path); values are immutable.
_Summary = dict[WorkloadRev, tuple[int, int]]


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
    if not trace.requests:
        return []
    shares = _Walker(trace, rewalk_budget).run(trace)
    return [(r, shares.get(r, [])) for r in trace.requests]


class _Walker:
    """The walkable span tree of one trace, index by index with ``TraceAnalysis.spans``."""

    __slots__ = (
        "budget",
        "client_child",
        "ends",
        "keys",
        "kids",
        "near",
        "owners",
        "spans",
        "starts",
        "summaries",
    )

    def __init__(self, trace: TraceAnalysis, budget: int) -> None:
        spans = self.spans = trace.spans
        n = len(spans)
        self.budget = budget
        self.near = trace.span_requests
        self.keys = trace.span_keys
        self.starts = [s.start_ns for s in spans]
        self.ends = [s.end_ns if s.end_ns > s.start_ns else s.start_ns for s in spans]
        # Children in a walk, sorted latest (clipped) end first, then earliest start, span id.
        self.kids: list[list[int] | None] = [None] * n
        self.summaries: list[_Summary | None] = [None] * n  # of requests with children
        self.client_child: dict[int, int] = {}  # CLIENT span -> the request its time goes to
        # Whose each span's own time is, and the depth of that request (set children first).
        self.owners: list[tuple[WorkloadRev, int]] = [(("", ""), 0)] * n

    def run(self, trace: TraceAnalysis) -> dict[Request, list[Share]]:
        """Children first: link each span to its parent, walk each request once it is complete."""
        spans, near, parents, starts, ends = (
            self.spans,
            self.near,
            trace.parents,
            self.starts,
            self.ends,
        )
        kids_of, summaries, client_child = self.kids, self.summaries, self.client_child
        keys, owners = self.keys, self.owners
        shares: dict[Request, list[Share]] = {}
        for i in reversed(trace.order):
            r = near[i]
            if r is None:
                continue  # above every request: in no walk
            span = spans[i]
            kids = kids_of[i]
            if kids is not None and len(kids) > 1:
                hi = ends[i]
                kids.sort(
                    key=lambda c: (-(ends[c] if ends[c] < hi else hi), starts[c], spans[c].span_id)
                )
            cc = client_child.get(i)
            owners[i] = (keys[i], r.depth) if cc is None else (keys[cc], near[cc].depth)  # type: ignore[union-attr]
            p = parents[i]
            if r.span is span:
                if kids is None:
                    length = ends[i] - starts[i]
                    shares[r] = [(r.key, length / 1e6, 0)] if length > 0 else []
                else:
                    summary = summaries[i] = self._walk(i)
                    shares[r] = _shares_of(summary, r.depth)
                if span.kind == KIND_CONSUMER or p < 0 or near[p] is None:
                    continue  # the root of its own walk
                if spans[p].kind == KIND_CLIENT:
                    j = client_child.get(p)
                    if j is None or (ends[i], spans[j].span_id) > (ends[j], span.span_id):
                        client_child[p] = i
            s0, e0, sp, ep = starts[i], ends[i], starts[p], ends[p]
            if (e0 if e0 < ep else ep) > (s0 if s0 > sp else sp):  # overlaps its parent
                k = kids_of[p]
                if k is None:
                    kids_of[p] = [i]
                else:
                    k.append(i)
        return shares

    def _walk(self, x: int) -> _Summary:
        """The critical path of request ``x`` (whose children all have theirs).

        Iterative; frames are ``[span, lo, hi, next kid, time, own, forced kid or -1]``.
        """
        starts, ends, kids_of, summaries = self.starts, self.ends, self.kids, self.summaries
        near, spans, owners = self.near, self.spans, self.owners
        budget = self.budget
        acc: _Summary = {}
        stack = [[x, starts[x], ends[x], 0, ends[x], 0, -1]]
        while stack:
            frame = stack[-1]
            span, lo, hi, idx, t, own, c = frame
            if c >= 0:  # the first child of a span whose end is clipped
                ce = hi
                frame[6] = -1
            else:
                kids = kids_of[span]
                assert kids is not None
                while idx < len(kids):
                    k = kids[idx]
                    idx += 1
                    ce = ends[k] if ends[k] < hi else hi
                    if ce <= t:
                        if ce > lo:
                            c = k
                        else:
                            idx = len(kids)
                        break
            if c < 0:
                own += t - lo
                if own or near[span].span is spans[span]:  # type: ignore[union-attr]
                    key, depth = owners[span]
                    cur = acc.get(key)
                    if cur is None:
                        acc[key] = (own, depth)
                    else:
                        acc[key] = (cur[0] + own, depth if depth < cur[1] else cur[1])
                stack.pop()
                continue
            own += t - ce
            cs = starts[c] if starts[c] > lo else lo
            frame[3], frame[4], frame[5] = idx, cs, own
            sub = summaries[c]
            if kids_of[c] is None:  # a leaf: all of its time is its owner's
                key, depth = owners[c]
                cur = acc.get(key)
                if cur is None:
                    acc[key] = (ce - cs, depth)
                else:
                    acc[key] = (cur[0] + ce - cs, depth if depth < cur[1] else cur[1])
            elif sub is not None and cs == starts[c] and ce == ends[c]:
                _merge(acc, sub)
            elif sub is not None and budget <= 0:
                self._scaled(c, ce - cs, acc)
            else:
                budget -= sub is not None
                if ce == ends[c]:
                    stack.append([c, cs, ce, 0, ce, 0, -1])
                else:
                    stack.append(self._clipped_frame(c, cs, ce))
        return acc

    def _clipped_frame(self, span: int, lo: int, hi: int) -> list[int]:
        """A frame walking ``span`` over ``[lo, hi]``, its end clipped: every child ending at or
        after ``hi`` now ends there, so the first critical one is the earliest to start of them
        (then the smallest span id); they lead the sorted kids."""
        starts, ends, spans = self.starts, self.ends, self.spans
        kids = self.kids[span]
        assert kids is not None
        own_end = ends[span]
        best, idx = -1, 0
        while idx < len(kids):
            k = kids[idx]
            if (ends[k] if ends[k] < own_end else own_end) < hi:
                break
            idx += 1
            if starts[k] < hi and (
                best < 0 or (starts[k], spans[k].span_id) < (starts[best], spans[best].span_id)
            ):
                best = k
        return [span, lo, hi, idx, hi, 0, best]

    def _scaled(self, request: int, length: int, acc: _Summary) -> None:
        """Past the re-walk budget: the request's own summary scaled down to ``length``."""
        sub = self.summaries[request]
        assert sub is not None
        full = self.ends[request] - self.starts[request]
        given = 0
        for key, (ns, depth) in sub.items():
            part = ns * length // full
            if part:
                _add(acc, (key, depth), part)
                given += part
        if length > given:
            _add(acc, self.owners[request], length - given)


def _add(acc: _Summary, owner: tuple[WorkloadRev, int], ns: int) -> None:
    key, depth = owner
    cur = acc.get(key)
    if cur is None:
        acc[key] = (ns, depth)
    else:
        acc[key] = (cur[0] + ns, depth if depth < cur[1] else cur[1])


def _merge(acc: _Summary, sub: _Summary) -> None:
    get = acc.get
    for key, value in sub.items():
        cur = get(key)
        if cur is None:
            acc[key] = value
        else:
            depth = value[1]
            acc[key] = (cur[0] + value[0], depth if depth < cur[1] else cur[1])


def _shares_of(summary: _Summary, depth: int) -> list[Share]:
    return [(key, ns / 1e6, d - depth) for key, (ns, d) in summary.items() if ns > 0]
