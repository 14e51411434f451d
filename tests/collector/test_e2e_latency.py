"""End to end, latency: the real OTel SDK exports two canaries at once into a real collector.

Cart (two hops below the entry ``POST /checkout``: frontend -> checkout -> cart) rolls out a
revision that spends 80 ms more in its own code; search (called by ``GET /search``, never on the
way to cart) rolls out an unchanged revision at the same moment.  The API and the CLI must name
the entry operation and the services on cart's way with their hops and about 80 ms added, nothing
that never calls cart, and no latency impact at all for search.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from opentelemetry.trace import Span, SpanKind, Tracer

from tests.collector.otlp_helpers import running, test_config
from tests.collector.sdkpods import Pods, start_span, wait_for_frontend_requests

CART_OLD, CART_NEW = "5c4b3a291", "7d9f8c6b5"
SEARCH_OLD, SEARCH_NEW = "3e2d1c0b9", "9a8b7c6d5"
ROUNDS = 120  # each round: one checkout and one search
ADDED_MS = 80
MS = 1_000_000


@dataclass
class Oracle:
    """What the scenario did, counted while it is generated."""

    checkouts: int = 0
    searches: int = 0
    through_new_cart: int = 0
    users_of_new_cart: set[str] = field(default_factory=set)


class Shop:
    """The shop's pods (gRPC and HTTP exporters both)."""

    def __init__(self, grpc_port: int, http_port: int) -> None:
        self.pods = pods = Pods()
        self.frontend = pods.pod("frontend", "6f8b9c7d4", grpc_port=grpc_port)
        self.checkout = pods.pod("checkout", "84c6d5f7b", http_port=http_port)
        self.cart = {
            CART_OLD: pods.pod("cart", CART_OLD, http_port=http_port),
            CART_NEW: pods.pod("cart", CART_NEW, grpc_port=grpc_port),
        }
        self.search = {
            SEARCH_OLD: pods.pod("search", SEARCH_OLD, grpc_port=grpc_port),
            SEARCH_NEW: pods.pod("search", SEARCH_NEW, http_port=http_port),
        }


def _entry(tracer: Tracer, route: str, method: str, start: int, user: str) -> Span:
    span = start_span(tracer, f"{method} {route}", SpanKind.SERVER, None, start)
    span.set_attributes({"http.request.method": method, "http.route": route, "enduser.id": user})
    return span


def _checkout(shop: Shop, oracle: Oracle, rng: random.Random, i: int, t: int) -> None:
    """frontend POST /checkout -> checkout -> cart; cart's own work 6-10 ms (+80 on NEW)."""
    rev = CART_OLD if i % 2 == 0 else CART_NEW  # a canary: both revisions live, the old first
    work = round((6 + rng.random() * 4 + (ADDED_MS if rev == CART_NEW else 0)) * MS)
    user = f"user-{rng.randrange(30)}"
    oracle.checkouts += 1
    if rev == CART_NEW:
        oracle.through_new_cart += 1
        oracle.users_of_new_cart.add(user)
    fe = _entry(shop.frontend, "/checkout", "POST", t, user)
    fe_call = start_span(shop.frontend, "POST", SpanKind.CLIENT, fe, t + 1 * MS)
    co = start_span(shop.checkout, "POST /orders", SpanKind.SERVER, fe_call, t + 2 * MS)
    co_cart = start_span(shop.checkout, "GET", SpanKind.CLIENT, co, t + 4 * MS)
    cart = start_span(shop.cart[rev], "GET /cart", SpanKind.SERVER, co_cart, t + 5 * MS)
    end = t + 5 * MS + work
    cart.end(end_time=end)
    co_cart.end(end_time=end + 1 * MS)
    co.end(end_time=end + 3 * MS)
    fe_call.end(end_time=end + 4 * MS)
    fe.end(end_time=end + 6 * MS)


def _search(shop: Shop, oracle: Oracle, rng: random.Random, i: int, t: int) -> None:
    """frontend GET /search -> search, the same code on both revisions."""
    rev = SEARCH_OLD if i % 2 == 0 else SEARCH_NEW
    work = round((4 + rng.random() * 4) * MS)
    oracle.searches += 1
    fe = _entry(shop.frontend, "/search", "GET", t, f"user-{rng.randrange(30)}")
    call = start_span(shop.frontend, "GET", SpanKind.CLIENT, fe, t + 1 * MS)
    search = start_span(shop.search[rev], "GET /search", SpanKind.SERVER, call, t + 2 * MS)
    search.end(end_time=t + 2 * MS + work)
    call.end(end_time=t + 3 * MS + work)
    fe.end(end_time=t + 4 * MS + work)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Oracle]]:
    db = tmp_path_factory.mktemp("e2e-latency") / "podtrace.db"
    with running(test_config(store=f"sqlite:///{db}", trace_timeout_s=0.5)) as collector:
        assert collector.grpc_port and collector.http_port
        shop = Shop(collector.grpc_port, collector.http_port)
        oracle, rng = Oracle(), random.Random(20261130)
        t0 = time.time_ns() - ROUNDS * 200 * MS
        for i in range(ROUNDS):
            _checkout(shop, oracle, rng, i, t0 + i * 200 * MS)
            _search(shop, oracle, rng, i, t0 + i * 200 * MS + 100 * MS)
        shop.pods.shutdown()
        api = f"http://127.0.0.1:{collector.api_port}"
        wait_for_frontend_requests(api, 2 * ROUNDS)
        yield api, oracle


def _report(api: str, workload: str) -> dict[str, Any]:
    r = httpx.get(f"{api}/api/v1/blast-radius", params={"workload": workload})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_the_slow_canary_names_whom_it_slowed(scenario: tuple[str, Oracle]) -> None:
    """Cart's slow revision: POST /checkout slowed by about 80 ms at 2 hops, checkout at 1 hop
    and frontend at 2; never GET /search or search."""
    api, o = scenario
    rep = _report(api, "shop/cart")
    assert (rep["revision"], rep["baseline"]["revision"]) == (CART_NEW, CART_OLD)
    assert rep["baseline_window"]["mode"] == "same_window"
    assert rep["verdict"] == "regressed" and rep["reasons"][0].startswith("self time")
    assert rep["affected_services"] == [] and rep["entrypoints"] == []
    li = rep["latency_impact"]
    (entry,) = li["entrypoints"]
    assert (entry["workload"], entry["operation"], entry["hops"]) == (
        "shop/frontend",
        "POST /checkout",
        2,
    )
    assert entry["added_ms"]["p50"] == pytest.approx(ADDED_MS, rel=0.06)
    assert (entry["exposed_requests"], entry["requests"]) == (o.through_new_cart, o.checkouts)
    assert entry["affected_users"] == len(o.users_of_new_cart)
    assert entry["p_value"] < 0.01
    hops = {s["workload"]: s["hops"] for s in li["services"]}
    assert hops == {"shop/checkout": 1, "shop/frontend": 2}
    for s in li["services"]:
        assert s["added_ms"]["p50"] == pytest.approx(ADDED_MS, rel=0.06)
        assert s["exposed_requests"] == o.through_new_cart
    frontend = next(s for s in li["services"] if s["workload"] == "shop/frontend")
    assert frontend["requests"] == o.checkouts + o.searches  # all of its requests
    assert rep["max_hops"] == 2


def test_the_unchanged_rollout_slows_nothing(scenario: tuple[str, Oracle]) -> None:
    """Search's revision, rolled out at the same moment with the same code: nothing listed."""
    api, _ = scenario
    rep = _report(api, "shop/search")
    assert (rep["revision"], rep["baseline"]["revision"]) == (SEARCH_NEW, SEARCH_OLD)
    assert rep["verdict"] == "healthy"
    assert rep["latency_impact"] == {"entrypoints": [], "services": []}
    assert rep["max_hops"] == 0


def test_rollouts_count_what_each_slowed(scenario: tuple[str, Oracle]) -> None:
    """The rollouts list says cart slowed two services and one entry point, search none."""
    api, _ = scenario
    rollouts = {r["workload"]: r for r in httpx.get(f"{api}/api/v1/rollouts").json()["rollouts"]}
    cart, search = rollouts["shop/cart"], rollouts["shop/search"]
    assert (cart["slowed_services"], cart["slowed_entrypoints"]) == (2, 1)
    assert (search["slowed_services"], search["slowed_entrypoints"]) == (0, 0)


def test_the_cli_prints_the_slowed_section(scenario: tuple[str, Oracle]) -> None:
    """`podtrace blast-radius` as a subprocess: the "Slowed (critical path)" section names the
    entry point with about +80 ms; for search it says nothing was slowed."""
    api, _ = scenario
    cmd = [sys.executable, "-m", "podtrace._cli", "blast-radius", "--api", api]
    cart = subprocess.run([*cmd, "shop/cart"], capture_output=True, text=True, timeout=30)
    assert cart.returncode == 0, cart.stderr
    section = cart.stdout.split("Slowed (critical path)\n", 1)[1].split("\n\n", 1)[0]
    lines = section.splitlines()
    entry = next(line for line in lines if "POST /checkout" in line).split()
    assert entry[:5] == ["shop/frontend", "POST", "/checkout", "2", str(ROUNDS // 2)]
    assert 75 <= float(entry[entry.index("ms") - 1].lstrip("+")) <= 85  # added p50
    assert any(line.split()[:2] == ["shop/checkout", "1"] for line in lines)
    assert "search" not in section
    search = subprocess.run([*cmd, "shop/search"], capture_output=True, text=True, timeout=30)
    assert search.returncode == 0, search.stderr
    assert "Slowed (critical path)\n  none: nothing waited" in search.stdout
