"""OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs`` (plain ASGI on uvicorn).

Per the OTLP/HTTP specification: the body is ``application/x-protobuf`` (also
``application/protobuf``) or ``application/json`` (media type matched case-insensitively,
parameters such as ``charset`` ignored), optionally ``Content-Encoding: gzip`` (or ``deflate``).
Each path is one signal's ``ExportRoute`` (``ingest/signals.py``).  Answers are in the request's
encoding: ``200`` with the signal's export response, whose ``partial_success`` is set only when
items were rejected; errors carry a ``google.rpc.Status``:
``400`` undecodable, ``401`` missing/bad ``--otlp-token``, ``404`` other paths, ``405`` wrong
method, ``413`` body over ``--max-body-bytes`` (checked while reading, and again while
decompressing, so neither a large body nor a zip bomb is ever held whole), ``415`` unsupported
media type or content encoding, ``429`` with ``Retry-After`` when a budget is exhausted or
admission refuses (``receive/admission.py``), ``503`` with ``Retry-After`` while shutting down.
A refused request's body is read and discarded first (up to ``DRAIN_MAX_BYTES``), so that a
client that sends its whole body before reading (urllib) reads the answer instead of a reset.

The body is read on the event loop; decompressing, decoding and handing on run on two worker
threads, so that the loop keeps answering (and refusing) while exports are in progress.

The exports are served by ``OtlpHttpApp`` directly at the ASGI level: ``/v1/traces`` is the one
hot endpoint, and FastAPI's routing, middleware stack and ``Request`` object cost about a fifth of
the CPU of an export (``bench/bench_ingest.py``).  Every other request is answered by the same
application: ``405`` (with ``Allow: POST``) on those paths, ``404`` elsewhere, as a Status.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from google.protobuf import json_format
from google.rpc import status_pb2  # type: ignore[import-untyped]

from podtrace_collector.ingest.pipeline import ExportResult, Ingest
from podtrace_collector.ingest.signals import ExportRoute, TraceRoute
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.receive.admission import Admission
from podtrace_collector.receive.status import INTERNAL, answer_for, retry_after_s, rpc_code

logger = logging.getLogger(__name__)

TRANSPORT = "http"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
# The most of a refused request's body read and discarded before answering (see ``_Body.drain``).
DRAIN_MAX_BYTES = 128 * 1024 * 1024

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _Refusal(Exception):
    def __init__(self, status: int, message: str, outcome: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.headers: dict[str, str] = {}


class _ClientGone(Exception):
    """The client disconnected before its body was read: there is no one to answer."""


class OtlpHttpApp:
    """The OTLP/HTTP ASGI application (serve it with uvicorn on ``--http-port``).

    Args:
        ingest: the receivers' shared trace pipeline.
        metrics: where request outcomes are counted.
        admission: the receivers' shared admission control.
        max_body_bytes: the largest body accepted, before and after decompression.
        token: the bearer token required on exports, if any.
        signals: the other signals' routes (metrics, logs); without one, its path is a 404.
    """

    def __init__(
        self,
        ingest: Ingest,
        metrics: CollectorMetrics,
        admission: Admission,
        *,
        max_body_bytes: int,
        token: str | None = None,
        signals: Sequence[ExportRoute] = (),
    ) -> None:
        routes: list[ExportRoute] = [TraceRoute(ingest), *signals]
        self._routes = {route.signal.http_path: route for route in routes}
        self._metrics = metrics
        self._admission = admission
        self._limit = max_body_bytes
        self._expected = f"Bearer {token}".encode() if token else None
        # Decoding runs here, off the event loop, which then stays free to answer (and refuse).
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="podtrace-http")

    def close(self) -> None:
        """Stop the export workers (after the server has stopped)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self._not_served(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self._serve(route, scope, receive, send)
        finally:
            self._metrics.otlp_duration.labels(TRANSPORT, route.signal.name).observe(
                time.perf_counter() - started
            )

    async def _serve(self, route: ExportRoute, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        is_json = _media_type(headers) == JSON
        body = _Body(receive, self._admission)
        try:
            self._check_token(headers)
            is_json = _check_media_type(headers)
            encoding = _content_encoding(headers)
            raw = await body.read(headers, self._limit)
            result = await self._export(route, raw, encoding, is_json)
        except _ClientGone:
            self._metrics.requests.labels(TRANSPORT, "client_gone").inc()
            return
        except _Refusal as refusal:
            self._metrics.requests.labels(TRANSPORT, refusal.outcome).inc()
            await body.drain()
            await _respond(
                send,
                *_status_body(refusal.status, str(refusal), is_json),
                refusal.status,
                refusal.headers,
            )
            return
        finally:
            body.release()
        self._metrics.requests.labels(TRANSPORT, "partial" if result.rejected else "ok").inc()
        content = route.encode(result, as_json=is_json)
        await _respond(send, content, JSON if is_json else PROTOBUF, 200, None)

    async def _export(
        self, route: ExportRoute, raw: bytes, encoding: str, is_json: bool
    ) -> ExportResult:
        if not self._admission.try_enter():
            raise _refusal(self._admission.busy())
        try:
            work = partial(_decompress_and_export, route, raw, encoding, self._limit)
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, is_json)
        finally:
            self._admission.leave()

    def _check_token(self, headers: dict[bytes, bytes]) -> None:
        if self._expected is None:
            return
        if not hmac.compare_digest(headers.get(b"authorization", b""), self._expected):
            refusal = _Refusal(401, "missing or bad bearer token", "unauthorized")
            refusal.headers["WWW-Authenticate"] = "Bearer"
            raise refusal

    async def _not_served(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Anything but a POST to a signal's path: 405 on those paths, 404 elsewhere."""
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        if scope["type"] != "http":
            return
        if scope["path"] in self._routes:
            status, outcome, message, extra = (
                405,
                "method_not_allowed",
                "use POST",
                {"Allow": "POST"},
            )
        else:
            status, outcome, extra = 404, "not_found", None
            paths = ", ".join(self._routes)
            message = f"no such path: OTLP/HTTP is received with POST on {paths}"
        self._metrics.requests.labels(TRANSPORT, outcome).inc()
        as_json = _media_type(_headers(scope)) == JSON
        await _Body(receive, self._admission).drain()
        await _respond(send, *_status_body(status, message, as_json), status, extra)


class _Body:
    """One request body: read within the limits, its bytes held in admission until released."""

    __slots__ = ("_admission", "_complete", "_held", "_receive")

    def __init__(self, receive: Receive, admission: Admission) -> None:
        self._receive = receive
        self._admission = admission
        self._held = 0
        self._complete = False

    async def read(self, headers: dict[bytes, bytes], limit: int) -> bytes:
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while not self._complete:
            chunk = await self._next()
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            if not self._admission.hold_bytes(len(chunk)):
                raise _refusal(self._admission.busy())
            self._held += len(chunk)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def drain(self) -> None:
        """Read and discard what is left (bounded), so that the client can read our answer.

        A client such as urllib sends its whole body before reading the answer: closing the
        connection on unread data resets it, and the client sees the reset, not the answer.
        """
        drained = 0
        try:
            while not self._complete and drained <= DRAIN_MAX_BYTES:
                drained += len(await self._next())
        except _ClientGone:
            pass

    def release(self) -> None:
        self._admission.release_bytes(self._held)
        self._held = 0

    async def _next(self) -> bytes:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self._complete = True
            raise _ClientGone
        self._complete = not message.get("more_body", False)
        chunk: bytes = message.get("body", b"")
        return chunk


def create_otlp_app(
    ingest: Ingest,
    metrics: CollectorMetrics,
    admission: Admission,
    *,
    max_body_bytes: int,
    token: str | None = None,
    signals: Sequence[ExportRoute] = (),
) -> OtlpHttpApp:
    """The OTLP/HTTP application (serve it with uvicorn on ``--http-port``)."""
    return OtlpHttpApp(
        ingest, metrics, admission, max_body_bytes=max_body_bytes, token=token, signals=signals
    )


def _status_body(status: int, message: str, as_json: bool) -> tuple[bytes, str]:
    rpc = status_pb2.Status(code=rpc_code(status), message=message)
    if as_json:
        return json_format.MessageToJson(rpc, indent=None).encode(), JSON
    return rpc.SerializeToString(), PROTOBUF


async def _respond(
    send: Send, content: bytes, media_type: str, status: int, extra: dict[str, str] | None
) -> None:
    headers = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(content)).encode()),
    ]
    if extra:
        headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def _decompress_and_export(
    route: ExportRoute, raw: bytes, encoding: str, limit: int, is_json: bool
) -> ExportResult:
    """Runs on the export workers: decompress, decode, hand on."""
    body = _decompress(raw, encoding, limit) if encoding in ("gzip", "deflate") else raw
    try:
        return route.export_body(body, is_json=is_json)
    except Exception as exc:
        raise _refusal(exc) from exc


def _refusal(exc: Exception) -> _Refusal:
    answer = answer_for(exc)
    if answer is INTERNAL:  # a bug downstream: log it, never leak a traceback
        logger.error("export failed", exc_info=exc)
        message = "internal error; see the collector's log"
        return _Refusal(answer.http_status, message, answer.outcome)
    refusal = _Refusal(answer.http_status, str(exc), answer.outcome)
    if answer.retryable:
        refusal.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s(exc))))
    return refusal


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request headers (names arrive lower-cased); the first of a repeated header wins."""
    out: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        out.setdefault(name, value)
    return out


def _media_type(headers: dict[bytes, bytes]) -> str:
    raw = headers.get(b"content-type", b"").decode("latin-1")
    return raw.split(";", 1)[0].strip().lower()


def _check_media_type(headers: dict[bytes, bytes]) -> bool:
    """``True`` for JSON, ``False`` for protobuf; 415 for anything else."""
    media_type = _media_type(headers)
    if media_type == JSON:
        return True
    if media_type in _PROTOBUF_TYPES:
        return False
    raise _Refusal(
        415,
        f"unsupported media type {media_type or '(none)'!r}: "
        "use application/x-protobuf or application/json",
        "unsupported_media_type",
    )


def _content_encoding(headers: dict[bytes, bytes]) -> str:
    encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
    if encoding not in ("identity", "", "gzip", "deflate"):
        raise _Refusal(415, f"unsupported content encoding {encoding!r}", "unsupported_encoding")
    return encoding


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    # wbits 16+MAX_WBITS: gzip framing; 32+: auto-detect zlib or gzip for "deflate".
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else 32 + 15)
    try:
        out = decompressor.decompress(body, limit + 1)
        if len(out) > limit or decompressor.unconsumed_tail:
            raise _too_large(limit)
        out += decompressor.flush()
    except zlib.error as exc:
        raise _Refusal(400, f"invalid {encoding} body: {exc}", "bad_request") from exc
    if not decompressor.eof:
        raise _Refusal(400, f"truncated {encoding} body", "bad_request")
    return out


def _too_large(limit: int) -> _Refusal:
    return _Refusal(413, f"request body larger than {limit} bytes", "too_large")
