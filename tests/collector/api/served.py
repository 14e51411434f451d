"""Serving the collector's real API app for page tests, and reading the page back in Chromium.

``serve`` runs the app ``podtrace collector`` builds under uvicorn on a free loopback port, over a
real store.  A test may pass ``patch`` to rewrite the blast-radius report on its way out, to show
the page a field the engine does not produce yet; every other answer is the API's own.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.api.app import create_app
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.store.sqlite import SqliteStore

from tests.browser import Chromium
from tests.collector.analyse.tracebuilder import Trace, summarize

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

Patch = Callable[[dict[str, Any]], dict[str, Any]]


def minute(now_s: float, minutes_ago: int) -> int:
    """The start of the minute ``minutes_ago`` before ``now_s`` (a trace's base)."""
    return (int(now_s) // 60 - minutes_ago) * 60


def add(buckets: dict[int, Aggregates], t: Trace) -> None:
    """Analyse one trace as the gateway does (its Analyzer); merge it into its minute."""
    bucket, agg = summarize(t.spans)
    buckets.setdefault(bucket, Aggregates()).merge(agg)


# ---- serving the real API app ----------------------------------------------------------------


def _app(store: SqliteStore, token: str | None, patch: Patch | None) -> FastAPI:
    """The collector's own API app (as ``podtrace collector`` builds it) over ``store``."""
    app = create_app(metrics=CollectorMetrics(), store=store, api_token=token)
    if patch is not None:
        rewrite = patch

        @app.middleware("http")
        async def patched(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            response = await call_next(request)
            if request.url.path != "/api/v1/blast-radius" or response.status_code != 200:
                return response
            # call_next answers with a streaming response whose type Starlette keeps private.
            chunks: AsyncIterator[bytes] = response.body_iterator  # type: ignore[attr-defined]
            body = b"".join([chunk async for chunk in chunks])
            return JSONResponse(rewrite(json.loads(body)))

    return app


@dataclass
class Served:
    """A running API server: its base URL, its store and a way to stop it."""

    url: str
    store: SqliteStore
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)

    def api(self, path: str) -> Any:
        return httpx.get(self.url + path, timeout=5).json()


def serve(store: SqliteStore, *, token: str | None = None, patch: Patch | None = None) -> Served:
    """Run the API app under uvicorn on a free loopback port, in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _app(store, token, patch),
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    return Served(f"http://127.0.0.1:{sock.getsockname()[1]}", store, server, thread)


# ---- reading the page ------------------------------------------------------------------------

NODES = """[...document.querySelectorAll('#graph .node')].map(n => ({
  workload: n.dataset.workload, hops: n.dataset.hops, cls: n.getAttribute('class').split(' '),
  text: n.textContent}))"""
EDGES = """[...document.querySelectorAll('#graph .edge')].map(e => ({
  source: e.dataset.source, target: e.dataset.target, calls: +e.dataset.calls,
  errors: +e.dataset.errors, label: e.querySelector('.edge-label').textContent}))"""
# Every visible label of the graph (node names and captions, edge labels, column headings) and
# every node's disc, as screen rectangles; then every pair of them that intersects.
OVERLAPS = """(() => {
  const svg = document.getElementById('graph');
  const rect = (e, what) => { const r = e.getBoundingClientRect();
    return { what, l: r.left, t: r.top, r: r.right, b: r.bottom }; };
  const texts = [...svg.querySelectorAll('text:not(.mark)')].filter(t => t.textContent.trim())
    .map(t => rect(t, t.textContent)).filter(b => b.r > b.l);
  const dots = [...svg.querySelectorAll('.node .dot')]
    .map(d => rect(d, 'disc of ' + d.parentElement.dataset.workload));
  const clashes = [];
  const all = [...texts, ...dots];
  for (let i = 0; i < all.length; i++) for (let j = i + 1; j < all.length; j++) {
    const [a, b] = [all[i], all[j]];
    if (i >= texts.length && j >= texts.length) continue;
    if (a.l < b.r && b.l < a.r && a.t < b.b && b.t < a.b) clashes.push([a.what, b.what]);
  }
  return { labels: texts.length, clashes };
})()"""

ROWS = """(sel) => [...document.querySelectorAll(sel + ' tbody tr')].map(
  r => [...r.cells].map(c => c.textContent.trim()))"""


def rows(page: Chromium, table: str) -> list[list[str]]:
    """The cells' text of a table's body rows."""
    result: list[list[str]] = page.evaluate(f"({ROWS})('{table}')")
    return result


def loaded(page: Chromium, url: str) -> None:
    """Open ``url`` and wait for the page's first load to finish."""
    page.navigate(url)
    page.wait_for("document.body.dataset.ready === 'true'")


def report_of(page: Chromium, workload: str) -> None:
    """Wait until the report of ``workload`` is drawn."""
    page.wait_for(f"document.querySelector('#report[data-workload=\"{workload}\"] #graph .node')")


def shot(page: Chromium, name: str) -> Path:
    """A full-page screenshot in ``tests/artifacts/``."""
    return page.screenshot(ARTIFACTS / name)


def compact(n: int) -> str:
    """A count as the graph's edge labels print it."""
    return f"{n / 1000:.1f}K".replace(".0K", "K") if n >= 1000 else str(n)
