"""The API port's application: health, readiness, metrics, and one error envelope for all errors."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from podtrace_collector.api.app import create_app
from podtrace_collector.errors import UnknownWorkload
from podtrace_collector.metrics import CollectorMetrics


def _app(*, ready: bool = True, token: str | None = None) -> FastAPI:
    metrics = CollectorMetrics()
    metrics.spans_received.inc(7)
    app = create_app(metrics=metrics, api_token=token, is_ready=lambda: ready)

    def needs_int(n: int) -> dict[str, int]:
        return {"n": n}

    def crashes() -> None:
        raise RuntimeError("secret internals")

    def refuses() -> None:
        raise UnknownWorkload("no such workload")

    app.add_api_route("/test/int", needs_int)
    app.add_api_route("/test/crash", crashes)
    app.add_api_route("/test/query", refuses)
    return app


@contextmanager
def _serve(app: FastAPI) -> Iterator[httpx.Client]:
    """Serve ``app`` with uvicorn on a free loopback port; yield a client for it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}") as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with _serve(_app()) as client:
        yield client


def test_health_ready_metrics(client: httpx.Client) -> None:
    """/healthz and /readyz answer JSON; /metrics is Prometheus text from this collector."""
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "podtrace_spans_received_total 7.0" in metrics.text


def test_not_ready_is_503() -> None:
    """Before receivers are bound and the store is open, /readyz is 503 in the envelope."""
    answer = _get(_app(ready=False), "/readyz")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "not_ready"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("GET", "/test/int?n=abc", 400, "bad_request"),
        ("GET", "/test/int", 400, "bad_request"),
        ("GET", "/test/query", 404, "unknown_workload"),
        ("GET", "/test/crash", 500, "internal"),
    ],
)
def test_one_error_envelope(
    client: httpx.Client, method: str, path: str, status: int, code: str
) -> None:
    """Every error is {"error": {"code", "message"}}; a crash never shows internals."""
    answer = client.request(method, path)
    assert answer.status_code == status
    body = answer.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    assert "secret internals" not in answer.text and "Traceback" not in answer.text


def test_validation_message_names_the_parameter(client: httpx.Client) -> None:
    """A 400 from validation says which parameter was wrong."""
    assert "n" in client.get("/test/int?n=abc").json()["error"]["message"]


def _get(app: FastAPI, path: str) -> httpx.Response:
    with _serve(app) as client:
        return client.get(path)


def test_api_token() -> None:
    """With --api-token, /metrics needs the bearer token; health probes never do."""
    with _serve(_app(token="t0k")) as client:
        _check_token(client)


def _check_token(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    denied = client.get("/metrics")
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
    assert client.get("/metrics", headers={"Authorization": "Bearer t0k"}).status_code == 200


def test_openapi_description_is_served() -> None:
    """FastAPI's OpenAPI description lists the query API, and is readable behind a token."""
    with _serve(_app(token="t0k")) as client:
        spec = client.get("/openapi.json")
        assert spec.status_code == 200
        assert "/api/v1/blast-radius" in spec.json()["paths"]
        assert client.get("/docs").status_code == 200
