"""The API port (4320): health, readiness, Prometheus metrics, the query API and the page.

``create_app`` builds the FastAPI application.  The query routes (``api.routes``) read the store
from ``app.state.store``: ``None`` in a sidecar, where they answer 503 ``no_store``.  Every error,
from any route, is one JSON envelope ``{"error": {"code": "...", "message": "..."}}``
(``api.errors``); validation errors are 400s with a message naming the parameter, and an
unexpected exception is a 500 that never shows a traceback.  With ``--api-token`` every path
except ``/healthz``, ``/readyz``, the page (``/`` and ``/static/*``) and the OpenAPI description
(``/openapi.json``, ``/docs``) needs ``Authorization: Bearer TOKEN``.  Requests are answered
only for allowed ``Host`` names (``api.hosts``: IP addresses, localhost, ``--api-allowed-hosts``).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from podtrace_collector.api import page, routes
from podtrace_collector.api.errors import HTTP_CODES, error_response, query_error_response
from podtrace_collector.api.hosts import AllowedHosts
from podtrace_collector.errors import QueryError, StoreError
from podtrace_collector.metrics import CONTENT_TYPE_LATEST, CollectorMetrics
from podtrace_collector.store.base import Store

logger = logging.getLogger(__name__)

_OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/openapi.json", "/docs"})
# The page's own files carry no data; the page asks for the token and sends it with API calls.
_OPEN_PREFIXES = ("/static/",)


def create_app(
    *,
    metrics: CollectorMetrics,
    store: Store | None = None,
    api_token: str | None = None,
    allowed_hosts: Sequence[str] = (),
    is_ready: Callable[[], bool] = lambda: True,
) -> FastAPI:
    """Build the API application.

    Args:
        metrics: the collector's metrics; ``/metrics`` renders its registry.
        store: the ``Store`` the query routes read, if any (a sidecar has none).
        api_token: the bearer token every non-open path needs (``--api-token``), if any.
        allowed_hosts: ``Host`` names answered besides IP addresses and localhost
            (``--api-allowed-hosts``).
        is_ready: whether receivers are bound and the store is open (``/readyz``).
    """
    app = FastAPI(
        title="podtrace collector",
        description="Query API of the podtrace gateway: workloads, rollouts, blast radius, graph.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.store = store
    _add_error_handlers(app)
    _add_token_check(app, api_token)
    app.add_middleware(AllowedHosts, allowed=allowed_hosts)  # checked first
    app.add_middleware(_Timed, histogram=metrics.api_duration)  # outermost: times everything

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=None)
    def readyz() -> dict[str, str] | JSONResponse:
        if is_ready():
            return {"status": "ready"}
        return error_response(503, "not_ready", "receivers or store not ready yet")

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(routes.router)
    app.mount(
        "/static", page.files(), name="static"
    )  # answers 503 "no_store" where there is none (a sidecar)
    return app


class _Timed:
    """Observes every request's duration under its route's path template (``/api/v1/graph``).

    The router records the matched route in the request's scope; a path no route matched is
    ``unmatched``, so that scanning random paths cannot grow the metric's label values.
    """

    def __init__(self, app: ASGIApp, *, histogram: Histogram) -> None:
        self._app = app
        self._histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self._app(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self._histogram.labels(route).observe(time.perf_counter() - started)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, **dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "bad_request", _describe(exc))

    @app.exception_handler(QueryError)
    async def query_error(request: Request, exc: QueryError) -> JSONResponse:
        return query_error_response(exc)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        # The store is away (a ClickHouse server unreachable, a locked file): retry later.
        logger.warning("store read failed in %s: %s", request.url.path, exc)
        return error_response(503, "store_unavailable", f"the store cannot be read: {exc}")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", "internal error; see the collector's log")


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _add_token_check(app: FastAPI, token: str | None) -> None:
    if not token:
        return
    expected = f"Bearer {token}".encode()

    @app.middleware("http")
    async def check_token(request: Request, call_next: Any) -> Response:
        if request.url.path in _OPEN_PATHS or request.url.path.startswith(_OPEN_PREFIXES):
            response: Response = await call_next(request)
            return response
        got = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(got, expected):
            return error_response(
                401, "unauthorized", "missing or bad bearer token", **{"WWW-Authenticate": "Bearer"}
            )
        response = await call_next(request)
        return response
