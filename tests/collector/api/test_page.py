"""The web page, in real headless Chromium, against the real API over a real SQLite store.

The scenario goes through the real pipeline: traces built with the analysis test DSL, analysed
by the Analyzer, written to a ``SqliteStore``, served by the collector's API app under uvicorn on
a free loopback port.  Shop: frontend -> checkout -> cart, frontend -> recommendation -> cart
(recommendation falls back, absorbing cart's failures), frontend -> catalog, checkout ->
payment.  Cart rolls out a bad revision that fails a third of its requests; catalog rolled out
a healthy revision earlier.  Screenshots land in ``tests/artifacts/`` (gitignored).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.api.page import PAGE_DIR
from podtrace_collector.model import Resource
from podtrace_collector.store.sqlite import SqliteStore

from tests.browser import Chromium
from tests.collector.analyse.tracebuilder import Trace, deployment, service
from tests.collector.api.served import (
    EDGES,
    NODES,
    Served,
    add,
    compact,
    loaded,
    minute,
    report_of,
    rows,
    serve,
    shot,
)

pytestmark = pytest.mark.slow

OLD_CART, BAD_CART = "5c4b3a291", "7d9f8c6b5"
OLD_CATALOG, NEW_CATALOG = "6b7c8d9e0", "84f5d6c7a"
FRONTEND = deployment("shop", "frontend", "5f7d8c9b4", pod="fe001")
CHECKOUT = deployment("shop", "checkout", "66d4c8f7b", pod="ck001")
RECOMMEND = deployment("shop", "recommendation", "7c9b5d4f2", pod="rc001")
PAYMENT = deployment("shop", "payment", "59f7c6d8e", pod="py001")


# ---- the scenario --------------------------------------------------------------------------


def _cart(pod_hash: str) -> Resource:
    return deployment(
        "shop", "cart", pod_hash, version="1.4.0" if pod_hash == BAD_CART else "1.3.0"
    )


def _checkout(t: Trace, cart_hash: str, user: str, *, fail: bool) -> None:
    """POST /checkout: frontend -> checkout -> cart (and payment when the cart answered)."""
    root = t.server(
        FRONTEND,
        "POST /checkout",
        method="POST",
        route="/checkout",
        user=user,
        error=fail,
        dur_ms=60,
    )
    chk = t.call(root, CHECKOUT, "POST /orders", error=fail, dur_ms=45)
    t.call(chk, _cart(cart_hash), "GET /cart", error=fail, dur_ms=25 if fail else 8)
    if not fail:
        t.call(chk, PAYMENT, "Charge", dur_ms=10, start_ms=20)


def _home(
    t: Trace, cart_hash: str, catalog_hash: str, user: str, *, cart_fails: bool, i: int
) -> None:
    """GET /: frontend -> catalog, and recommendation -> cart, whose failure it absorbs.

    Catalog's time varies with ``i`` (12 to 14 ms), as real times do: all equal, every self time
    would tie and no test could judge its rollout.
    """
    catalog = deployment("shop", "catalog", catalog_hash)
    root = t.server(FRONTEND, "GET /", method="GET", route="/", user=user, dur_ms=40)
    t.call(root, catalog, "GET /products", dur_ms=12 + i % 5 / 2)
    rec = t.call(root, RECOMMEND, "GET /recommendations", dur_ms=20, start_ms=15)
    t.call(rec, _cart(cart_hash), "GET /cart", error=cart_fails, dur_ms=5, start_ms=16)


def fill(store: SqliteStore, now_s: float) -> None:
    """Write the scenario: 30 minutes of history, catalog's rollout, then cart's bad one."""
    buckets: dict[int, Aggregates] = {}
    for i in range(120):
        minutes_ago = 30 - i // 8  # 8 traces a minute, from 30 to 16 minutes ago
        catalog = OLD_CATALOG if minutes_ago > 25 else NEW_CATALOG
        t = Trace(base_s=minute(now_s, minutes_ago))
        if i % 2:
            _checkout(t, OLD_CART, f"user-{i % 17}", fail=False)
        else:
            _home(t, OLD_CART, catalog, f"user-{i % 17}", cart_fails=False, i=i)
        add(buckets, t)
    for i in range(120):
        minutes_ago = 15 - i // 8  # the bad cart from 15 minutes ago: a third of calls fail
        t = Trace(base_s=minute(now_s, minutes_ago))
        if i % 2:
            _checkout(t, BAD_CART, f"user-{i % 23}", fail=i % 3 == 0)
        else:
            _home(t, BAD_CART, NEW_CATALOG, f"user-{i % 23}", cart_fails=i % 3 == 0, i=i)
        add(buckets, t)
    store.write(buckets)


def _shop(path: Path) -> Iterator[Served]:
    store = SqliteStore(path)
    fill(store, time.time())
    served = serve(store)
    yield served
    served.stop()
    store.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The scenario, served once for the tests that only read it."""
    yield from _shop(tmp_path_factory.mktemp("shop") / "podtrace.db")


@pytest.fixture
def own_shop(tmp_path: Path) -> Iterator[Served]:
    """The scenario, for a test that changes it or stops its server."""
    yield from _shop(tmp_path / "podtrace.db")


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Served]:
    """The scenario behind ``--api-token secret-token``."""
    store = SqliteStore(tmp_path / "podtrace.db")
    fill(store, time.time())
    served = serve(store, token="secret-token")
    yield served
    served.stop()
    store.close()


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Served]:
    store = SqliteStore(tmp_path / "empty.db")
    served = serve(store)
    yield served
    served.stop()
    store.close()


# ---- the tests -------------------------------------------------------------------------------


def test_page_draws_the_bad_rollouts_blast_radius(shop: Served, browser: Chromium) -> None:
    """The newest rollout is selected and its blast radius drawn: hops, origin, edges, users."""
    loaded(browser, shop.url + "/")
    report_of(browser, "shop/cart")
    shot(browser, "page-blast-radius.png")
    rollouts = browser.evaluate(
        "[...document.querySelectorAll('#rollouts .rollout')].map(r => [r.dataset.workload,"
        " r.dataset.revision, r.dataset.verdict, r.querySelector('.badge').textContent])"
    )
    assert rollouts == [
        ["shop/cart", BAD_CART, "regressed", "regressed"],
        ["shop/catalog", NEW_CATALOG, "healthy", "healthy"],
    ]
    assert browser.evaluate("location.hash") == f"#workload=shop%2Fcart&revision={BAD_CART}"
    assert browser.evaluate("document.querySelector('#summary-verdict').dataset.verdict") == (
        "regressed"
    )
    nodes = {n["workload"]: n for n in browser.evaluate(NODES)}
    assert set(nodes) == {
        f"shop/{w}"
        for w in ("cart", "checkout", "frontend", "recommendation", "catalog", "payment")
    }
    assert {"origin", "hop-0"} <= set(nodes["shop/cart"]["cls"])
    assert "origin" in nodes["shop/cart"]["text"]
    assert nodes["shop/checkout"]["hops"] == "1" and "hop-1" in nodes["shop/checkout"]["cls"]
    assert nodes["shop/frontend"]["hops"] == "2" and "hop-2" in nodes["shop/frontend"]["cls"]
    assert "entry" in nodes["shop/frontend"]["cls"]
    assert {"absorbing", "hop-none"} <= set(nodes["shop/recommendation"]["cls"])
    assert "absorbed 20" in nodes["shop/recommendation"]["text"]
    for quiet in ("shop/catalog", "shop/payment"):
        assert "unaffected" in nodes[quiet]["cls"] and "affected" not in nodes[quiet]["cls"]
    report = shop.api(f"/api/v1/blast-radius?workload=shop/cart&revision={BAD_CART}")
    window = report["window"]
    # The graph drawn is the graph of the report's window: its edge labels count that window.
    asked = [u for u in browser.requests if "/api/v1/graph" in u][-1]
    assert parse_qs(urlsplit(asked).query) == {"since": [window["start"]], "until": [window["end"]]}
    graph = shop.api(f"/api/v1/graph?since={window['start']}&until={window['end']}")
    drawn = {(e["source"], e["target"]): e for e in browser.evaluate(EDGES)}
    assert set(drawn) == {(e["source"], e["target"]) for e in graph["edges"]}
    for edge in graph["edges"]:
        seen = drawn[(edge["source"], edge["target"])]
        assert (seen["calls"], seen["errors"]) == (edge["calls"], edge["errors"])
        label = compact(edge["calls"]) + (
            f"{compact(edge['errors'])} err" if edge["errors"] else ""
        )
        assert seen["label"] == label
    assert drawn[("shop/checkout", "shop/cart")]["errors"] == 20
    assert rows(browser, "#entrypoints") == [
        ["shop/frontend", "POST /checkout", "20", "60", "33.3 %", "20"]
    ]
    assert browser.evaluate("document.getElementById('affected-users').textContent") == "20"
    assert rows(browser, "#affected") == [
        ["shop/checkout", "1", "20", "60", "33.3 %"],
        ["shop/frontend", "2", "20", "120", "16.7 %"],
    ]
    assert rows(browser, "#contained") == [["shop/recommendation", "20"]]
    # The latency blast radius is drawn exactly when the engine lists one.
    slowed = any((report.get("latency_impact") or {}).values())
    assert browser.evaluate("document.getElementById('slowed-card').hidden") is not slowed
    assert bool(browser.evaluate("document.querySelectorAll('#graph .slowed').length")) is slowed
    shown = browser.evaluate(
        "[...document.querySelectorAll('#exemplars .trace-id')].map(c => c.textContent)"
    )
    assert shown == report["exemplar_trace_ids"] and shown
    comparison = {r[0]: r[1:] for r in rows(browser, "#comparison")}
    assert comparison["requests"][:2] == ["120", "120"]
    assert comparison["origin errors"][:2] == ["0", "40"]
    assert comparison["error rate"][1] == "33.3 %"
    hint = browser.evaluate("document.getElementById('comparison-hint').textContent")
    assert "just before the new revision appeared" in hint  # too few old requests alongside
    cart = '#rollouts .rollout[data-workload="shop/cart"] .rollout-revs'
    revs = browser.evaluate(f"document.querySelector('{cart}').textContent")
    assert revs == f"{OLD_CART} → {BAD_CART} (1.3.0 → 1.4.0)"
    local = re.compile(re.escape(shop.url) + r"/")
    assert browser.requests and all(local.match(u) for u in browser.requests), browser.requests


def test_selection_follows_the_hash_and_clicks(shop: Served, browser: Chromium) -> None:
    """A linked rollout opens selected; clicking another rollout selects it and updates the URL."""
    loaded(browser, f"{shop.url}/#workload=shop%2Fcatalog&revision={NEW_CATALOG}")
    report_of(browser, "shop/catalog")
    assert browser.evaluate("document.querySelector('#report').dataset.verdict") == "healthy"
    assert (
        browser.evaluate(
            "document.querySelector('#rollouts a[aria-current=\"true\"]').parentElement"
            ".dataset.workload"
        )
        == "shop/catalog"
    )
    assert rows(browser, "#affected") == [["No other workload was affected."]]
    nodes = browser.evaluate(NODES)
    # No failure started in the healthy catalog: drawn as "this rollout", not as an origin.
    assert [n["workload"] for n in nodes if "rollout" in n["cls"]] == ["shop/catalog"]
    assert not [n for n in nodes if "affected" in n["cls"] or "origin" in n["cls"]]
    browser.evaluate(
        "document.querySelector('#rollouts li[data-workload=\"shop/cart\"] a').click()"
    )
    report_of(browser, "shop/cart")
    assert browser.evaluate("location.hash") == f"#workload=shop%2Fcart&revision={BAD_CART}"


def test_refresh_updates_data_without_reload(own_shop: Served, browser: Chromium) -> None:
    """New data appears on the next refresh; the page is not reloaded and keeps its selection."""
    loaded(browser, f"{own_shop.url}/?refresh=1#workload=shop%2Fcatalog&revision={NEW_CATALOG}")
    report_of(browser, "shop/catalog")
    browser.evaluate("window.notReloaded = true")
    now_s = time.time()
    buckets: dict[int, Aggregates] = {}
    for i in range(3):  # a payment revision appears: a third rollout, newest of all
        t = Trace(base_s=minute(now_s, 1))
        root = t.server(FRONTEND, "POST /pay", method="POST", route="/pay", user=f"u{i}")
        t.call(root, deployment("shop", "payment", "8d7c6b5a4", pod=f"pn00{i}"), "Charge")
        add(buckets, t)
    own_shop.store.write(buckets)
    browser.wait_for("document.querySelectorAll('#rollouts .rollout').length === 3")
    assert browser.evaluate("window.notReloaded") is True
    assert browser.evaluate("document.querySelector('#rollouts .rollout').dataset.workload") == (
        "shop/payment"
    )
    assert browser.evaluate("document.querySelector('#report').dataset.workload") == "shop/catalog"
    assert (
        browser.evaluate(
            "document.querySelector('#rollouts .rollout[data-workload=\"shop/payment\"]')"
            ".dataset.verdict"
        )
        == "insufficient_data"
    )


def test_empty_collector_says_so(empty: Served, browser: Chromium) -> None:
    """With no data at all, the page says so instead of drawing an empty report."""
    loaded(browser, empty.url + "/")
    text = browser.wait_for("document.querySelector('#report-empty:not([hidden])')?.textContent")
    assert "no data yet" in text
    assert browser.evaluate("document.getElementById('summary').hidden") is True
    assert browser.evaluate("document.getElementById('rollouts').children.length") == 0
    assert "No rollouts yet" in browser.evaluate(
        "document.getElementById('rollouts-empty').textContent"
    )
    shot(browser, "page-empty.png")


def test_first_revision_has_no_baseline_column(shop: Served, browser: Chromium) -> None:
    """A workload's only revision, linked directly, is reported without a baseline."""
    loaded(browser, f"{shop.url}/#workload=shop%2Fcheckout&revision=66d4c8f7b")
    report_of(browser, "shop/checkout")
    assert browser.evaluate("document.getElementById('comparison-title').textContent") == (
        "First revision: no baseline to compare with"
    )
    head = browser.evaluate("document.querySelector('#comparison thead').textContent")
    assert "baseline" not in head and "66d4c8f7b" in head
    assert rows(browser, "#comparison")[0] == ["requests", "120"]
    assert browser.evaluate("document.querySelectorAll('#rollouts a[aria-current]').length") == 0


def test_no_rollout_yet_shows_the_service_graph(tmp_path: Path, browser: Chromium) -> None:
    """Workloads reporting, none rolled out: the page says so and draws the plain graph."""
    store = SqliteStore(tmp_path / "quiet.db")
    buckets: dict[int, Aggregates] = {}
    for i in range(4):
        t = Trace(base_s=minute(time.time(), 3))
        _checkout(t, OLD_CART, f"user-{i}", fail=False)
        add(buckets, t)
    store.write(buckets)
    served = serve(store)
    try:
        loaded(browser, served.url + "/")
        text = browser.wait_for(
            "document.querySelector('#report-empty:not([hidden])')?.textContent"
        )
        assert "No rollouts yet. 4 workloads are reporting" in text
        nodes = browser.evaluate(NODES)
        assert sorted(n["workload"] for n in nodes) == [
            "shop/cart",
            "shop/checkout",
            "shop/frontend",
            "shop/payment",
        ]
        assert all("hop-none" in n["cls"] and "origin" not in n["cls"] for n in nodes)
        assert len(browser.evaluate(EDGES)) == 3
        assert browser.evaluate("document.getElementById('summary').hidden") is True
        shot(browser, "page-no-rollout.png")
    finally:
        served.stop()
        store.close()


def test_unknown_workload_shows_the_error_envelope(shop: Served, browser: Chromium) -> None:
    """A link to a workload the collector never saw shows the API's error code and message."""
    loaded(browser, f"{shop.url}/#workload=shop%2Fghost&revision=abc")
    text = browser.wait_for(
        "document.querySelector('#report-empty[data-state=\"error\"]:not([hidden])')?.textContent"
    )
    assert "unknown_workload" in text and "404" in text and "shop/ghost" in text
    # Chromium logs the 404 it was shown; that one is expected.
    assert [e for e in browser.errors if "404" not in e] == []
    browser.errors.clear()
    assert browser.evaluate("document.querySelectorAll('#rollouts .rollout').length") == 2


def test_unreachable_api_shows_a_banner_and_keeps_the_data(
    own_shop: Served, browser: Chromium
) -> None:
    """When the collector goes away, a banner says so and the last report stays visible."""
    loaded(browser, own_shop.url + "/?refresh=1")
    report_of(browser, "shop/cart")
    own_shop.stop()
    banner = browser.wait_for(
        "document.querySelector('#banner[data-code=\"unreachable\"]:not([hidden])')?.textContent"
    )
    assert "cannot reach the podtrace API" in banner
    assert browser.evaluate("document.body.classList.contains('stale')") is True
    assert browser.evaluate("document.getElementById('summary').hidden") is False
    assert browser.evaluate("document.querySelectorAll('#graph .node').length") == 6
    shot(browser, "page-unreachable.png")
    assert browser.errors and all("ERR_CONNECTION_REFUSED" in e for e in browser.errors)
    browser.errors.clear()


def test_trace_url_template_makes_safe_links(shop: Served, browser: Chromium) -> None:
    """?trace_url= turns exemplar ids into links; a non-http template gives plain text."""
    loaded(browser, shop.url + "/?trace_url=http://127.0.0.1:16686/trace/{trace_id}")
    report_of(browser, "shop/cart")
    links = browser.evaluate("[...document.querySelectorAll('#exemplars a')].map(a => a.href)")
    ids = shop.api("/api/v1/blast-radius?workload=shop/cart")["exemplar_trace_ids"]
    assert links == [f"http://127.0.0.1:16686/trace/{i}" for i in ids]
    loaded(browser, shop.url + "/?trace_url=javascript:alert({trace_id})")
    report_of(browser, "shop/cart")
    assert browser.evaluate("document.querySelectorAll('#exemplars a').length") == 0
    assert browser.evaluate("document.querySelectorAll('#exemplars .trace-id').length") == len(ids)


def test_api_token_is_asked_for_once(guarded: Served, browser: Chromium) -> None:
    """Behind --api-token the page asks for the token, then shows the report."""
    for path in ("/", "/static/app.js", "/static/style.css"):
        assert httpx.get(guarded.url + path, timeout=5).status_code == 200, path
    loaded(browser, guarded.url + "/")
    browser.wait_for("document.querySelector('#banner[data-code=\"unauthorized\"] #token')")
    browser.evaluate(
        "document.getElementById('token').value = 'secret-token';"
        "document.querySelector('.token-form button').click()"
    )
    report_of(browser, "shop/cart")
    assert browser.evaluate("document.getElementById('banner').hidden") is True
    assert browser.evaluate("getComputedStyle(document.body).margin") == "0px"  # CSS loaded
    assert browser.errors and all("401" in e for e in browser.errors)  # the first, tokenless try
    browser.errors.clear()


def test_content_security_policy_blocks_other_origins(shop: Served, browser: Chromium) -> None:
    """The page's CSP lets it talk to its own collector only: a fetch elsewhere never leaves."""
    loaded(browser, shop.url + "/")
    report_of(browser, "shop/cart")
    outcome = browser.evaluate(
        "fetch('http://192.0.2.1/steal').then(() => 'sent', () => 'blocked')"
    )
    assert outcome == "blocked"
    assert not [u for u in browser.requests if "192.0.2.1" in u]
    assert browser.errors and all("Content Security Policy" in e for e in browser.errors)
    browser.errors.clear()


# Namespace names are identifiers, never fetched.
_NAMESPACES = {"http://www.w3.org/2000/svg"}


@pytest.mark.parametrize("name", sorted(p.name for p in PAGE_DIR.iterdir()))
def test_static_files_reference_no_other_origin(name: str) -> None:
    """No page file names an absolute URL: the page works offline, with no CDN."""
    text = (PAGE_DIR / name).read_text()
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'`)]*", text)) - _NAMESPACES
    assert not urls
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"(?!/static/|data:)", text)


# ---- what the engine does not produce: a report patched on its way out ---------------------
# (the latency blast radius is drawn from the engine's own reports in test_page_latency.py)


def _with(**fields: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda report: {**report, **fields}


@pytest.fixture
def patched(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """The scenario, its blast-radius reports rewritten by the test's ``patch`` parameter."""
    store = SqliteStore(tmp_path / "podtrace.db")
    fill(store, time.time())
    served = serve(store, patch=request.param)
    yield served
    served.stop()
    store.close()


@pytest.mark.parametrize("patched", [_with(affected_users=None)], indirect=True)
def test_unknown_users_without_a_reason(patched: Served, browser: Chromium) -> None:
    """A report with unknown users and no reason (an older collector) gets the default reason;
    the engine's empty latency lists leave no trace."""
    loaded(browser, patched.url + "/")
    report_of(browser, "shop/cart")
    assert browser.evaluate("document.getElementById('slowed-card').hidden") is True
    assert browser.evaluate("document.querySelectorAll('#graph .slowed').length") == 0
    assert browser.evaluate("document.querySelector('#legend [data-legend=\"slowed\"]')") is None
    assert browser.evaluate("document.querySelector('.kpi[data-kpi=\"slowed\"]')") is None
    line = browser.evaluate("document.getElementById('entrypoints-users').textContent")
    assert line == "affected users: unknown (no enduser.id on entry spans)"


_TRANSIT = {
    "where": "transit",
    "callers": [
        {
            "workload": "shop/checkout",
            "service": "checkout",
            "transit_ms": {"p50": 52.0, "p95": 60.0},
            "baseline_transit_ms": {"p50": 5.0, "p95": 6.0},
            "p_value": 1e-9,
            "other_calls": None,
            "slower_everywhere": False,
        }
    ],
}


@pytest.mark.parametrize(
    ("patched", "text"),
    [
        (_with(slowdown=_TRANSIT), "slower to reach"),
        (_with(slowdown={"where": "own_code", "callers": []}), "slower in its own code"),
        (_with(slowdown=None), None),
    ],
    indirect=["patched"],
)
def test_where_the_time_went_is_marked(patched: Served, browser: Chromium, text: str) -> None:
    """Synthetic report: a mark beside the verdict says "slower to reach" (transit) or "slower
    in its own code", naming the callers on hover; none without a latency regression."""
    loaded(browser, patched.url + "/")
    report_of(browser, "shop/cart")
    mark = "document.getElementById('summary-slowdown')"
    if text is None:
        assert browser.evaluate(f"{mark}.hidden") is True
        return
    if "reach" in text:
        shot(browser, "page-slower-to-reach.png")
    assert browser.evaluate(f"{mark}.hidden") is False
    assert browser.evaluate(f"{mark}.textContent") == text
    if "reach" in text:
        title = browser.evaluate(f"{mark}.title")
        assert title == "shop/checkout: transit to it 52 ms vs 5.0 ms (p50)"


# ---- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css"])
def test_page_responses_carry_the_security_headers(shop: Served, path: str) -> None:
    """The CSP is a real header, with frame-ancestors 'none' and X-Frame-Options: DENY."""
    resp = httpx.get(shop.url + path, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["x-content-type-options"] == "nosniff"
    directives = resp.headers["content-security-policy"].split(";")
    policy = dict(d.strip().split(" ", 1) for d in directives)
    assert policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["connect-src"] == "'self'"


def test_meta_policy_matches_the_header(shop: Served) -> None:
    """The <meta> copy says what the header says (frame-ancestors aside: meta cannot carry it)."""
    resp = httpx.get(shop.url + "/", timeout=5)
    meta = re.search(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', resp.text)
    assert meta is not None
    header = resp.headers["content-security-policy"].replace("; frame-ancestors 'none'", "")
    assert meta.group(1) == header


def _framing_site(target: str) -> ThreadingHTTPServer:
    """Another site on loopback whose page puts ``target`` in an iframe."""
    page = f'<!DOCTYPE html><iframe src="{target}" width="800" height="600"></iframe>'.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    return site


def test_page_refuses_to_be_framed(shop: Served, browser: Chromium) -> None:
    """Another site cannot frame the collector's page: the browser refuses to render it."""
    site = _framing_site(shop.url + "/")
    try:
        browser.navigate(f"http://127.0.0.1:{site.server_address[1]}/")
        browser.idle(0.5)
    finally:
        site.shutdown()
        site.server_close()
    (child,) = browser.send("Page.getFrameTree")["frameTree"]["childFrames"]
    # Chromium shows its error page in place of the refused one, which never ran.
    assert child["frame"]["url"].startswith("chrome-error://")
    assert not [u for u in browser.requests if u.startswith(shop.url + "/static/")]
    assert [e for e in browser.errors if "frame-ancestors" in e]
    browser.errors.clear()


def test_markup_in_names_is_shown_as_text(tmp_path: Path, browser: Chromium) -> None:
    """A workload named like markup is drawn as text: nothing in a name runs or breaks the page."""
    name, namespace = '<img src=x onerror="window.pwned=1">', "a\"'&<b>"
    workload = f"{namespace}/{name}"
    now_s = time.time()
    buckets: dict[int, Aggregates] = {}
    for i in range(48):
        version = "1.0" if i < 24 else "2.0"  # outside Kubernetes the version is the revision
        t = Trace(base_s=minute(now_s, 20 - i // 4))
        root = t.server(FRONTEND, "GET /", method="GET", route="/", user=f"u{i}", error=i % 4 == 3)
        callee = service(name, namespace=namespace, version=version)
        t.call(root, callee, "GET /x", error=version == "2.0" and i % 4 == 3)
        add(buckets, t)
    store = SqliteStore(tmp_path / "podtrace.db")
    store.write(buckets)
    served = serve(store)
    try:
        loaded(browser, served.url + "/")
        literal = json.dumps(workload)
        browser.wait_for(f"document.getElementById('report').dataset.workload === {literal}")
        browser.wait_for("document.querySelector('#graph .node')")
        shot(browser, "page-markup-names.png")
        assert browser.evaluate("window.pwned === undefined") is True
        assert browser.evaluate("document.querySelectorAll('img, b').length") == 0
        assert browser.evaluate("document.querySelector('.rollout-workload').textContent") == (
            workload
        )
        assert browser.evaluate("document.getElementById('summary-title').firstChild.data") == (
            workload
        )
        nodes = "[...document.querySelectorAll('#graph .node')]"
        node = f"{nodes}.find(n => n.dataset.workload === {literal})"
        assert browser.evaluate(f"{node}.querySelector('.name').textContent") == name[:23] + "…"
        assert browser.evaluate(f"{node}.querySelector('title').textContent").startswith(workload)
        browser.evaluate(
            f"document.getElementById('graph-search').value = {json.dumps(name)};"
            "document.querySelector('#graph-find button').click()"
        )
        assert browser.evaluate("document.getElementById('graph').dataset.found") == workload
    finally:
        served.stop()
        store.close()
