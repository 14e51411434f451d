"""Failure attribution of analysed requests: impacts, entry impacts, origins and exemplars.

SPEC §4's propagation turned into per-minute aggregates (``impacts``, ``entry_impacts``,
``origins``); ``analyzer`` calls these for every failed request (the module docstring there says
what each map holds).
"""

from __future__ import annotations

import bisect

from podtrace_collector.aggregate.stats import (
    MAX_EXEMPLARS,
    MAX_USERS,
    Aggregates,
    EntryImpact,
    Impact,
    OriginStats,
)
from podtrace_collector.analyse.requests import Request, WorkloadRev


def _origin_stats(agg: Aggregates, key: WorkloadRev) -> OriginStats:
    stats = agg.origins.get(key)
    if stats is None:
        stats = agg.origins[key] = OriginStats()
    return stats


def add_exemplar(agg: Aggregates, r: Request) -> None:
    """Keep the origin's ``MAX_EXEMPLARS`` smallest trace ids (sorted): a sample that merges
    the same whichever gateway analysed which trace (``aggregate.fields``)."""
    stats = _origin_stats(agg, r.key)
    exemplars = stats.exemplars
    trace_id = r.span.trace_id.hex()
    if trace_id in exemplars:
        return
    if len(exemplars) < MAX_EXEMPLARS:
        bisect.insort(exemplars, trace_id)
    elif trace_id < exemplars[-1]:
        exemplars.pop()
        bisect.insort(exemplars, trace_id)


def add_affected(
    agg: Aggregates, r: Request, key: WorkloadRev, min_hops: int, max_hops: int
) -> None:
    origin = _origin_stats(agg, key)
    if max_hops > origin.max_hops:
        origin.max_hops = max_hops
    workload = r.info.workload
    if workload == key[0]:
        return  # the origin's own workload is not an affected service
    k = (key[0], key[1], workload)
    impact = agg.impacts.get(k)
    if impact is None:
        impact = agg.impacts[k] = Impact()
    impact.affected_requests += 1
    if not impact.min_hops or min_hops < impact.min_hops:
        impact.min_hops = min_hops


def add_entry_impact(
    agg: Aggregates, r: Request, key: WorkloadRev, operation: str, min_hops: int
) -> None:
    k = (key[0], key[1], r.info.workload, operation)
    impact = agg.entry_impacts.get(k)
    if impact is None:
        impact = agg.entry_impacts[k] = EntryImpact()
    impact.affected_requests += 1
    if not impact.min_hops or min_hops < impact.min_hops:
        impact.min_hops = min_hops
    user = r.span.attributes.get("enduser.id")
    if user is not None and user != "":
        add_capped(impact.users, str(user))
        add_capped(agg.origins[key].users, str(user))


def add_capped(users: set[str], user: str) -> None:
    if len(users) < MAX_USERS:
        users.add(user)
