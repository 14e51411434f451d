"""End to end: the real OTel SDK exports a canary rollout into the real collector; the API and CLI
answer with exactly the counts an independent oracle computes from the scenario itself."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from opentelemetry.trace import Span, SpanKind, StatusCode

from tests.collector.otlp_helpers import running, test_config
from tests.collector.sdkpods import Pods, start_span, wait_for_frontend_requests

OLD, NEW = "5c4b3a291", "7d9f8c6b5"
TRACES = 400
MS = 1_000_000


@dataclass
class Oracle:
    """Ground truth counted while the scenario is generated, independently of the analysis."""

    requests: dict[str, int] = field(default_factory=lambda: {OLD: 0, NEW: 0})
    errors: dict[str, int] = field(default_factory=lambda: {OLD: 0, NEW: 0})
    # cart failures, per revision, that reached checkout and the frontend / that checkout absorbed
    propagated_by: dict[str, int] = field(default_factory=lambda: {OLD: 0, NEW: 0})
    absorbed_by: dict[str, int] = field(default_factory=lambda: {OLD: 0, NEW: 0})
    users: set[str] = field(default_factory=set)  # users whose entry request NEW's failures reached

    @property
    def propagated(self) -> int:
        return self.propagated_by[NEW]

    @property
    def absorbed(self) -> int:
        return self.absorbed_by[NEW]


class Shop:
    """The shop's pods (gRPC and HTTP exporters both)."""

    def __init__(self, grpc_port: int, http_port: int) -> None:
        self.pods = pods = Pods()
        self.frontend = pods.pod("frontend", "6f8b9c7d4", grpc_port=grpc_port)
        self.checkout = pods.pod("checkout", "84c6d5f7b", http_port=http_port)
        self.payment = pods.pod("payment", "59d7c8b6f", grpc_port=grpc_port)
        self.cart = {
            OLD: pods.pod("cart", OLD, http_port=http_port),
            NEW: pods.pod("cart", NEW, grpc_port=grpc_port),
        }


def _end(span: Span, end: int, failed: bool) -> None:
    if failed:
        span.set_status(StatusCode.ERROR)
    span.end(end_time=end)


def _one_trace(shop: Shop, oracle: Oracle, rng: random.Random, i: int, t0: int) -> None:
    rev = OLD if i % 2 == 0 else NEW  # canary: both revisions live, the old one seen first
    cart_failed = rng.random() < (0.3 if rev == NEW else 0.01)
    absorbed = cart_failed and rng.random() < 0.25
    checkout_failed = cart_failed and not absorbed
    user = f"user-{rng.randrange(40)}"
    oracle.requests[rev] += 1
    oracle.errors[rev] += cart_failed
    oracle.absorbed_by[rev] += absorbed
    oracle.propagated_by[rev] += checkout_failed
    if rev == NEW and checkout_failed:
        oracle.users.add(user)

    t = t0 + i * 20 * MS
    fe = start_span(shop.frontend, "POST /checkout", SpanKind.SERVER, None, t)
    fe.set_attributes({"http.request.method": "POST", "http.route": "/checkout"})
    fe.set_attribute("enduser.id", user)
    fe_call = start_span(shop.frontend, "POST", SpanKind.CLIENT, fe, t + 1 * MS)
    co = start_span(shop.checkout, "POST /orders", SpanKind.SERVER, fe_call, t + 2 * MS)
    co_cart = start_span(shop.checkout, "GET", SpanKind.CLIENT, co, t + 3 * MS)
    cart = start_span(shop.cart[rev], "GET /cart", SpanKind.SERVER, co_cart, t + 4 * MS)
    _end(cart, t + 9 * MS, cart_failed)
    _end(co_cart, t + 10 * MS, cart_failed)
    co_pay = start_span(shop.checkout, "POST", SpanKind.CLIENT, co, t + 11 * MS)
    pay = start_span(shop.payment, "POST /pay", SpanKind.SERVER, co_pay, t + 12 * MS)
    _end(pay, t + 14 * MS, False)
    _end(co_pay, t + 15 * MS, False)
    _end(co, t + 16 * MS, checkout_failed)
    _end(fe_call, t + 17 * MS, checkout_failed)
    _end(fe, t + 18 * MS, checkout_failed)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Oracle]]:
    db = tmp_path_factory.mktemp("e2e") / "podtrace.db"
    with running(test_config(store=f"sqlite:///{db}", trace_timeout_s=0.5)) as collector:
        assert collector.grpc_port and collector.http_port
        shop = Shop(collector.grpc_port, collector.http_port)
        oracle, rng = Oracle(), random.Random(20261125)
        t0 = time.time_ns() - TRACES * 20 * MS
        for i in range(TRACES):
            _one_trace(shop, oracle, rng, i, t0)
        shop.pods.shutdown()
        api = f"http://127.0.0.1:{collector.api_port}"
        wait_for_frontend_requests(api, TRACES, timeout_s=20)
        yield api, oracle


def test_report_matches_oracle(scenario: tuple[str, Oracle]) -> None:
    """Every count of the blast-radius report equals the oracle's."""
    api, o = scenario
    r = httpx.get(f"{api}/api/v1/blast-radius", params={"workload": "shop/cart"})
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["workload"], rep["kind"], rep["service"]) == ("shop/cart", "Deployment", "cart")
    assert rep["revision"] == NEW
    assert rep["requests"] == o.requests[NEW]
    assert rep["errors"] == rep["origin_errors"] == o.errors[NEW]
    assert rep["baseline"]["revision"] == OLD
    assert rep["baseline"]["requests"] == o.requests[OLD]
    assert rep["baseline"]["errors"] == o.errors[OLD]
    assert rep["verdict"] == "regressed"
    assert rep["p_value"] < 0.01
    affected = {a["workload"]: a for a in rep["affected_services"]}
    assert set(affected) == {"shop/checkout", "shop/frontend"}
    assert affected["shop/checkout"]["hops"] == 1
    assert affected["shop/frontend"]["hops"] == 2
    for a in affected.values():
        assert a["affected_requests"] == o.propagated
        assert a["requests"] == TRACES
    [entry] = rep["entrypoints"]
    assert (entry["workload"], entry["operation"]) == ("shop/frontend", "POST /checkout")
    assert (entry["affected_requests"], entry["requests"]) == (o.propagated, TRACES)
    assert rep["contained_by"] == [
        {"workload": "shop/checkout", "service": "checkout", "absorbed_requests": o.absorbed}
    ]
    assert rep["max_hops"] == 2
    assert rep["affected_traces"] == o.propagated
    assert rep["affected_users"] == len(o.users)
    assert 0 < len(rep["exemplar_trace_ids"]) <= 10
    assert all(len(t) == 32 for t in rep["exemplar_trace_ids"])


def test_rollouts_and_workloads(scenario: tuple[str, Oracle]) -> None:
    """The rollout is listed with its verdict; the registry counts both revisions."""
    api, o = scenario
    rollouts = httpx.get(f"{api}/api/v1/rollouts").json()["rollouts"]
    cart = [r for r in rollouts if r["workload"] == "shop/cart"]
    assert len(cart) == 1
    assert (cart[0]["from_revision"], cart[0]["to_revision"]) == (OLD, NEW)
    assert cart[0]["verdict"] == "regressed"
    workloads = {w["workload"]: w for w in httpx.get(f"{api}/api/v1/workloads").json()["workloads"]}
    revs = {r["revision"]: r for r in workloads["shop/cart"]["revisions"]}
    assert {k: v["requests"] for k, v in revs.items()} == o.requests
    assert {k: v["errors"] for k, v in revs.items()} == o.errors


def test_graph_edges(scenario: tuple[str, Oracle]) -> None:
    """The service graph has the shop's call edges with their call and error counts."""
    api, o = scenario
    graph = httpx.get(f"{api}/api/v1/graph").json()
    edges = {(e["source"], e["target"]): e for e in graph["edges"]}
    assert set(edges) == {
        ("shop/frontend", "shop/checkout"),
        ("shop/checkout", "shop/cart"),
        ("shop/checkout", "shop/payment"),
    }
    assert edges[("shop/checkout", "shop/cart")]["calls"] == TRACES
    assert edges[("shop/checkout", "shop/cart")]["errors"] == sum(o.errors.values())
    assert edges[("shop/frontend", "shop/checkout")]["errors"] == sum(o.propagated_by.values())
    assert edges[("shop/checkout", "shop/payment")]["errors"] == 0


def test_cli_table_and_json(scenario: tuple[str, Oracle]) -> None:
    """`podtrace blast-radius` as a subprocess prints the table and the same JSON as the API."""
    api, o = scenario
    cmd = [sys.executable, "-m", "podtrace._cli", "blast-radius", "shop/cart", "--api", api]
    table = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert table.returncode == 0, table.stderr
    assert "VERDICT: REGRESSED" in table.stdout
    assert "shop/checkout" in table.stdout and "shop/frontend" in table.stdout
    as_json = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=30)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["affected_traces"] == o.propagated
    assert report["revision"] == NEW


def test_cli_unknown_workload(scenario: tuple[str, Oracle], tmp_path: Path) -> None:
    """An unknown workload is a clear one-line error and a non-zero exit, not a traceback."""
    api, _ = scenario
    cmd = [sys.executable, "-m", "podtrace._cli", "blast-radius", "shop/nope", "--api", api]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode != 0
    assert "shop/nope" in proc.stderr
    assert "Traceback" not in proc.stderr
