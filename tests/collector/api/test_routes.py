"""Tests for api.routes and api.page: the query API over real stores, served by uvicorn.

The collector's real app (``api.app.create_app``) runs under uvicorn on a free loopback port; each
test points ``app.state.store`` at a MemoryStore or a SqliteStore filled with hand-built minutes:
cart rolls out revision ``new02`` twenty minutes ago, failing where ``old01`` did not.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.api import routes
from podtrace_collector.api.app import create_app
from podtrace_collector.api.page import PAGE_DIR
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.store.base import Store
from podtrace_collector.store.clickhouse import ClickHouseStore
from podtrace_collector.store.memory import MemoryStore
from podtrace_collector.store.sqlite import SqliteStore

from tests.collector.chdb_engine import chdb_url
from tests.collector.store.samples import hist, merged, sample

OLD, NEW = "old01", "new02"
MINUTES, ROLLOUT = 40, 20  # minutes of data ending now; the new revision's first minute


class Server:
    """The app under uvicorn in a thread, on a free port."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

        self.client = httpx.Client(base_url=self.url, timeout=10)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(5)


def make_app(token: str | None = None) -> FastAPI:
    return create_app(metrics=CollectorMetrics(), api_token=token)


def scenario(now_s: float) -> dict[int, Aggregates]:
    """Forty minutes ending now; cart's new revision in the last twenty: origin errors, and ten
    times the self time, which slows checkout's entry point and frontend through it."""
    start = int(now_s) // 60 * 60 - (MINUTES - 1) * 60
    out = {}
    for m in range(MINUTES):
        b = start + 60 * m
        a = sample(m, revision=OLD if m < ROLLOUT else NEW, bucket_s=b)
        if m < ROLLOUT:
            old = a.revisions[("shop/cart", OLD)]
            old.errors = old.origin_errors = 0
            a.impacts.clear()
            a.entry_impacts.clear()
            a.absorbed.clear()
            a.origins.clear()
        else:
            _ten_times_slower(a, m)
        out[b] = a
    return out


def _ten_times_slower(a: Aggregates, m: int) -> None:
    a.revisions[("shop/cart", NEW)].self_time = hist(40, 40, 500 + m)
    for key, imp in [*a.latency_impacts.items(), *a.entry_latency_impacts.items()]:
        if key[1] == NEW:
            imp.shares = hist(*(10 * x for x in (5, 6, 70 + m)))


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server(make_app())
    yield srv
    srv.stop()


@pytest.fixture(scope="module", params=["memory", "sqlite", "clickhouse"])
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """The scenario in each kind of store (built once: the tests only read)."""
    path = tmp_path_factory.mktemp("store") / "p.db"
    st: Store = (
        MemoryStore()
        if request.param == "memory"
        else SqliteStore(path)
        if request.param == "sqlite"
        else ClickHouseStore(chdb_url())
    )
    st.write(scenario(time.time()))
    yield st
    st.close()


@pytest.fixture
def store(filled: Store, server: Server) -> Store:
    """The filled store, served by the module's server."""
    server.app.state.store = filled
    return filled


def _ok(server: Server, path: str) -> Any:
    r = server.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


def _error(server: Server, path: str, status: int, code: str) -> str:
    r = server.get(path)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert message
    return message


class TestBlastRadius:
    def test_default_is_newest_revision_against_previous(
        self, server: Server, store: Store
    ) -> None:
        """Defaults: newest revision, the one before as baseline, window from its first span."""
        rep = _ok(server, "/api/v1/blast-radius?workload=shop/cart")
        assert (rep["workload"], rep["revision"], rep["kind"], rep["service"]) == (
            "shop/cart",
            NEW,
            "Deployment",
            "cart",
        )
        new = merged(
            *(a for a in scenario(time.time()).values() if ("shop/cart", NEW) in a.revisions)
        )
        stats = new.revisions[("shop/cart", NEW)]
        assert (rep["requests"], rep["errors"], rep["origin_errors"]) == (
            stats.requests,
            stats.errors,
            stats.origin_errors,
        )
        assert rep["baseline"]["revision"] == OLD
        assert rep["verdict"] == "regressed" and rep["p_value"] < 0.01
        assert rep["affected_services"][0]["workload"] == "shop/frontend"
        assert rep["affected_services"][0]["hops"] == 1
        assert rep["affected_services"][0]["affected_requests"] == sum(
            a.impacts[("shop/cart", NEW, "shop/frontend")].affected_requests
            for a in scenario(time.time()).values()
            if a.impacts
        )
        assert rep["entrypoints"][0]["operation"] == "POST /checkout"
        assert rep["contained_by"][0]["workload"] == "shop/frontend"
        assert rep["affected_users"] == ROLLOUT + 1  # user20..user39 and alice
        assert len(rep["exemplar_trace_ids"]) == 10
        assert set(rep["latency_ms"]) == {"p50", "p95", "p99"}
        (slowed,) = rep["latency_impact"]["services"]
        assert (slowed["workload"], slowed["hops"]) == ("shop/frontend", 1)
        assert slowed["requests"] == 300 * (MINUTES - ROLLOUT)
        assert slowed["exposed_requests"] == sum(40 + m for m in range(ROLLOUT, MINUTES))
        (entry,) = rep["latency_impact"]["entrypoints"]
        assert entry["operation"] == "POST /checkout" and entry["added_ms"]["p50"] > 0

    def test_explicit_revision_baseline_and_window(self, server: Server, store: Store) -> None:
        """revision, baseline, since and until are honoured."""
        rep = _ok(
            server,
            f"/api/v1/blast-radius?workload=shop/cart&revision={OLD}&since=1h&until=1m",
        )
        assert rep["revision"] == OLD and rep["baseline"] is None
        assert rep["verdict"] == "insufficient_data" and rep["origin_errors"] == 0
        rep = _ok(server, f"/api/v1/blast-radius?workload=shop/cart&revision={NEW}&baseline={OLD}")
        assert rep["baseline"]["revision"] == OLD

    def test_service_and_version_select_the_workload(self, server: Server, store: Store) -> None:
        """service=NAME[&version=V] finds the workload that runs the service."""
        rep = _ok(server, "/api/v1/blast-radius?service=cart&version=1.4.0")
        assert rep["workload"] == "shop/cart" and rep["revision"] == NEW

    @pytest.mark.parametrize(
        ("query", "status", "code"),
        [
            ("workload=shop/nope", 404, "unknown_workload"),
            ("workload=shop/cart&revision=zzz", 404, "unknown_revision"),
            ("workload=shop/cart&baseline=zzz", 404, "unknown_revision"),
            ("service=nope", 404, "unknown_workload"),
            ("workload=shop/cart&version=9.9", 404, "unknown_revision"),
            ("", 400, "bad_request"),
            ("workload=shop/cart&service=cart", 400, "bad_request"),
            ("workload=nocolon", 400, "bad_request"),
            ("workload=%00%01", 400, "bad_request"),
            ("workload=" + "x" * 5000, 400, "bad_request"),
            ("workload=shop/cart&since=yesterday", 400, "bad_time"),
            ("workload=shop/cart&since=-5m", 400, "bad_time"),
            ("workload=shop/cart&since=99999999999999999999h", 400, "bad_time"),
            ("workload=shop/cart&since=2026-13-45T99:00:00Z", 400, "bad_time"),
            ("workload=shop/cart&since=5m&until=1h", 400, "bad_time"),
            ("workload=shop/cart&revision=" + "r" * 600, 400, "bad_request"),
            ("workload=shop/cart&revision=new02&baseline=new02", 400, "bad_request"),
        ],
    )
    def test_bad_queries(
        self, server: Server, store: Store, query: str, status: int, code: str
    ) -> None:
        """Unknown names are 404s, malformed parameters 400s, always in the envelope."""
        _error(server, f"/api/v1/blast-radius?{query}", status, code)

    @pytest.mark.parametrize(
        "query",
        [
            "workload=ñs/cärt☃",
            "workload=%F0%9F%92%A5/%F0%9F%92%A5",
            "workload=shop/cart&revision=%E2%80%8B",
            "workload=shop/cart&since=%F0%9F%92%A5",
            "workload=shop/cart&since=1e308h",
            "workload=shop/cart&since=0.0000001s&until=0s",
            "workload=shop/cart&since=1970-01-01T00:00:00Z",
            "workload=' OR 1=1 --",
            "service=%00",
            "workload=shop/cart&workload=shop/other",
        ],
    )
    def test_garbage_is_never_a_500(self, server: Server, store: Store, query: str) -> None:
        """Garbage, huge and unicode values get a 2xx or 4xx answer in the envelope."""
        r = server.get(f"/api/v1/blast-radius?{query}")
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            assert r.json()["error"]["code"]


class TestGate:
    def test_states_over_http(self, server: Server, store: Store) -> None:
        """The gate answers 200 with a state: regressed, insufficient_data, not_seen."""
        gate = _ok(server, f"/api/v1/gate?workload=shop/cart&revision={NEW}&baseline={OLD}")
        assert gate["state"] == "regressed" and gate["baseline"] == OLD
        old = _ok(server, f"/api/v1/gate?workload=shop/cart&revision={OLD}")
        assert old["state"] == "insufficient_data"  # the first revision: no baseline
        for query in ("workload=shop/cart&revision=zzz", "workload=shop/nope&revision=a1"):
            assert _ok(server, f"/api/v1/gate?{query}")["state"] == "not_seen"

    @pytest.mark.parametrize(
        ("query", "code"),
        [
            ("", "bad_request"),
            ("workload=nocolon&revision=a1", "bad_request"),
            ("workload=shop/cart&revision=", "bad_request"),
            ("workload=shop/cart&since=yesterday", "bad_time"),
        ],
    )
    def test_malformed_questions_are_400s(
        self, server: Server, store: Store, query: str, code: str
    ) -> None:
        """A misconfigured gate is an error, so that it shows, not a quiet state."""
        _error(server, f"/api/v1/gate?{query}", 400, code)

    def test_empty_store_is_not_seen(self, server: Server, store: Store) -> None:
        """Before the first span, a canary is not_seen (not a 404)."""
        server.app.state.store = MemoryStore()
        assert _ok(server, "/api/v1/gate?workload=shop/cart&revision=a1")["state"] == "not_seen"

    def test_described_in_openapi(self, server: Server) -> None:
        """The OpenAPI document describes the gate, its parameters and its four states."""
        doc = _ok(server, "/openapi.json")
        op = doc["paths"]["/api/v1/gate"]["get"]
        params = {p["name"] for p in op["parameters"]}
        assert {"workload", "revision", "baseline", "since", "until"} <= params
        schema = doc["components"]["schemas"]["GateAnswer"]["properties"]["state"]
        assert set(schema["enum"]) == {"regressed", "healthy", "insufficient_data", "not_seen"}


class TestOtherEndpoints:
    def test_workloads(self, server: Server, store: Store) -> None:
        """Every workload with its revisions, newest first, and counts over the window."""
        body = _ok(server, "/api/v1/workloads")
        by_name = {w["workload"]: w for w in body["workloads"]}
        assert set(by_name) == {"shop/cart", "shop/frontend"}
        cart = by_name["shop/cart"]
        assert cart["kind"] == "Deployment" and cart["service"] == "cart"
        assert [r["revision"] for r in cart["revisions"]] == [NEW, OLD]
        for field in ("version", "first_seen", "last_seen", "pods", "requests", "errors"):
            assert field in cart["revisions"][0]
        recent = _ok(server, "/api/v1/workloads?since=10m")
        cart_recent = next(w for w in recent["workloads"] if w["workload"] == "shop/cart")
        assert cart_recent["revisions"][0]["requests"] < cart["revisions"][0]["requests"]

    def test_rollouts(self, server: Server, store: Store) -> None:
        """The rollout of cart from old01 to new02, judged regressed."""
        body = _ok(server, "/api/v1/rollouts")
        (r,) = [r for r in body["rollouts"] if r["workload"] == "shop/cart"]
        assert (r["from_revision"], r["to_revision"], r["verdict"]) == (OLD, NEW, "regressed")
        assert r["started_at"].endswith("Z")
        assert _ok(server, "/api/v1/rollouts?since=1m")["rollouts"] == []
        _error(server, "/api/v1/rollouts?limit=abc", 400, "bad_request")
        _error(server, "/api/v1/rollouts?limit=0", 400, "bad_request")
        _error(server, "/api/v1/rollouts?until=soon", 400, "bad_time")

    def test_graph(self, server: Server, store: Store) -> None:
        """Nodes and the frontend→cart edge with calls and errors."""
        body = _ok(server, "/api/v1/graph?since=2h")
        assert {n["workload"] for n in body["nodes"]} >= {"shop/cart", "shop/frontend"}
        (edge,) = [e for e in body["edges"] if e["target"] == "shop/cart"]
        assert edge["source"] == "shop/frontend" and edge["calls"] > 0 and edge["errors"] > 0
        _error(server, "/api/v1/graph?since=%FF", 400, "bad_time")

    def test_empty_store(self, server: Server, store: Store) -> None:
        """An empty store answers with empty lists, and 404 for any workload."""
        server.app.state.store = MemoryStore()
        assert _ok(server, "/api/v1/workloads") == {"workloads": []}
        assert _ok(server, "/api/v1/rollouts") == {"rollouts": []}
        assert _ok(server, "/api/v1/graph")["edges"] == []
        _error(server, "/api/v1/blast-radius?workload=shop/cart", 404, "unknown_workload")

    def test_no_store_is_a_503(self, server: Server) -> None:
        """A collector without a store (a sidecar) answers 503 no_store, not a crash."""
        server.app.state.store = None
        paths = ("workloads", "rollouts", "graph", "blast-radius?workload=shop/cart")
        for path in (*paths, "gate?workload=shop/cart"):
            _error(server, f"/api/v1/{path}", 503, "no_store")

    def test_routes_are_documented(self) -> None:
        """Every API route has a summary, a description and documented error responses."""
        api = [r for r in routes.api.routes if getattr(r, "path", "").startswith("/api/v1/")]
        assert len(api) == 5
        for r in api:
            assert r.summary and r.description, r.path  # type: ignore[attr-defined]
            assert 400 in r.responses  # type: ignore[attr-defined]


class TestToken:
    def test_token_guards_the_api_not_health(self) -> None:
        """With an API token the API needs it; /healthz stays open."""
        srv = Server(make_app(token="s3cret"))
        try:
            srv.app.state.store = MemoryStore()
            assert srv.get("/healthz").status_code == 200
            assert srv.get("/api/v1/workloads").status_code == 401
            bad = srv.get("/api/v1/workloads", headers={"Authorization": "Bearer nope"})
            assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthorized"
            good = srv.get("/api/v1/workloads", headers={"Authorization": "Bearer s3cret"})
            assert good.status_code == 200
        finally:
            srv.stop()


class TestPage:
    def test_index(self, server: Server) -> None:
        """GET / serves the page's index.html as HTML."""
        r = server.get("/")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.content == (PAGE_DIR / "index.html").read_bytes()

    def test_static_files_with_their_types(self, server: Server) -> None:
        """Every file beside index.html is served with its content type."""
        types = {".css": "text/css", ".js": "text/javascript", ".html": "text/html"}
        files = [p for p in PAGE_DIR.iterdir() if p.suffix in types]
        assert len(files) >= 2
        for p in files:
            r = server.get(f"/static/{p.name}")
            assert r.status_code == 200, p.name
            assert r.headers["content-type"].startswith(types[p.suffix])
            assert r.content == p.read_bytes()

    @pytest.mark.parametrize(
        "path",
        [
            "/static/nope.css",
            "/static/..%2Fpage.py",
            "/static/../page.py",
            "/static/%2e%2e%2fpage.py",
            "/static/.hidden.css",
            "/static/page.py",
            "/static/" + "a" * 300 + ".js",
            "/static/%00.js",
            "/static/sub/dir.js",
        ],
    )
    def test_no_traversal(self, server: Server, path: str) -> None:
        """Anything but a plain page file name is a 404 in the envelope."""
        r = server.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"


def test_an_unreachable_store_answers_503(server: Server) -> None:
    """A store that cannot be read (a ClickHouse server away) is 503 store_unavailable."""
    unreachable = ClickHouseStore("clickhouse://127.0.0.1:1/podtrace")
    server.app.state.store = unreachable
    try:
        answer = server.get("/api/v1/workloads")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "store_unavailable"
    finally:
        unreachable.close()
