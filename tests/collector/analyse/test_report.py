"""The query layer's public face and the JSON contract of SPEC section 3."""

from __future__ import annotations

import json

from podtrace_collector.analyse import report

from tests.collector.analyse.aggbuilder import CART, NOW, shop

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
        "Reader",
        "Registry",
        "blast_radius",
        "check_workload",
        "graph",
        "resolve_workload",
        "rollouts",
        "workloads",
    }


def test_blast_radius_has_every_spec_field() -> None:
    """The report, its baseline and its lists carry every field SPEC §3 names."""
    b = shop(canary=True)
    r = report.blast_radius(b.read, b.revisions(), workload=CART, now_s=NOW)
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
    reg = b.revisions()
    w = report.workloads(b.read, reg)["workloads"][0]
    assert {"workload", "kind", "service", "revisions"} <= w.keys()
    assert {"revision", "version", "first_seen", "last_seen", "pods", "requests", "errors"} <= set(
        w["revisions"][0]
    )
    (r,) = report.rollouts(b.read, reg, now_s=NOW)["rollouts"]
    assert {"workload", "from_revision", "to_revision", "started_at", "verdict"} <= r.keys()
    g = report.graph(b.read(None, None))
    assert {"id", "service", "kind", "requests", "errors"} <= g["nodes"][0].keys()
    assert {"source", "target", "calls", "errors", "error_rate", "latency_ms"} <= g["edges"][
        0
    ].keys()
