"""Time aggregates of analysed requests: self and own time, transit, critical-path shares.

SPEC §6's split of self time (``revisions[…].self_time`` / ``own_time``, ``transit`` and
``transit_out``) and SPEC §5's shares of the critical path (``latency_impacts``,
``entry_latency_impacts``); ``analyzer`` calls these for every request (the module docstring
there says what each map holds).  ``Histogram.add`` and ``bucket_of`` are inlined where they run
for most spans.
"""

from __future__ import annotations

import math
from typing import TypeVar

from podtrace_collector.aggregate.fields import MAX_ITEMS
from podtrace_collector.aggregate.histogram import GAMMA, MIN_MS, ZERO_BUCKET, bucket_of
from podtrace_collector.aggregate.stats import (
    Aggregates,
    EntryLatencyImpact,
    LatencyImpact,
    RevisionStats,
    TransitStats,
)
from podtrace_collector.analyse.critical import Summary
from podtrace_collector.analyse.failures import add_capped
from podtrace_collector.analyse.requests import Request, WorkloadRev

_ceil, _log, _LOG_GAMMA = math.ceil, math.log, math.log(GAMMA)
_K = TypeVar("_K", tuple[str, str], tuple[str, str, str])


def add_times(
    agg: Aggregates,
    st: RevisionStats,
    key: WorkloadRev,
    self_ms: float,
    own_ms: float,
    caller: WorkloadRev | None,
    transit_ms: float,
) -> None:
    """Add one request's self time, own time and (with a caller workload-revision) transit."""
    for h, value in ((st.self_time, self_ms), (st.own_time, own_ms)):
        bucket = bucket_of(value)
        h.counts[bucket] = h.counts.get(bucket, 0) + 1
        h.total += 1
    if caller is not None:
        st.callers_add(caller[0])
        add_transit(agg, caller, key, transit_ms)


def add_request_times(agg: Aggregates, st: RevisionStats, r: Request) -> None:
    """``add_times`` for an analysed request of ``st``, with ``bucket_of`` and
    ``Histogram.add`` inlined: this runs for most requests."""
    self_ms = r.self_time_ms
    b = _ceil(_log(self_ms) / _LOG_GAMMA) if self_ms > MIN_MS else ZERO_BUCKET
    h = st.self_time
    counts = h.counts
    counts[b] = counts.get(b, 0) + 1
    h.total += 1
    own_ms = r.own_ms
    if own_ms != self_ms:  # equal without transit: one logarithm less
        b = _ceil(_log(own_ms) / _LOG_GAMMA) if own_ms > MIN_MS else ZERO_BUCKET
    h = st.own_time
    counts = h.counts
    counts[b] = counts.get(b, 0) + 1
    h.total += 1
    caller = r.caller_workload
    if not caller:
        return
    callers = st.callers  # ``RevisionStats.callers_add`` inlined
    if caller not in callers and len(callers) < MAX_ITEMS:
        callers.add(caller)
    ms = r.transit_ms
    b = _ceil(_log(ms) / _LOG_GAMMA) if ms > MIN_MS else ZERO_BUCKET
    key = r.key
    _count(agg.transit, (key[0], key[1], caller), b)
    _count(agg.transit_out, (caller, r.caller_revision), b)


def add_transit(agg: Aggregates, caller: WorkloadRev, key: WorkloadRev, ms: float) -> None:
    """One transit sample, to the workload-revision and to the caller's total."""
    bucket = bucket_of(ms)
    _count(agg.transit, (*key, caller[0]), bucket)
    _count(agg.transit_out, caller, bucket)


def _count(stats: dict[_K, TransitStats], k: _K, bucket: int) -> None:
    transit = stats.get(k)
    if transit is None:
        transit = stats[k] = TransitStats()
    transit.requests += 1
    h = transit.transit
    counts = h.counts
    counts[bucket] = counts.get(bucket, 0) + 1
    h.total += 1


def add_shares(
    agg: Aggregates,
    r: Request,
    summary: Summary,
    latency_bucket: int,
    operation: str,
    *,
    entry: bool,
) -> None:
    """One request's critical-path shares (``critical.critical_summaries``) into the latency
    maps (``entry``: it is an entry point, of ``operation``).  ``Histogram.add`` and
    ``bucket_of`` are inlined: this runs for most spans."""
    if entry:
        add_entry_shares(agg, r.key[0], r.depth, user_of(r), summary, latency_bucket, operation)
    workload, depth = r.key[0], r.depth
    impacts = agg.latency_impacts
    for (w, rev), (ns, at) in summary.items():
        if w == workload or not ns:
            continue  # a workload's time in its own requests is its self time: the verdict's
        k = (w, rev, workload)
        imp = impacts.get(k)
        if imp is None:
            imp = impacts[k] = LatencyImpact()
        imp.exposed_requests += 1
        share_ms = ns / 1e6
        b = _ceil(_log(share_ms) / _LOG_GAMMA) if share_ms > MIN_MS else ZERO_BUCKET
        h = imp.shares
        counts = h.counts
        counts[b] = counts.get(b, 0) + 1
        h.total += 1
        h = imp.latency
        counts = h.counts
        counts[latency_bucket] = counts.get(latency_bucket, 0) + 1
        h.total += 1
        if not imp.nearest or at - depth < imp.nearest - 1:
            imp.nearest = at - depth + 1


def user_of(r: Request) -> str | None:
    """The request's ``enduser.id``, or ``None`` without one."""
    user = r.span.attributes.get("enduser.id")
    return None if user is None or user == "" else str(user)


def add_entry_shares(
    agg: Aggregates,
    workload: str,
    depth: int,
    user: str | None,
    summary: Summary,
    latency_bucket: int,
    operation: str,
) -> None:
    """An entry request's shares (of workload, at depth) into ``entry_latency_impacts``."""
    impacts = agg.entry_latency_impacts
    for (w, rev), (ns, at) in summary.items():
        if not ns:
            continue
        k = (w, rev, workload, operation)
        imp = impacts.get(k)
        if imp is None:
            imp = impacts[k] = EntryLatencyImpact()
        imp.exposed_requests += 1
        share_ms = ns / 1e6
        b = _ceil(_log(share_ms) / _LOG_GAMMA) if share_ms > MIN_MS else ZERO_BUCKET
        h = imp.shares
        counts = h.counts
        counts[b] = counts.get(b, 0) + 1
        h.total += 1
        h = imp.latency
        counts = h.counts
        counts[latency_bucket] = counts.get(latency_bucket, 0) + 1
        h.total += 1
        if not imp.nearest or at - depth < imp.nearest - 1:
            imp.nearest = at - depth + 1
        if user is not None:
            add_capped(imp.users, user)
