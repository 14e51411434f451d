"""The service dependency graph of a window."""

from __future__ import annotations

import json

import pytest
from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.query.graph import graph

from tests.collector.query.aggbuilder import (
    CART,
    CHECKOUT,
    FRONTEND,
    NEW,
    OLD,
    SEARCH,
    T0,
    Buckets,
    graph_of,
    shop,
)


def test_nodes_and_edges_of_a_window() -> None:
    """Nodes per workload with merged revisions; edges with calls, errors and latency."""
    b = shop(canary=False)
    g = graph_of(b)
    assert [n["id"] for n in g["nodes"]] == [CART, CHECKOUT, FRONTEND, SEARCH]
    cart = g["nodes"][0]
    assert (cart["workload"], cart["service"], cart["kind"]) == (CART, "cart", "Deployment")
    assert cart["revisions"] == sorted([OLD, NEW])
    assert (cart["requests"], cart["errors"], cart["origin_errors"]) == (1200, 150, 120)
    assert cart["error_rate"] == 0.125
    assert cart["latency_ms"]["p50"] == pytest.approx(10.0, rel=0.03)
    assert [(e["source"], e["target"]) for e in g["edges"]] == [
        (CHECKOUT, CART),
        (FRONTEND, CHECKOUT),
    ]
    edge = g["edges"][1]
    assert (edge["calls"], edge["errors"]) == (2700, 180)
    assert edge["error_rate"] == pytest.approx(180 / 2700)
    assert edge["latency_ms"]["p99"] == pytest.approx(20.0, rel=0.03)
    json.dumps(g, allow_nan=False)


def test_edge_only_workload_is_a_node() -> None:
    """A workload seen only as a caller or callee still appears, with zero requests."""
    b = Buckets()
    b.edge(T0, "ext/gateway", CART, 3, errors=1)
    g = graph_of(b)
    assert [n["id"] for n in g["nodes"]] == ["ext/gateway", CART]
    node = g["nodes"][0]
    assert (node["service"], node["requests"], node["error_rate"]) == ("gateway", 0, 0.0)
    assert node["latency_ms"] == {"p50": None, "p95": None, "p99": None}
    json.dumps(g, allow_nan=False)


def test_empty_window() -> None:
    """No aggregates: an empty graph."""
    assert graph(Aggregates()) == {"nodes": [], "edges": []}
