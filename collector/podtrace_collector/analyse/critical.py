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

How it is computed, once per trace, children before parents: each span's walk over its own
interval is summarised as ``{W@R: (critical ns, smallest request depth)}``.  A parent reuses a
child's summary when the child lies inside the parent's clipped interval (the child's subtree is
then clipped exactly as in its own walk), taking the child's dict over when nobody can need it
again.  A child crossing the interval (clock skew, a child outliving its parent) is walked again,
clipped, reusing the summaries of its descendants that lie inside their clipped parents.  Those
re-walks are bounded by ``REWALK_BUDGET`` spans per span: past it, a crossing child's summary is
scaled to its clipped length instead.  Real clock skew crosses a few spans at a service boundary;
only skew growing over many nested levels (a crafted trace) reaches the bound, which keeps the
worst case linear.  Nothing is kept once ``critical_shares`` returns.
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
_Owner = tuple[WorkloadRev, int]


def critical_shares(
    trace: TraceAnalysis, *, rewalk_budget: int = REWALK_BUDGET
) -> list[RequestShares]:
    """The critical-path shares of every request of ``trace``, in ``trace.requests`` order.

    Args:
        trace: the analysis of one trace, from ``requests.analyse_trace``.
        rewalk_budget: spans walked again per span for children crossing their parent's clipped
            interval, before falling back to scaling (see the module docstring).

    Returns:
        ``(request, [(workload@revision, share_ms, hops), ...])`` per request, in no particular
        order within a request; only positive shares.  The shares of a request sum to its
        duration (up to float rounding).
    """
    if not trace.requests:
        return []
    tree = _Tree(trace, rewalk_budget)
    return [(r, tree.shares.get(r, [])) for r in trace.requests]


class _Tree:
    """The walkable span tree of one trace, index by index with ``TraceAnalysis.spans``."""

    __slots__ = (
        "budget",
        "crossing",
        "ends",
        "is_request",
        "kids",
        "owners",
        "shares",
        "sids",
        "starts",
        "summaries",
    )

    def __init__(self, trace: TraceAnalysis, budget: int) -> None:
        spans = trace.spans
        n = len(spans)
        self.budget = budget
        self.starts = [s.start_ns for s in spans]
        self.ends = [s.end_ns if s.end_ns > s.start_ns else s.start_ns for s in spans]
        self.sids = [s.span_id for s in spans]
        self.kids: list[list[int] | None] = [None] * n
        self.owners: list[_Owner] = [(("", ""), 0)] * n
        # 1 when a span is clipped in its outermost walk: it may be walked again, clipped, so its
        # children's summaries must stay intact.
        self.crossing = bytearray(n)
        self.is_request = bytearray(n)
        self.summaries: list[_Summary | None] = [None] * n  # None: a leaf, all its own time
        self.shares: dict[Request, list[Share]] = {}
        self._link(trace)
        self._summarise(trace)

    def _link(self, trace: TraceAnalysis) -> None:
        """Children lists, owners, crossing flags; parents first."""
        spans, near, keys, parents = (
            trace.spans,
            trace.span_requests,
            trace.span_keys,
            trace.parents,
        )
        starts, ends, kids, owners, crossing = (
            self.starts,
            self.ends,
            self.kids,
            self.owners,
            self.crossing,
        )
        clip_lo, clip_hi = starts[:], ends[:]  # each span clipped in its outermost walk
        client_child: dict[int, int] = {}  # CLIENT span -> the child request its time goes to
        for i in trace.order:
            r = near[i]
            if r is None:
                continue  # above every request: in no walk
            span = spans[i]
            owners[i] = (keys[i], r.depth)
            p = parents[i]
            if r.span is span:
                self.is_request[i] = 1
                if span.kind == KIND_CONSUMER or p < 0 or near[p] is None:
                    continue  # the root of its own walk
                if spans[p].kind == KIND_CLIENT:
                    j = client_child.get(p)
                    if j is None or (ends[i], spans[j].span_id) > (ends[j], span.span_id):
                        client_child[p] = i
                        owners[p] = (keys[i], r.depth)
            s0, e0 = starts[i], ends[i]
            if s0 < clip_lo[p]:
                clip_lo[i] = clip_lo[p]
                crossing[i] = 1
            if e0 > clip_hi[p]:
                clip_hi[i] = clip_hi[p]
                crossing[i] = 1
            sp, ep = starts[p], ends[p]
            if (e0 if e0 < ep else ep) > (s0 if s0 > sp else sp):  # overlaps the parent
                k = kids[p]
                if k is None:
                    kids[p] = [i]
                else:
                    k.append(i)

    def _summarise(self, trace: TraceAnalysis) -> None:
        """Every span's own walk, children first; the shares of every request."""
        near, kids, is_request = trace.span_requests, self.kids, self.is_request
        starts, ends, owners = self.starts, self.ends, self.owners
        for i in reversed(trace.order):
            r = near[i]
            if r is None:
                continue
            if kids[i] is not None:
                summary = self._walk(i)
                if is_request[i]:
                    self.shares[r] = _shares_of(summary, r.depth)
            elif is_request[i]:
                length = ends[i] - starts[i]
                self.shares[r] = [(owners[i][0], length / 1e6, 0)] if length > 0 else []

    def _walk(self, i: int) -> _Summary:
        """Span ``i``'s walk over its own interval, reusing its children's summaries."""
        starts, ends, sids, summaries, owners = (
            self.starts,
            self.ends,
            self.sids,
            self.summaries,
            self.owners,
        )
        kids = self.kids[i]
        assert kids is not None
        lo, hi = starts[i], ends[i]
        if len(kids) > 1:
            kids.sort(key=lambda c: (-(ends[c] if ends[c] < hi else hi), starts[c], sids[c]))
        take = not self.crossing[i]  # children's summaries may be taken over and changed
        budget = self.budget
        acc: _Summary = {}
        t, own = hi, 0
        for c in kids:
            ce = ends[c]
            if ce > hi:
                ce = hi
            if ce > t:
                continue
            own += t - ce
            cs = starts[c]
            if cs < lo:
                cs = lo
            if cs == starts[c] and ce == ends[c]:
                sub = summaries[c]
                if sub is None:
                    _add(acc, owners[c], ce - cs)
                elif take and len(sub) >= len(acc):
                    _merge(sub, acc)
                    acc = sub
                else:
                    _merge(acc, sub)
            else:
                budget = self._rewalk(c, cs, ce, acc, budget)
            t = cs
            if t <= lo:
                break
        own += t - lo
        if own or self.is_request[i]:
            _add(acc, owners[i], own)
        summaries[i] = acc
        return acc

    def _rewalk(self, root: int, lo: int, hi: int, acc: _Summary, budget: int) -> int:
        """Walk ``root`` clipped to ``[lo, hi]`` (narrower than its own) into ``acc``.

        Iterative; returns the budget left.  Frames are ``[span, lo, hi, next kid, time, own]``.
        """
        starts, ends, kids_of = self.starts, self.ends, self.kids
        stack: list[list[int]] = []
        enter: tuple[int, int, int] | None = (root, lo, hi)
        while True:
            if enter is not None:
                span, lo, hi = enter
                enter = None
                if lo == starts[span] and hi == ends[span]:
                    self._reuse(span, acc)
                elif kids_of[span] is None:
                    _add(acc, self.owners[span], hi - lo)
                elif budget <= 0:
                    self._scaled(span, hi - lo, acc)
                else:
                    budget -= 1
                    frame = [span, lo, hi, 0, hi, 0]
                    stack.append(frame)
                    if hi < ends[span]:
                        enter = self._first_at_clipped_end(frame)
                        if enter is not None:
                            continue
            if not stack:
                return budget
            frame = stack[-1]
            span, lo, hi, idx, t, own = frame
            kids = kids_of[span]
            assert kids is not None
            while idx < len(kids) and t > lo:
                c = kids[idx]
                idx += 1
                ce = ends[c] if ends[c] < hi else hi
                if ce > t:
                    continue
                if ce <= lo:
                    break
                own += t - ce
                t = starts[c] if starts[c] > lo else lo
                enter = (c, t, ce)
                break
            if enter is not None:
                frame[3], frame[4], frame[5] = idx, t, own
                continue
            own += t - lo
            if own or self.is_request[span]:
                _add(acc, self.owners[span], own)
            stack.pop()

    def _first_at_clipped_end(self, frame: list[int]) -> tuple[int, int, int] | None:
        """For a span whose end is clipped to ``hi``: every child ending at or after ``hi`` now
        ends there, so the first critical one is the earliest-starting of them (then the smallest
        span id).  They lead the kids sorted for the span's own walk; skip past them."""
        span, lo, hi = frame[0], frame[1], frame[2]
        starts, ends, sids = self.starts, self.ends, self.sids
        kids = self.kids[span]
        assert kids is not None
        own_end = ends[span]
        best, idx = -1, 0
        while idx < len(kids):
            k = kids[idx]
            if (ends[k] if ends[k] < own_end else own_end) < hi:
                break
            idx += 1
            if starts[k] < hi and (best < 0 or (starts[k], sids[k]) < (starts[best], sids[best])):
                best = k
        frame[3] = idx
        if best < 0:
            return None
        cs = starts[best] if starts[best] > lo else lo
        frame[4] = cs
        return (best, cs, hi)

    def _reuse(self, span: int, acc: _Summary) -> None:
        """A span inside its clipped parent: its own walk, unchanged."""
        sub = self.summaries[span]
        if sub is None:
            _add(acc, self.owners[span], self.ends[span] - self.starts[span])
        else:
            _merge(acc, sub)

    def _scaled(self, span: int, length: int, acc: _Summary) -> None:
        """Past the re-walk budget: the span's own walk scaled down to ``length``."""
        sub = self.summaries[span]
        assert sub is not None
        full = self.ends[span] - self.starts[span]
        given = 0
        for key, (ns, depth) in sub.items():
            part = ns * length // full
            if part:
                _add(acc, (key, depth), part)
                given += part
        if length > given:
            _add(acc, self.owners[span], length - given)


def _add(acc: _Summary, owner: _Owner, ns: int) -> None:
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
