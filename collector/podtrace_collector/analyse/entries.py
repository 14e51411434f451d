"""Entry points and call edges: ``entry_totals``, ``edges`` and an entry point's own shares.

``analyzer.add_trace`` counts each request with its trace: a request with a parent request as a
call on the edge ``(parent's workload, its workload)``, one without as an entry point of its
operation.  An *orphan* (a fragment's root request whose caller's span is in a fragment not
analysed yet, ``analyse.pairing``) is neither yet: it waits in ``Pairing`` with its time samples
and is counted when handed back (``add_settled``), as a call when its caller came, else as an
entry point, in the minute its fragment was counted in.
"""

from __future__ import annotations

from podtrace_collector.aggregate.histogram import bucket_of
from podtrace_collector.aggregate.stats import Aggregates, EdgeStats, EntryTotal
from podtrace_collector.analyse.timing import add_entry_shares
from podtrace_collector.analyse.waiting import Waiting


def add_entry(agg: Aggregates, workload: str, operation: str, user: str | None) -> None:
    """One entry request of ``operation`` (with an ``enduser.id`` or not)."""
    k = (workload, operation)
    total = agg.entry_totals.get(k)
    if total is None:
        total = agg.entry_totals[k] = EntryTotal()
    total.requests += 1
    if user is not None:
        total.with_user += 1


def add_edge(agg: Aggregates, caller: str, callee: str, failed: bool, latency_bucket: int) -> None:
    """One call from ``caller`` to ``callee``; ``latency_bucket``: the request's duration's.
    ``Histogram.add`` inlined: this runs for most requests."""
    k = (caller, callee)
    edge = agg.edges.get(k)
    if edge is None:
        edge = agg.edges[k] = EdgeStats()
    edge.calls += 1
    edge.errors += failed
    h = edge.latency
    counts = h.counts
    counts[latency_bucket] = counts.get(latency_bucket, 0) + 1
    h.total += 1


def add_settled(agg: Aggregates, w: Waiting) -> None:
    """An orphan handed back by ``Pairing``: a call when its caller came, else an entry point
    (with its shares, as ``add_trace`` counts one); nothing for any other request."""
    operation = w.operation
    if operation is None:
        return
    duration_ns = w.end_ns - w.start_ns
    latency_bucket = bucket_of(duration_ns / 1e6)
    workload = w.key[0]
    if w.edge_from:
        add_edge(agg, w.edge_from, workload, False, latency_bucket)  # only sound ones wait
    else:
        add_entry(agg, workload, operation, w.user)
        summary = w.summary
        if summary is None and duration_ns > 0:  # its own time, all of it
            summary = {w.key: (duration_ns, 0)}
        if summary is not None:  # an orphan is its fragment's root request: depth 0
            add_entry_shares(agg, workload, 0, w.user, summary, latency_bucket, operation)
    w.operation = w.user = w.summary = None  # it may stay queued until its deadline
