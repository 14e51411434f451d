"""OTLP/HTTP receiver: ``POST /v1/traces`` (FastAPI on uvicorn), protobuf or JSON, gzip.

Per the OTLP/HTTP specification: the body is ``application/x-protobuf`` (also
``application/protobuf``) or ``application/json`` (media type matched case-insensitively,
parameters such as ``charset`` ignored), optionally ``Content-Encoding: gzip`` (or ``deflate``).
Answers are in the request's encoding: ``200`` with an ``ExportTraceServiceResponse`` whose
``partial_success`` is set only when spans were rejected; errors carry a ``google.rpc.Status``:
``400`` undecodable, ``401`` missing/bad ``--otlp-token``, ``404`` other paths, ``405`` wrong
method, ``413`` body over ``--max-body-bytes`` (checked while reading, and again while
decompressing, so neither a large body nor a zip bomb is ever held whole), ``415`` unsupported
media type or content encoding, ``429`` with ``Retry-After`` when a budget is exhausted, ``503``
with ``Retry-After`` while shutting down.
"""

from __future__ import annotations

import hmac
import logging
import math
import zlib

from fastapi import FastAPI, Request, Response
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2  # type: ignore[import-untyped]
from starlette.exceptions import HTTPException as StarletteHTTPException

from podtrace_collector.errors import DecodeError, Overloaded, TooLarge
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.receive.decode import encode_response, parse_json, parse_protobuf
from podtrace_collector.receive.ingest import Ingest, ShuttingDown

logger = logging.getLogger(__name__)

TRANSPORT = "http"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    500: code_pb2.INTERNAL,
    503: code_pb2.UNAVAILABLE,
}


class _Refusal(Exception):
    def __init__(self, status: int, message: str, outcome: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.headers: dict[str, str] = {}


def create_otlp_app(
    ingest: Ingest,
    metrics: CollectorMetrics,
    *,
    max_body_bytes: int,
    token: str | None = None,
) -> FastAPI:
    """The OTLP/HTTP application (serve it with uvicorn on ``--http-port``)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    expected = f"Bearer {token}".encode() if token else None

    @app.post("/v1/traces")
    async def export(request: Request) -> Response:
        as_json = _media_type(request) == JSON
        try:
            _check_token(request, expected)
            is_json = _check_media_type(request)
            body = await _read_body(request, max_body_bytes)
            result = _export(ingest, body, is_json=is_json)
        except _Refusal as refusal:
            metrics.requests.labels(TRANSPORT, refusal.outcome).inc()
            return status_response(refusal.status, str(refusal), as_json, refusal.headers)
        metrics.requests.labels(TRANSPORT, "partial" if result[0] else "ok").inc()
        content = encode_response(result[0], result[1], as_json=is_json)
        return Response(content, media_type=JSON if is_json else PROTOBUF)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        outcome = "method_not_allowed" if exc.status_code == 405 else "not_found"
        metrics.requests.labels(TRANSPORT, outcome).inc()
        headers = dict(exc.headers or {})
        as_json = _media_type(request) == JSON
        return status_response(exc.status_code, str(exc.detail), as_json, headers)

    return app


def status_response(
    status: int, message: str, as_json: bool, headers: dict[str, str] | None = None
) -> Response:
    """An error answer carrying a ``google.rpc.Status`` in the request's encoding."""
    rpc = status_pb2.Status(code=_GRPC_CODES.get(status, code_pb2.UNKNOWN), message=message)
    if as_json:
        content = json_format.MessageToJson(rpc, indent=None).encode()
        return Response(content, status_code=status, media_type=JSON, headers=headers)
    return Response(
        rpc.SerializeToString(), status_code=status, media_type=PROTOBUF, headers=headers
    )


def _export(ingest: Ingest, body: bytes, *, is_json: bool) -> tuple[int, str]:
    try:
        message = parse_json(body) if is_json else parse_protobuf(body)
        result = ingest.export(message, body=None if is_json else body)
    except DecodeError as exc:
        raise _Refusal(400, str(exc), "bad_request") from exc
    except ShuttingDown as exc:
        raise _retry_refusal(503, str(exc), exc.retry_after_s, "unavailable") from exc
    except Overloaded as exc:
        raise _retry_refusal(429, str(exc), exc.retry_after_s, "overloaded") from exc
    except TooLarge as exc:
        raise _Refusal(413, str(exc), "too_large") from exc
    except Exception as exc:  # a bug downstream: log it, answer a Status, never a traceback
        logger.exception("export failed")
        raise _Refusal(500, "internal error; see the collector's log", "error") from exc
    return result.rejected, result.message


def _retry_refusal(status: int, message: str, retry_after_s: float, outcome: str) -> _Refusal:
    refusal = _Refusal(status, message, outcome)
    refusal.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return refusal


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _check_token(request: Request, expected: bytes | None) -> None:
    if expected is None:
        return
    got = request.headers.get("authorization", "").encode()
    if not hmac.compare_digest(got, expected):
        refusal = _Refusal(401, "missing or bad bearer token", "unauthorized")
        refusal.headers["WWW-Authenticate"] = "Bearer"
        raise refusal


def _check_media_type(request: Request) -> bool:
    """``True`` for JSON, ``False`` for protobuf; 415 for anything else."""
    media_type = _media_type(request)
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


async def _read_body(request: Request, limit: int) -> bytes:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "deflate"):
        raise _Refusal(415, f"unsupported content encoding {encoding!r}", "unsupported_encoding")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    if encoding in ("gzip", "deflate"):
        return _decompress(body, encoding, limit)
    return body


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
