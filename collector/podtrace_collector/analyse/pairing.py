"""Pairing the open ends of trace fragments, so that late spans do not bias self time.

The SDKs export each process's spans in batches (every 5 s by default), so the spans of one trace
reach the gateway seconds apart, and a trace timeout shorter than that splits the trace into
fragments, each analysed on its own.  A fragment has two kinds of *open ends* that bias time:

* an **orphan**: a synchronous request whose parent span is in another fragment.  Without its
  caller's CLIENT span its self time falls back to its own duration (no transit, no caller).
* an **open client**: a CLIENT span without a child request in the fragment, in the workload of
  its nearest request.  That request's self time and own time then count the whole call as its
  own.  The client spans of a database or a message system (``db.system``, ``db.system.name``,
  ``messaging.system``, ``messaging.destination.name``) never get a child: they are not open.

``Pairing`` holds the time samples (self time, own time, transit) of each request with open ends,
keyed by ``(trace id, parent span id)`` for an orphan and ``(trace id, client span id)`` for an
open client, for up to ``pair_wait_s``.  When a later fragment of the trace brings the missing
side, the request's times are recomputed with it and the request is handed back to be added to
the minute its fragment was counted in; the later fragment's own requests get the other side
(the caller's CLIENT span, or the wait on a child) before they are added.  Past ``pair_wait_s``
a request is handed back as it is and counted ``unpaired``; while ``max_waiting`` requests wait,
a new one is not held (``overflow``) and is added as it is at once.

An orphan is an entry point of its fragment but, in the whole trace, a call.  So whether it is
one or the other waits with its times (``Waiting.defer``, ``Links``; ``analyse.entries`` counts
it): paired with its caller's span, it counts as a call on the edge from its parent request's
workload; handed back unpaired (past ``pair_wait_s``, overflow or flush), as an entry point, with
its entry latency shares.  When the caller's open client waits already, the orphan is a call at
once.  A *loose* request (``TraceAnalysis.loose``: under a root span of its fragment, such as a
pod's CLIENT spans cut from its SERVER span, whose parent is elsewhere) waits likewise, keyed by
that root's parent, for the request above; so does an orphan whose parent span came without a
request above it.  A failed orphan is not deferred (its failures are attributed with its
fragment, ``analyse.fragments``), nor are the roots of a detached fragment analysed alone.
Everything else about a request (counts, errors, origins) is added with its fragment.

Some fragments need more than their times mended, and are held whole, as spans, to be analysed
together with the rest of their trace (``analyse.fragments``): a fragment *detached* from its
trace above (only CLIENT or INTERNAL spans, every root naming a parent elsewhere), and a fragment
whose failures the rest of its trace would attribute differently (an origin, propagation,
containment or entry point across the cut).  Only times and entry-or-call are paired for all
the others: the other counts of such a fragment are taken as it is.

A request whose missing side never comes (a call to an uninstrumented service or an external API,
or a caller that exports elsewhere: an ingress, a browser) waits ``pair_wait_s`` and is counted
``unpaired`` (and, missing its caller, as an entry point).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from podtrace_collector.analyse.requests import (
    Request,
    TraceAnalysis,
    WorkloadRev,
    set_times,
    union_ns,
)
from podtrace_collector.analyse.waiting import TableKey, Waiting
from podtrace_collector.model import KIND_CLIENT

# Client span attributes of calls that never get a child request.
_NEVER_ANSWERED = frozenset(
    {"db.system", "db.system.name", "messaging.system", "messaging.destination.name"}
)

# Requests held at most: about 0.8 KB each with their table entries (``bench/bench_pipeline.py``).
MAX_WAITING = 50_000


# An open client: the request that waits on it, the client span's interval and workload-revision.
_Client = tuple[Waiting, int, int, WorkloadRev]
# A fragment's orphans whose entry-or-call is settled apart: the workload of the parent request
# (its caller's client span waited here: a call on that edge, at once), or the ``Waiting`` it is
# held in (counted when handed back: ``Waiting.defer``).
Links = dict[Request, "str | Waiting"]


def open_ends(trace: TraceAnalysis) -> tuple[list[Request], list[int]]:
    """The trace's orphans, and the indices of its open client spans (module docstring)."""
    if not trace.unanswered:
        return list(trace.orphans), []
    spans, near, keys = trace.spans, trace.span_requests, trace.span_keys
    clients = []
    for i in trace.unanswered:
        attrs = spans[i].attributes
        if attrs and not attrs.keys().isdisjoint(_NEVER_ANSWERED):
            continue  # a database or a message system: no child request will come
        r = near[i]
        if r is not None and keys[i][0] == r.key[0]:
            clients.append(i)
    return list(trace.orphans), clients


class Pairing:
    """The requests waiting for the rest of their trace (not thread-safe: the caller locks).

    Counters: ``paired`` (requests whose every open end was paired), ``unpaired`` (handed back
    with open ends after ``pair_wait_s`` or at a flush), ``overflow`` (not held: the table was
    full); ``waiting`` is how many wait now.
    """

    def __init__(
        self,
        *,
        pair_wait_s: float = 30.0,
        max_waiting: int = MAX_WAITING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pair_wait_s = pair_wait_s
        self.max_waiting = max(0, max_waiting)
        self._clock = clock
        self._clients: dict[TableKey, _Client] = {}
        self._orphans: dict[TableKey, list[Waiting]] = {}
        # ``TraceAnalysis.loose`` requests, by their fragment's root span's parent: only their
        # caller's workload is missing (their times are whole).
        self._loose: dict[TableKey, list[Waiting]] = {}
        self._traces: dict[bytes, int] = {}  # trace id -> its entries in the two tables
        self._queue: deque[Waiting] = deque()  # by deadline (a constant wait)
        self.waiting = 0
        self.paired = 0
        self.unpaired = 0
        self.overflow = 0

    def settle(
        self, trace: TraceAnalysis, bucket: int, orphans: list[Request], clients: list[int]
    ) -> tuple[set[Request], Links, list[Waiting]]:
        """Pair the trace's open ends (``open_ends``) with those waiting, then hold what is open.

        Returns:
            The trace's requests now held (their time samples must not be added with the
            trace); its orphans' links (``Links``); and the requests of earlier fragments now
            complete (to add).
        """
        done: list[Waiting] = []
        links: Links = {}
        if trace.trace_id in self._traces:
            changed = self._pair_spans(trace, clients, done)
            changed |= self._pair_orphans(trace, orphans, done, links)
            for r in changed:
                set_times(r)
        if orphans or clients or trace.loose:
            return self._hold(trace, bucket, orphans, clients, links), links, done
        return set(), links, done

    def has_client(self, key: TableKey) -> bool:
        """Whether an open client span with this key waits (its fragment was analysed)."""
        return key in self._clients

    def has_orphan(self, key: TableKey) -> bool:
        """Whether an orphan whose parent span has this key waits (its fragment was analysed)."""
        return key in self._orphans

    def expire(self, *, everything: bool = False) -> list[Waiting]:
        """Hand back the requests that waited ``pair_wait_s`` (or all of them), as they are."""
        now = self._clock()
        out = []
        queue = self._queue
        while queue and (everything or queue[0].deadline <= now):
            w = queue.popleft()
            if w.open:
                self._forget(w)
                w.finish()
                self.waiting -= 1
                self.unpaired += 1
                out.append(w)
        return out

    def _pair_spans(
        self, trace: TraceAnalysis, clients: list[int], done: list[Waiting]
    ) -> set[Request]:
        """Earlier orphans whose parent span is in this trace: give them their caller."""
        tid, changed = trace.trace_id, set()
        near, keys = trace.span_requests, trace.span_keys
        for i, s in enumerate(trace.spans):
            if self._loose:
                self._pair_loose(trace, i, done)
            waiting = self._orphans.pop((tid, s.span_id), None)
            if waiting is None:
                continue
            self._untrack(tid, len(waiting))
            p = near[i]
            for w in waiting:
                w.keys.remove((tid, s.span_id))
                if s.kind == KIND_CLIENT:
                    w.caller_wait_ns = s.end_ns - s.start_ns
                    w.caller, w.caller_revision = keys[i]
                if p is not None:  # the parent request waited on it (``requests._add_wait``)
                    w.edge_from, w.summary = p.key[0], None
                    inside = s is not p.span and keys[i][0] == p.key[0]
                    wait = (s.start_ns, s.end_ns) if inside else (w.start_ns, w.end_ns)
                    p.waits = [*(p.waits or ()), wait]
                    changed.add(p)
                elif self._wait_above(w, trace, i):
                    continue
                self._close(w, done)
            if i in clients:
                clients.remove(i)  # its child came
        return changed

    def _pair_loose(self, trace: TraceAnalysis, i: int, done: list[Waiting]) -> None:
        """Earlier requests whose caller's workload was missing (``_loose``), if span i is it."""
        tid, span_id = trace.trace_id, trace.spans[i].span_id
        waiting = self._loose.pop((tid, span_id), None)
        if waiting is None:
            return
        self._untrack(tid, len(waiting))
        p = trace.span_requests[i]
        for w in waiting:
            w.keys.remove((tid, span_id))
            if p is not None:
                w.edge_from, w.summary = p.key[0], None
            elif self._wait_above(w, trace, i):
                continue
            self._close(w, done)

    def _wait_above(self, w: Waiting, trace: TraceAnalysis, i: int) -> bool:
        """An orphan whose parent span (i) came without a request above it (its pod's client
        spans cut from its server span): its entry-or-call waits on for the span above them."""
        if w.operation is None:
            return False  # counted with its fragment already
        parents = trace.parents
        while parents[i] >= 0:
            i = parents[i]
        parent_id = trace.spans[i].parent_id
        if not parent_id:
            return False  # the trace's root: it is an entry point
        key = (trace.trace_id, parent_id)
        self._loose.setdefault(key, []).append(w)
        self._track(w, key)
        return True

    def _pair_orphans(
        self, trace: TraceAnalysis, orphans: list[Request], done: list[Waiting], links: Links
    ) -> set[Request]:
        """This trace's orphans whose caller's CLIENT span waits in an earlier fragment."""
        tid, changed = trace.trace_id, set()
        for r in list(orphans):
            client = self._clients.pop((tid, r.span.parent_id), None)
            if client is None:
                continue
            self._untrack(tid, 1)
            w, start_ns, end_ns, workload = client
            w.keys.remove((tid, r.span.parent_id))
            assert w.waits is not None  # a request with an open client keeps its intervals
            w.waits.append((start_ns, end_ns))
            self._close(w, done)
            r.caller_wait_ns = end_ns - start_ns
            r.caller_workload, r.caller_revision = workload
            links[r] = w.key[0]  # the client's request: its workload is the client's
            changed.add(r)
            orphans.remove(r)
        return changed

    def _hold(
        self,
        trace: TraceAnalysis,
        bucket: int,
        orphans: list[Request],
        clients: list[int],
        links: Links,
    ) -> set[Request]:
        tid, spans, near = trace.trace_id, trace.spans, trace.span_requests
        made: dict[Request, Waiting | None] = {}  # None: not held (the table is full)
        for r in orphans:
            w = self._waiting_for(r, bucket, made)
            if w is not None:
                if not trace.detached:  # alone, its roots count as they are (``fragments``)
                    links[r] = w
                key = (tid, r.span.parent_id)
                self._orphans.setdefault(key, []).append(w)
                self._track(w, key)
        for r, parent_id in trace.loose:
            w = self._waiting_for(r, bucket, made)
            if w is not None:
                links[r] = w
                key = (tid, parent_id)
                self._loose.setdefault(key, []).append(w)
                self._track(w, key)
        with_clients = set()
        for i in clients:
            up = near[i]
            assert up is not None  # open_ends keeps only clients below a request
            w = self._waiting_for(up, bucket, made)
            if w is not None:
                s = spans[i]
                key = (tid, s.span_id)
                self._clients[key] = (w, s.start_ns, s.end_ns, trace.span_keys[i])
                self._track(w, key)
                with_clients.add(w)
        for w in made.values():
            if w is not None and w not in with_clients and w.waits is not None:
                # Only its caller is missing: its waits cannot change, keep their union alone.
                w.waited_ns, w.waits = union_ns(w.waits) if w.waits else 0, None
        return {r for r, w in made.items() if w is not None}

    def _waiting_for(
        self, r: Request, bucket: int, made: dict[Request, Waiting | None]
    ) -> Waiting | None:
        if r in made:
            w = made[r]
        elif self.waiting >= self.max_waiting:
            w = made[r] = None
            self.overflow += 1
        else:
            w = made[r] = Waiting(bucket, r)
            self.waiting += 1
            self._enqueue(w)
        if w is not None:
            w.open += 1
        return w

    def _enqueue(self, w: Waiting) -> None:
        queue = self._queue
        if len(queue) > 2 * self.waiting + 1024:
            # Paired requests stay queued until their deadline: drop them now and then, so the
            # queue stays within twice the requests waiting.
            self._queue = queue = deque(item for item in queue if item.open)
        w.deadline = self._clock() + self.pair_wait_s
        queue.append(w)

    def _track(self, w: Waiting, key: TableKey) -> None:
        w.keys.append(key)
        self._traces[key[0]] = self._traces.get(key[0], 0) + 1

    def _untrack(self, tid: bytes, n: int) -> None:
        left = self._traces[tid] - n
        if left:
            self._traces[tid] = left
        else:
            del self._traces[tid]

    def _close(self, w: Waiting, done: list[Waiting]) -> None:
        w.open -= 1
        if w.open == 0:
            w.finish()
            self.waiting -= 1
            self.paired += 1
            done.append(w)

    def _forget(self, w: Waiting) -> None:
        for key in w.keys:
            client = self._clients.get(key)
            if client is not None and client[0] is w:
                del self._clients[key]
            elif not (self._drop(self._orphans, key, w) or self._drop(self._loose, key, w)):
                continue
            self._untrack(key[0], 1)
        w.keys.clear()

    @staticmethod
    def _drop(table: dict[TableKey, list[Waiting]], key: TableKey, w: Waiting) -> bool:
        waiting = table.get(key)
        if waiting is None or w not in waiting:
            return False
        waiting.remove(w)
        if not waiting:
            del table[key]
        return True
