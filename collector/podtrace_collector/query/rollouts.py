"""Rollouts: each time a workload's new revision appeared, with the verdict on it.

A rollout is a consecutive pair of a workload's revisions ordered by first span seen.  Each is
summarised from the blast-radius report of the new revision with the previous one as baseline,
over the new revision's lifetime: from its first span to its last (or now).  For a revision still
serving that is the report's default window; for one already replaced it keeps the comparison to
the time it was live (and keeps the reads short).  Only the newest ``limit`` rollouts are
computed, at most two reads each.
"""

from __future__ import annotations

from itertools import pairwise

from podtrace_collector.durations import format_time
from podtrace_collector.query.blast import blast_radius
from podtrace_collector.query.common import JSON, OriginReader, Reader, Registry, revisions_of

DEFAULT_LIMIT = 20
# The window ends just after the last span so that the bucket holding it is read.
_LAST_SPAN_MARGIN_S = 1.0

# Report fields copied into a rollout summary as they are.
_SUMMARY_FIELDS = (
    "kind",
    "service",
    "verdict",
    "p_value",
    "reasons",
    "requests",
    "errors",
    "origin_errors",
    "error_rate",
    "max_hops",
    "affected_traces",
    "affected_users",
)


def rollouts(
    read: Reader,
    registry: Registry,
    *,
    now_s: float,
    since_s: float | None = None,
    until_s: float | None = None,
    limit: int = DEFAULT_LIMIT,
    origin_read: OriginReader | None = None,
) -> JSON:
    """``{"rollouts": [...]}``, newest first: the latest ``limit`` rollouts of every workload.

    Args:
        read: the store's reader.
        registry: the revision registry.
        now_s: the current time; a rollout is judged from its start until now, or until the
            last span of its new revision if that one is no longer seen.
        since_s: only rollouts that started at or after this time.
        until_s: only rollouts that started before this time.
        limit: at most this many rollouts (each costs up to two reads).
        origin_read: ``Store.read``, to read only each new revision's impacts
            (``blast_radius``); the same rollouts, cheaper.

    Returns:
        Each rollout: ``workload``, ``kind``, ``service``, ``from_revision``, ``to_revision``,
        ``from_version``, ``to_version``, ``started_at`` (RFC 3339), ``window`` (the new
        revision's lifetime, ``{start, end}``), ``verdict``, ``p_value``,
        ``reasons``, ``requests``, ``errors``, ``origin_errors``, ``error_rate`` (of the new
        revision), ``baseline_requests``, ``affected_services`` (a count), ``affected_entrypoints``
        (a count), ``max_hops``, ``affected_traces``, ``affected_users``.
    """
    found = []
    for workload in sorted({w for w, _ in registry}):
        revs = revisions_of(registry, workload)
        for (old, old_st), (new, new_st) in pairwise(revs):
            started_s = new_st.first_seen_ns / 1e9
            if (since_s is None or started_s >= since_s) and (
                until_s is None or started_s < until_s
            ):
                ended_s = max(new_st.last_seen_ns / 1e9, started_s) + _LAST_SPAN_MARGIN_S
                found.append(
                    (started_s, workload, old, old_st.version, new, new_st.version, ended_s)
                )
    found.sort(key=lambda f: (-f[0], f[1], f[4]))
    out = []
    for started_s, workload, old, old_version, new, new_version, ended_s in found[: max(limit, 0)]:
        report = blast_radius(
            read,
            registry,
            workload=workload,
            revision=new,
            baseline=old,
            until_s=min(now_s, ended_s),
            now_s=now_s,
            origin_read=origin_read,
        )
        summary: JSON = {
            "workload": workload,
            "from_revision": old,
            "to_revision": new,
            "from_version": old_version,
            "to_version": new_version,
            "started_at": format_time(started_s),
            "window": report["window"],
        }
        summary.update({k: report[k] for k in _SUMMARY_FIELDS})
        summary["baseline_requests"] = report["baseline"]["requests"]
        summary["affected_services"] = len(report["affected_services"])
        summary["affected_entrypoints"] = len(report["entrypoints"])
        out.append(summary)
    return {"rollouts": out}
