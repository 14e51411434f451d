"""The page's latency blast radius, in real headless Chromium, from the engine's own report.

Shop: frontend -> checkout -> cart (``POST /checkout``) and frontend -> recommendation -> cart
(``GET /``).  Cart's new revision runs as a canary beside the old one for the last ten minutes;
it spends 80 ms more in its own code and fails a third of its calls: checkout's failures reach
the entry point, recommendation falls back (absorbs them).  No entry span carries an
``enduser.id``.  Every trace goes through the real Analyzer into a real ``SqliteStore``, served
by the collector's API app; nothing in the report is written by hand.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.model import Resource
from podtrace_collector.store.sqlite import SqliteStore

from tests.browser import Chromium
from tests.collector.analyse.tracebuilder import Trace, deployment
from tests.collector.api.served import (
    NODES,
    OVERLAPS,
    Served,
    add,
    loaded,
    minute,
    report_of,
    rows,
    serve,
    shot,
)

pytestmark = pytest.mark.slow

OLD_CART, SLOW_CART = "5c4b3a291", "7d9f8c6b5"
FRONTEND = deployment("shop", "frontend", "5f7d8c9b4", pod="fe001")
CHECKOUT = deployment("shop", "checkout", "66d4c8f7b", pod="ck001")
RECOMMEND = deployment("shop", "recommendation", "7c9b5d4f2", pod="rc001")


def _cart(pod_hash: str) -> Resource:
    return deployment(
        "shop", "cart", pod_hash, version="1.4.0" if pod_hash == SLOW_CART else "1.3.0"
    )


def _trace(t: Trace, cart: str, i: int, *, failing: bool = True, user: str | None = None) -> None:
    """One request of the shop: cart takes 8-10 ms (old) or 88-90 ms (new), the new one failing
    every third call (``failing``); ``user`` on the entry span."""
    cart_ms = (80.0 if cart == SLOW_CART else 0.0) + 8 + i % 5 / 2
    fail = failing and cart == SLOW_CART and i % 3 == 0
    if i % 2:
        root = t.server(FRONTEND, "POST /checkout", method="POST", route="/checkout",
                        error=fail, dur_ms=cart_ms + 30, user=user)  # fmt: skip
        chk = t.call(root, CHECKOUT, "POST /orders", error=fail, dur_ms=cart_ms + 20, start_ms=4)
        t.call(chk, _cart(cart), "GET /cart", error=fail, dur_ms=cart_ms, start_ms=10)
    else:
        root = t.server(FRONTEND, "GET /", method="GET", route="/", dur_ms=cart_ms + 30, user=user)
        rec = t.call(root, RECOMMEND, "GET /recommendations", dur_ms=cart_ms + 20, start_ms=4)
        t.call(rec, _cart(cart), "GET /cart", error=fail, client_error=False, dur_ms=cart_ms,
               start_ms=10)  # fmt: skip


def fill(store: SqliteStore, now_s: float, *, failing: bool = True, users: bool = False) -> None:
    """Twenty minutes of the old cart, then ten of both revisions side by side."""
    buckets: dict[int, Aggregates] = {}
    for i in range(320):
        minutes_ago = 20 - i // 16  # 16 traces a minute
        cart = SLOW_CART if minutes_ago <= 10 and i % 4 >= 2 else OLD_CART
        t = Trace(base_s=minute(now_s, minutes_ago))
        _trace(t, cart, i, failing=failing, user=f"user-{i % 7}" if users else None)
        add(buckets, t)
    store.write(buckets)


@pytest.fixture(scope="module")
def slow_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    store = SqliteStore(tmp_path_factory.mktemp("slow") / "podtrace.db")
    fill(store, time.time())
    served = serve(store)
    yield served
    served.stop()
    store.close()


def _ms(x: float) -> str:
    """A duration as the page's ``format.ms`` prints it."""
    return f"{x:.1f} ms" if x < 10 else f"{x:.0f} ms"


def _figures(row: dict[str, Any]) -> list[str]:
    return [
        str(row["hops"]),
        f"{row['exposed_requests']:,}",
        f"{row['requests']:,}",
        "+" + _ms(row["added_ms"]["p50"]),
        "+" + _ms(row["added_ms"]["p95"]),
        _ms(row["latency_ms"]["p50"]),
        _ms(row["latency_ms"]["p95"]),
    ]


def test_the_engines_latency_impact_is_drawn(slow_shop: Served, browser: Chromium) -> None:
    """The report of a canary that fails and slows: the error lists and the "Slowed" card
    both, the violet ring on every slowed workload, recommendation (absorbing, not failing)
    marked slow only, users unknown without enduser.id."""
    report = slow_shop.api(f"/api/v1/blast-radius?workload=shop/cart&revision={SLOW_CART}")
    impact = report["latency_impact"]
    assert report["verdict"] == "regressed" and report["baseline_window"]["mode"] == "same_window"
    assert {e["operation"] for e in impact["entrypoints"]} == {"POST /checkout", "GET /"}
    slowed = {s["workload"] for s in impact["services"]}
    assert slowed == {"shop/frontend", "shop/checkout", "shop/recommendation"}
    assert all(75 <= s["added_ms"]["p50"] <= 85 for s in impact["services"])

    loaded(browser, slow_shop.url + "/")
    report_of(browser, "shop/cart")
    shot(browser, "page-latency-impact.png")
    assert browser.evaluate("document.getElementById('slowed-card').hidden") is False
    assert rows(browser, "#slowed-entrypoints") == [
        [e["workload"], e["operation"], *_figures(e), "unknown"] for e in impact["entrypoints"]
    ]
    assert rows(browser, "#slowed-services") == [
        [s["workload"], *_figures(s)] for s in impact["services"]
    ]
    nodes = {n["workload"]: n for n in browser.evaluate(NODES)}
    assert {w for w, n in nodes.items() if "slowed" in n["cls"]} == slowed
    checkout = next(s for s in impact["services"] if s["workload"] == "shop/checkout")
    assert f"slowed +{checkout['added_ms']['p50']:.0f} ms p50" in nodes["shop/checkout"]["text"]
    # Recommendation failed nowhere but got slower: its own mark, not an error ring.
    assert {"slow-only", "absorbing"} <= set(nodes["shop/recommendation"]["cls"])
    assert "hop-none" not in nodes["shop/recommendation"]["cls"]
    assert {"affected", "slowed"} <= set(nodes["shop/checkout"]["cls"])
    assert browser.evaluate("document.querySelectorAll('#graph .slow-ring').length") == 3
    legend = "document.querySelector('#legend [data-legend=\"slowed\"]')?.textContent"
    assert "slowed on the critical path" in browser.evaluate(legend)
    assert browser.evaluate(OVERLAPS)["clashes"] == []
    kpi = "document.querySelector('.kpi[data-kpi=\"{}\"] dd').textContent"
    assert browser.evaluate(kpi.format("slowed")) == "2"
    assert report["affected_users"] is None
    assert browser.evaluate(kpi.format("users")) == "unknown"
    line = browser.evaluate("document.getElementById('entrypoints-users').textContent")
    assert line == "affected users: unknown (no enduser.id on entry spans)"


def test_a_healthy_canary_draws_no_latency_impact(tmp_path: Path, browser: Chromium) -> None:
    """The same shop with an unchanged new revision: no slowed card, ring, legend or figure."""
    store = SqliteStore(tmp_path / "podtrace.db")
    buckets: dict[int, Aggregates] = {}
    now_s = time.time()
    for i in range(160):  # the old cart alone, then both for the last 5 minutes
        minutes_ago = 10 - i // 16
        cart = "3a2b1c0d9" if minutes_ago <= 5 and i % 4 >= 2 else OLD_CART
        t = Trace(base_s=minute(now_s, minutes_ago))
        _trace(t, cart, i)
        add(buckets, t)
    store.write(buckets)
    served = serve(store)
    try:
        report = served.api("/api/v1/blast-radius?workload=shop/cart&revision=3a2b1c0d9")
        assert report["verdict"] == "healthy"
        assert report["latency_impact"] == {"entrypoints": [], "services": []}
        loaded(browser, served.url + "/")
        report_of(browser, "shop/cart")
        assert browser.evaluate("document.getElementById('slowed-card').hidden") is True
        assert browser.evaluate("document.querySelectorAll('#graph .slowed').length") == 0
        legend = "document.querySelector('#legend [data-legend=\"slowed\"]')"
        assert browser.evaluate(legend) is None
        assert browser.evaluate("document.querySelector('.kpi[data-kpi=\"slowed\"]')") is None
    finally:
        served.stop()
        store.close()


def test_a_slow_canary_that_fails_nothing_is_this_rollout_not_an_origin(
    tmp_path: Path, browser: Chromium
) -> None:
    """Cart's new revision only slower (no failure; users recorded): the graph, its column
    heading and the legend name cart "this rollout", not the origin of failures, while the
    workloads it slowed keep their violet rings; no affected user is not shown in alarm red."""
    store = SqliteStore(tmp_path / "podtrace.db")
    fill(store, time.time(), failing=False, users=True)
    served = serve(store)
    try:
        report = served.api(f"/api/v1/blast-radius?workload=shop/cart&revision={SLOW_CART}")
        assert report["verdict"] == "regressed" and report["origin_errors"] == 0
        assert report["affected_services"] == [] and report["affected_users"] == 0
        slowed = {s["workload"] for s in report["latency_impact"]["services"]}
        assert slowed == {"shop/frontend", "shop/checkout", "shop/recommendation"}
        loaded(browser, served.url + "/")
        report_of(browser, "shop/cart")
        shot(browser, "page-latency-only.png")
        card = "document.querySelector('#rollouts .rollout[data-workload=\"shop/cart\"]')"
        counts = browser.evaluate(f"{card}.querySelector('.rollout-counts').textContent")
        assert counts.endswith(" · slowed 2 entry points"), counts
        nodes = {n["workload"]: n for n in browser.evaluate(NODES)}
        cart = nodes["shop/cart"]
        assert "rollout" in cart["cls"] and not {"origin", "hop-0"} & set(cart["cls"])
        assert "this rollout" in cart["text"] and "✖" not in cart["text"]
        assert {w for w, n in nodes.items() if "slowed" in n["cls"]} == slowed
        headings = "[...document.querySelectorAll('#graph .column-label')].map(t => t.textContent)"
        assert browser.evaluate(headings)[-1] == "this rollout"
        assert "origin" not in browser.evaluate(headings)
        legend = "[...document.querySelectorAll('#legend li')].map(li => li.dataset.legend)"
        assert "rollout" in browser.evaluate(legend) and "origin" not in browser.evaluate(legend)
        color = "getComputedStyle(document.querySelector({})).color"
        users = color.format("'.kpi[data-kpi=\"users\"] dd'")
        assert browser.evaluate(users) == browser.evaluate(color.format("'body'"))
        assert browser.evaluate(OVERLAPS)["clashes"] == []
    finally:
        served.stop()
        store.close()
