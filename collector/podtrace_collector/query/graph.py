"""The service dependency graph of a window: workloads as nodes, calls between them as edges."""

from __future__ import annotations

from podtrace_collector.aggregate.stats import Aggregates, RevisionStats
from podtrace_collector.aggregate.window import Window
from podtrace_collector.query.common import JSON, identities, merged_latency, rate


def graph_window(since_s: float | None, until_s: float | None) -> Window:
    """What the graph reads: revisions and edges, every key's histograms."""
    return Window(since_s, until_s, maps=frozenset({"revisions", "edges"}))


def graph(aggs: Aggregates) -> JSON:
    """``{"nodes": [...], "edges": [...]}`` of a merged window, both sorted by name.

    A node: ``id`` (the workload), ``workload``, ``service``, ``kind``, ``revisions`` (names,
    sorted), ``requests``, ``errors``, ``origin_errors``, ``error_rate``, ``latency_ms``
    (``p50/p95/p99`` over all its requests, null when none).  An edge: ``source`` and ``target``
    (node ids), ``calls``, ``errors``, ``error_rate``, ``latency_ms`` of the calls.  A workload seen
    only at the end of an edge is a node with zero requests.
    """
    names = identities(aggs.revisions.items())
    per_workload: dict[str, list[tuple[str, RevisionStats]]] = {}
    for (w, r), st in aggs.revisions.items():
        per_workload.setdefault(w, []).append((r, st))
    for source, target in aggs.edges:
        per_workload.setdefault(source, [])
        per_workload.setdefault(target, [])
    nodes = [_node(w, per_workload[w], names) for w in sorted(per_workload)]
    edges = [
        {
            "source": source,
            "target": target,
            "calls": e.calls,
            "errors": e.errors,
            "error_rate": rate(e.errors, e.calls),
            "latency_ms": e.latency.summary(),
        }
        for (source, target), e in sorted(aggs.edges.items())
    ]
    return {"nodes": nodes, "edges": edges}


def _node(
    workload: str, revs: list[tuple[str, RevisionStats]], names: dict[str, tuple[str, str]]
) -> JSON:
    kind, service = names.get(workload, ("", workload.split("/", 1)[-1]))
    requests = sum(st.requests for _, st in revs)
    errors = sum(st.errors for _, st in revs)
    return {
        "id": workload,
        "workload": workload,
        "service": service,
        "kind": kind,
        "revisions": sorted(r for r, _ in revs),
        "requests": requests,
        "errors": errors,
        "origin_errors": sum(st.origin_errors for _, st in revs),
        "error_rate": rate(errors, requests),
        "latency_ms": merged_latency(st for _, st in revs).summary(),
    }
