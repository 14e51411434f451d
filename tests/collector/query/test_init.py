"""The query layer's public face and the JSON contract of SPEC section 3."""

from __future__ import annotations

import functools
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector import query as report
from podtrace_collector.aggregate.window import Window
from podtrace_collector.store.base import read_windows
from podtrace_collector.store.memory import MemoryStore

from tests.collector.analyse.tracebuilder import BASE_S, Trace, deployment, summarize
from tests.collector.query.aggbuilder import (
    CART,
    NOW,
    blast,
    graph_of,
    rollouts_of,
    shop,
    workloads_of,
)

# The report fields SPEC §3 fixes (more may be added).
REPORT_FIELDS = {
    "workload", "kind", "service", "revision", "version", "window", "requests", "errors",
    "origin_errors", "error_rate", "latency_ms", "self_time_ms", "baseline", "verdict", "p_value",
    "affected_services", "entrypoints", "contained_by", "max_hops", "affected_traces",
    "affected_users", "exemplar_trace_ids",
}  # fmt: skip
BASELINE_FIELDS = {
    "revision", "requests", "errors", "origin_errors", "error_rate", "latency_ms", "self_time_ms",
}  # fmt: skip
QUANTILES = {"p50", "p95", "p99"}


def test_exported_members() -> None:
    """The public names of the query layer are exactly these."""
    assert set(report.__all__) == {
        "BEFORE_REVISION",
        "SAME_WINDOW",
        "BlastPlan",
        "GatePlan",
        "RolloutsPlan",
        "WorkloadsPlan",
        "blast_radius",
        "blast_report",
        "check_workload",
        "gate_answer",
        "graph",
        "graph_window",
        "plan_blast_radius",
        "plan_gate",
        "plan_rollouts",
        "resolve_workload",
        "rollouts",
        "workloads",
    }


def test_blast_radius_has_every_spec_field() -> None:
    """The report, its baseline and its lists carry every field SPEC §3 names."""
    b = shop(canary=True)
    r = blast(b, workload=CART, now_s=NOW)
    assert r.keys() >= REPORT_FIELDS
    assert set(r["window"]) == {"start", "end"}
    assert r["baseline"].keys() >= BASELINE_FIELDS
    for q in (r["latency_ms"], r["self_time_ms"], r["baseline"]["latency_ms"]):
        assert set(q) == QUANTILES
    assert r["verdict"] in {"regressed", "healthy", "insufficient_data"}
    assert {"workload", "service", "hops", "affected_requests", "requests"} <= set(
        r["affected_services"][0]
    )
    assert {"workload", "service", "operation", "affected_requests", "requests"} <= set(
        r["entrypoints"][0]
    )
    assert {"workload", "service", "absorbed_requests"} <= set(r["contained_by"][0])
    json.dumps(r, allow_nan=False)


def test_listings_have_their_spec_shapes() -> None:
    """workloads, rollouts and graph answer with the documented top-level shapes."""
    b = shop(canary=False)
    w = workloads_of(b)[0]
    assert {"workload", "kind", "service", "revisions"} <= w.keys()
    assert {"revision", "version", "first_seen", "last_seen", "pods", "requests", "errors"} <= set(
        w["revisions"][0]
    )
    (r,) = rollouts_of(b, now_s=NOW)
    assert {"workload", "from_revision", "to_revision", "started_at", "verdict"} <= r.keys()
    g = graph_of(b)
    assert {"id", "service", "kind", "requests", "errors"} <= g["nodes"][0].keys()
    assert {"source", "target", "calls", "errors", "error_rate", "latency_ms"} <= g["edges"][
        0
    ].keys()


def test_the_worked_example_of_the_docs() -> None:
    """The trace drawn in docs/blast-radius.md, analysed for real, gives the numbers shown."""
    t = Trace()
    cart = deployment("shop", "cart", "7d9f8c6b5")
    root = t.server(
        deployment("shop", "frontend"), "POST /checkout", start_ms=0, dur_ms=130, error=True,
        method="POST", route="/checkout", user="alice",
    )  # fmt: skip
    checkout = t.call(
        root, deployment("shop", "checkout"), "POST /orders",
        start_ms=0, dur_ms=121, gap_ms=2, error=True,
    )  # fmt: skip
    t.call(checkout, cart, "GET /cart", start_ms=10, dur_ms=28, error=True)
    t.call(checkout, deployment("shop", "payments"), "POST /charge", start_ms=30, dur_ms=58)
    recommend = t.call(root, deployment("shop", "recommend"), "GET /recs", start_ms=0)
    t.call(recommend, cart, "GET /cart", error=True, client_error=False)
    t.publish(root, deployment("shop", "email"), "send-receipt", error=True)
    bucket, agg = summarize(t.spans)
    registry = agg.revisions
    store = MemoryStore()
    store.write({bucket: agg})
    r = blast(store, workload=CART, revision="7d9f8c6b5", now_s=bucket + 60)
    assert (r["requests"], r["errors"], r["origin_errors"], r["error_rate"]) == (2, 2, 2, 1.0)
    assert [(a["workload"], a["hops"], a["affected_requests"], a["requests"])
            for a in r["affected_services"]] == [("shop/checkout", 1, 1, 1),
                                                 ("shop/frontend", 2, 1, 1)]  # fmt: skip
    (entry,) = r["entrypoints"]
    assert (entry["workload"], entry["operation"], entry["hops"]) == (
        "shop/frontend",
        "POST /checkout",
        2,
    )
    assert (entry["affected_requests"], entry["affected_users"], entry["requests"]) == (1, 1, 1)
    assert [(c["workload"], c["absorbed_requests"]) for c in r["contained_by"]] == [
        ("shop/recommend", 1)
    ]
    assert (r["max_hops"], r["affected_traces"], r["affected_users"]) == (2, 1, 1)
    assert r["exemplar_trace_ids"] == [t.trace_id.hex()]
    assert r["baseline"] is None and r["verdict"] == "insufficient_data"
    assert registry[("shop/email", "5f7d8c9b4")].origin_errors == 1
    checkout_self = registry[("shop/checkout", "5f7d8c9b4")].self_time.quantile(0.5)
    assert checkout_self == pytest.approx(45.0, rel=0.03)


_WORKLOADS = [
    deployment("shop", "frontend", "f1f1f1f1f"),
    deployment("shop", "cart", "c1c1c1c1c"),
    deployment("shop", "cart", "c2c2c2c2c"),
    deployment("shop", "checkout", "k1k1k1k1k"),
    deployment("shop", "search", "s1s1s1s1s"),
]


def _random_trace(data: st.DataObject) -> Trace:
    """A random tree of synchronous calls and asynchronous messages, with random failures."""
    t = Trace()
    route = data.draw(st.sampled_from(["/", "/cart", "/checkout"]))
    root = t.server(
        data.draw(st.sampled_from(_WORKLOADS)), f"GET {route}", error=data.draw(st.booleans()),
        method="GET", route=route, user=data.draw(st.sampled_from(["ann", "bob", None])),
    )  # fmt: skip
    servers = [root]
    for _ in range(data.draw(st.integers(0, 8))):
        parent = data.draw(st.sampled_from(servers))
        callee = data.draw(st.sampled_from(_WORKLOADS))
        error = data.draw(st.booleans())
        if data.draw(st.integers(0, 4)) == 0:
            servers.append(t.publish(parent, callee, error=error))
        else:
            servers.append(t.call(parent, callee, dur_ms=data.draw(st.floats(1, 50)), error=error))
    return t


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_answers_are_consistent_for_any_traces(data: st.DataObject) -> None:
    """Random traces through the real analysis and store: every answer is coherent JSON."""
    store = MemoryStore()
    n_traces = data.draw(st.integers(1, 6))
    for _ in range(n_traces):
        bucket, agg = summarize(_random_trace(data).spans)
        store.write({bucket: agg})
    now_s = BASE_S + 600
    reg = store.read(lambda _: report.WorkloadsPlan(None, None)).registry
    (everything,) = read_windows(store, Window())
    errors = {w: 0 for w, _ in reg}
    for (w, _), s in everything.revisions.items():
        errors[w] += s.errors
    for w, r in reg:
        snapshot = store.read(
            functools.partial(report.plan_blast_radius, workload=w, revision=r, now_s=now_s)
        )
        rep = report.blast_report(snapshot)
        json.dumps(rep, allow_nan=False)
        # Loading only the keys the plan asks for gives the report of loading everything.
        plan = snapshot.plan
        whole = read_windows(store, *(replace(w, maps=None, origins=None, details=None)
                                      for w in plan.windows))  # fmt: skip
        # Read whole, the report's two windows hold every map (transit included).
        assert report.blast_radius(plan, *whole[:2]) == rep
        assert 0 <= rep["origin_errors"] <= rep["errors"] <= rep["requests"]
        affected = rep["affected_services"]
        assert affected == sorted(
            affected, key=lambda a: (a["hops"], -a["affected_requests"], a["workload"])
        )
        for a in affected + rep["entrypoints"]:
            assert 1 <= a["hops"] <= rep["max_hops"]
            assert 1 <= a["affected_requests"] <= a["requests"]
        for a in affected:
            assert a["workload"] != w and a["affected_requests"] <= errors[a["workload"]]
        users = rep["affected_users"]
        assert rep["affected_traces"] <= n_traces and (users is None or users <= 2)
        assert len(rep["exemplar_trace_ids"]) <= min(n_traces, rep["origin_errors"])
    for answer in (workloads_of(store), rollouts_of(store, now_s=now_s), graph_of(store)):
        json.dumps(answer, allow_nan=False)
    nodes = report.graph(everything)["nodes"]
    assert sum(n["requests"] for n in nodes) == sum(s.requests for s in reg.values())
