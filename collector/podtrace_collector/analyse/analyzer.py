"""From analysed traces to ``Aggregates``: the per-minute, mergeable result the store keeps.

``Analyzer`` is the ``TraceSink`` the assembler feeds: it analyses each complete trace
(``requests.analyse_trace``), adds it into the ``Aggregates`` of its bucket (``add_trace``) and
keeps one ``Aggregates`` per bucket until the store writer drains them.  A trace's bucket is the
Unix minute (seconds, a multiple of 60) of its earliest span start, so a whole trace lands in one
bucket even when it straddles a minute boundary.

How the SPEC §4 definitions map onto ``Aggregates`` (read with ``analyse.requests``):

* ``revisions[(W, R)]`` — every span of W@R updates kind/service/version, pods and first/last seen
  (so a workload with only client spans is still registered); every request of W@R counts in
  ``requests``, its duration in ``latency``, its self time in ``self_time`` and its own time
  (server-side self time) in ``own_time``; failed requests in ``errors``, origins in
  ``origin_errors``.
* ``impacts[(OW, OR, A)]`` — failed requests of workload A affected by an origin in OW@OR, for
  each **other** workload ``A != OW``, with the smallest hop distance.  A request of OW itself
  that is affected by an origin in OW (a workload calling itself, or another revision of it) is
  not an affected *service*, but it is an affected request: it counts towards ``max_hops`` and, if
  it is an entry point, towards ``entry_impacts``, ``affected_traces`` and users.
* An origin is not "affected" by itself (SPEC: a failed request that is *not* an origin is
  affected), so every recorded hop distance is at least 1, and a failure that starts at an entry
  point and goes nowhere leaves ``entry_impacts``, ``affected_traces`` and ``max_hops`` untouched.
* ``entry_impacts[(OW, OR, EW, op)]`` — affected entry requests of that operation (hop distance at
  least 1), with the distinct ``enduser.id`` values of those requests.
* ``absorbed[(OW, OR, W)]`` — failed synchronous direct downstream requests carrying an origin in
  OW@OR whose parent request, in workload W, did not fail (W may be OW itself).
* ``origins[(OW, OR)]`` — created for every trace with an origin in OW@OR (with the trace as an
  exemplar); ``affected_traces`` counts traces where such a failure reached an entry point,
  ``max_hops`` the largest hop distance of any affected request, ``users`` the union of the users
  of its affected entry points.
* ``latency_impacts[(W, R, X)]`` — SPEC §5: for every request of workload X with W@R on its
  critical path (a positive share ``cp(request, W@R)``, ``analyse.critical``), for each **other**
  workload ``X != W``: one exposed request, its share in ``shares``, its own duration in
  ``latency``, its hop distance to W@R in ``nearest`` (the smallest, plus one).
* ``entry_latency_impacts[(W, R, EW, op)]`` — likewise for the entry requests of operation op,
  W's own entry points included (at 0 hops), with the ``enduser.id`` of those requests.
* ``entry_totals[(EW, op)]`` — all entry requests (and those with an ``enduser.id``);
  ``edges[(caller W, callee W)]`` — one call per
  request with a parent request (asynchronous ones too), errors when it failed, its duration
  (``analyse.entries``; a fragment's orphan is counted as one or the other once its caller
  came or did not, ``analyse.pairing``).
* ``transit[(W, R, caller W)]`` — every request of W@R under a CLIENT span of the caller
  workload, with its transit (``requests.Request.transit_ms``); ``transit_out[(caller W,
  caller R)]`` — the same samples summed over every workload the caller calls; the caller
  workload joins ``revisions[(W, R)].callers``.

Attribution is not exclusive: a request carrying origins in two workload-revisions counts for both.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

from podtrace_collector.aggregate.histogram import GAMMA, MIN_MS, ZERO_BUCKET
from podtrace_collector.aggregate.stats import (
    Aggregates,
    Count,
    RevisionStats,
)
from podtrace_collector.analyse.cardinality import RevisionCap
from podtrace_collector.analyse.critical import Summary, critical_summaries
from podtrace_collector.analyse.entries import add_edge, add_entry, add_settled
from podtrace_collector.analyse.failures import add_affected, add_entry_impact, add_exemplar
from podtrace_collector.analyse.fragments import Fragments, Held, waits_on_failure
from podtrace_collector.analyse.pairing import MAX_WAITING, Links, Pairing, open_ends
from podtrace_collector.analyse.requests import Request, TraceAnalysis, WorkloadRev, analyse_trace
from podtrace_collector.analyse.timing import (
    add_entry_shares,
    add_request_times,
    add_shares,
    add_times,
    user_of,
)
from podtrace_collector.analyse.waiting import Waiting
from podtrace_collector.model import Span

logger = logging.getLogger(__name__)

BUCKET_S = 60
_ceil, _log, _LOG_GAMMA = math.ceil, math.log, math.log(GAMMA)
_BUCKET_NS = BUCKET_S * 1_000_000_000


def bucket_start_s(start_ns: int) -> int:
    """The bucket (Unix seconds, minute-aligned) of a trace starting at ``start_ns``."""
    return (start_ns // _BUCKET_NS) * BUCKET_S


def operation_of(span: Span) -> str:
    """An entry point's operation: ``http.request.method`` (or ``http.method``) + ``http.route``,
    else the span name."""
    attrs = span.attributes
    method = attrs.get("http.request.method") or attrs.get("http.method")
    route = attrs.get("http.route")
    if method and route:
        return f"{method} {route}"
    return span.name


def add_trace(
    agg: Aggregates,
    trace: TraceAnalysis,
    held: set[Request] | frozenset[Request] = frozenset(),
    links: Links | None = None,
) -> None:
    """Add one analysed trace into ``agg`` (in place), but the time samples (self time, own
    time, transit) of the ``held`` requests: they wait for the rest of the trace (``pairing``);
    ``links``: how its orphans count (``pairing.Links``), instead of as entry points."""
    agg.count(1, len(trace.spans))
    _add_registry(agg, trace)
    reached: set[WorkloadRev] = set()
    summaries = critical_summaries(trace)
    for r in trace.requests:
        _add_request(agg, r, reached, r not in held, summaries[r.index], links)
    for key in reached:
        agg.origins[key].affected_traces += 1
    for (ow, orev), workload in trace.absorbed:
        k = (ow, orev, workload)
        absorbed = agg.absorbed.get(k)
        if absorbed is None:
            absorbed = agg.absorbed[k] = Count()
        absorbed.requests += 1


def _add_registry(agg: Aggregates, trace: TraceAnalysis) -> None:
    revisions = agg.revisions
    for info, first, last in trace.seen:
        workload, revision, kind, service, version, pod = info
        st = revisions.get((workload, revision))
        if st is None:
            st = revisions[(workload, revision)] = RevisionStats(kind, service, version)
        if first > 0 and (not st.first_seen_ns or first < st.first_seen_ns):
            st.first_seen_ns = first
        if last > st.last_seen_ns:
            st.last_seen_ns = last
        if pod:
            st.pods.add(pod)


def _add_request(
    agg: Aggregates,
    r: Request,
    reached: set[WorkloadRev],
    timed: bool,
    summary: Summary | None,
    links: Links | None,
) -> None:
    key = r.key
    st = agg.revisions[key]
    st.requests += 1
    # ``bucket_of`` and ``Histogram.add`` inlined, with the latency bucket computed once: this
    # runs for every request, and the calls were a tenth of the analysis time.
    span = r.span
    ms = (span.end_ns - span.start_ns) / 1e6  # r.latency_ms where positive: same bucket
    latency_bucket = _ceil(_log(ms) / _LOG_GAMMA) if ms > MIN_MS else ZERO_BUCKET
    h = st.latency
    counts = h.counts
    counts[latency_bucket] = counts.get(latency_bucket, 0) + 1
    h.total += 1
    if timed:
        add_request_times(agg, st, r)
    parent = r.parent
    operation = ""
    entry = parent is None
    if parent is not None:
        add_edge(agg, parent.key[0], key[0], r.failed, latency_bucket)
    else:
        link = links.get(r) if links else None
        if link is None:
            operation = operation_of(span)
            add_entry(agg, key[0], operation, user_of(r))
        elif isinstance(link, str):  # its caller's client span waited: a call, as whole
            entry = False
            add_edge(agg, link, key[0], r.failed, latency_bucket)
        elif not r.failed:  # held for its caller: counted when it is handed back
            entry = False
            link.defer(operation_of(span), user_of(r), summary)
        else:  # failed: its failures are attributed now, as an entry point's (``fragments``)
            operation = operation_of(span)
            add_entry(agg, key[0], operation, user_of(r))
    if summary is not None:
        add_shares(agg, r, summary, latency_bucket, operation, entry=entry)
    elif entry and span.end_ns > span.start_ns:  # an entry point's own time, all of it
        add_entry_shares(
            agg, key[0], r.depth, user_of(r), {key: (span.end_ns - span.start_ns, 0)},
            latency_bucket, operation,
        )  # fmt: skip
    if r.failed:
        _add_failed(agg, r, st, reached, operation, entry)


def _add_failed(
    agg: Aggregates,
    r: Request,
    st: RevisionStats,
    reached: set[WorkloadRev],
    operation: str,
    entry: bool,
) -> None:
    st.errors += 1
    if r.origin:
        st.origin_errors += 1
        add_exemplar(agg, r)
        return
    for key, min_hops, max_hops in r.affected_by():
        add_affected(agg, r, key, min_hops, max_hops)
        if entry:
            add_entry_impact(agg, r, key, operation, min_hops)
            reached.add(key)


def _admitted(cap: RevisionCap, trace: TraceAnalysis) -> bool:
    return cap.admit({(info.workload, info.revision) for info, _, _ in trace.seen})


class Analyzer:
    """The ``TraceSink`` of a gateway: analyses complete traces into per-minute ``Aggregates``.

    Thread-safe: the assembler calls ``on_trace`` from its threads while the store writer calls
    ``drain``.  A trace the analysis cannot handle is logged, counted in ``failed_traces`` and
    skipped; it never propagates into the assembler.  With a ``cap``, a trace naming more new
    workload-revisions than this minute allows counts in its minute's totals (traces, spans) and
    in ``capped_traces``/``capped_spans``, and nothing else of it is recorded.

    The time samples of a request with open ends (a trace analysed in fragments), and whether
    an orphan is an entry point or a call, wait in ``pairing`` for the rest of the trace, and
    are added to their own minute when it comes or when they have waited ``pair_wait_s``
    (``analyse.pairing``; ``drain`` hands them back, and ``release_waiting`` all of them at
    shutdown).  A fragment detached from its trace above, or whose failures the rest of its
    trace would attribute differently, waits whole, as spans, in ``fragments``, and is analysed
    as one trace with the rest (``analyse.fragments``).

    Args:
        cap: the cap on workload-revisions first seen per minute (``--max-new-revisions``).
        pair_wait_s: how long a request with open ends, or a fragment held, waits for the rest
            of its trace.
        max_waiting: requests held waiting at most, and spans of fragments held at most; past
            them they are analysed and added as they are.
        clock: monotonic seconds, for the waits (injectable for tests).
    """

    def __init__(
        self,
        *,
        cap: RevisionCap | None = None,
        pair_wait_s: float = 30.0,
        max_waiting: int = MAX_WAITING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, Aggregates] = {}
        self._cap = cap
        self.pairing = Pairing(pair_wait_s=pair_wait_s, max_waiting=max_waiting, clock=clock)
        self.fragments = Fragments(pair_wait_s=pair_wait_s, max_spans=max_waiting, clock=clock)
        self.traces = 0
        self.late_traces = 0
        self.spans = 0
        self.failed_traces = 0
        self.capped_traces = 0  # over the cap on new workload-revisions: counted in totals only
        self.capped_spans = 0

    @property
    def registered_revisions(self) -> int:
        """Workload-revisions first registered by this analyser (0 without a cap)."""
        return self._cap.registered if self._cap is not None else 0

    def on_trace(self, spans: Sequence[Span], *, late: bool) -> None:
        """Analyse one complete trace (``late``: spans that arrived after their trace completed)."""
        try:
            self._record(list(spans), late=late, hold=True)
        except Exception:
            with self._lock:
                self.failed_traces += 1
            logger.exception("analysis of a trace of %d spans failed; skipped", len(spans))

    def _record(self, spans: list[Span], *, late: bool, hold: bool) -> None:
        trace = analyse_trace(spans)
        joined = None
        if trace.spans:
            with self._lock:
                joined = self.fragments.take(trace.trace_id, spans)
        if joined is not None:  # an earlier fragment of this trace waits for it: one analysis
            spans = [*joined.spans, *spans]
            trace = analyse_trace(spans)
        orphans, clients = open_ends(trace)
        if hold and self._held(trace, spans, clients, joined):
            return
        bucket = bucket_start_s(trace.start_ns)
        with self._lock:
            agg = self._bucket(bucket)
            if self._cap is not None and not _admitted(self._cap, trace):
                agg.count(1, len(spans))
                self.capped_traces += 1
                self.capped_spans += len(spans)
                return
            held, links, done = self.pairing.settle(trace, bucket, orphans, clients)
            add_trace(agg, trace, held, links)
            self._add_waited(done)
            self.traces += 1
            self.late_traces += late
            self.spans += len(spans)

    def _held(
        self,
        trace: TraceAnalysis,
        spans: list[Span],
        clients: list[int],
        joined: Held | None,
    ) -> bool:
        """Whether the fragment is held for the rest of its trace (``analyse.fragments``)."""
        if not (trace.detached or trace.failed or clients):
            return False  # most traces: whole, or a fragment without failure or open client
        with self._lock:
            if trace.detached:
                return self.fragments.hold(trace, spans, failing=False, since=joined)
            if waits_on_failure(trace, clients, self.pairing):
                return self.fragments.hold(trace, spans, failing=True, since=joined)
        return False

    def drain(self) -> dict[int, Aggregates]:
        """Hand over everything accumulated so far, ``{bucket start (Unix s): Aggregates}``,
        with the time samples of requests that waited ``pair_wait_s`` for the rest of their
        trace in vain (each in its own minute)."""
        self._analyse_held(everything=False)
        with self._lock:
            self._add_waited(self.pairing.expire())
            out, self._buckets = self._buckets, {}
        return out

    def release_waiting(self) -> None:
        """Add every request still waiting for the rest of its trace, as it is (shutdown)."""
        self._analyse_held(everything=True)
        with self._lock:
            self._add_waited(self.pairing.expire(everything=True))

    def _analyse_held(self, *, everything: bool) -> None:
        """Held fragments whose trace sent nothing more that they wait for: analysed as they are."""
        with self._lock:
            stale = self.fragments.expire(everything=everything)
        for spans in stale:
            try:
                self._record(spans, late=True, hold=False)
            except Exception:
                with self._lock:
                    self.failed_traces += 1
                logger.exception("analysis of a fragment of %d spans failed", len(spans))

    def _bucket(self, bucket: int) -> Aggregates:
        agg = self._buckets.get(bucket)
        if agg is None:
            agg = self._buckets[bucket] = Aggregates()
        return agg

    def _add_waited(self, done: list[Waiting]) -> None:
        for w in done:
            agg = self._bucket(w.bucket)
            st = agg.revisions.get(w.key)
            if st is None:  # its minute was drained already: the store merges the two
                st = agg.revisions[w.key] = RevisionStats()
            caller = (w.caller, w.caller_revision) if w.caller else None
            add_times(agg, st, w.key, w.self_ms, w.own_ms, caller, w.transit_ms)
            add_settled(agg, w)

    @property
    def pending_buckets(self) -> int:
        """Buckets accumulated and not yet drained."""
        return len(self._buckets)
