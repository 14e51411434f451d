"""The one table from ingest errors to OTLP answers, shared by the gRPC and HTTP receivers.

Per the OTLP specification: a retryable refusal is HTTP 429/503 with ``Retry-After`` and gRPC
``RESOURCE_EXHAUSTED`` with ``RetryInfo`` / ``UNAVAILABLE``; a request that can never succeed is
HTTP 400/413 and gRPC ``INVALID_ARGUMENT`` / ``RESOURCE_EXHAUSTED`` *without* ``RetryInfo``
(OTLP clients then drop it rather than retry it forever).  Anything unexpected is logged by the
receiver and answered as an internal error, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import code_pb2  # type: ignore[import-untyped]

from podtrace_collector.errors import (
    Busy,
    DecodeError,
    IngestError,
    Overloaded,
    ShuttingDown,
    TooLarge,
)


@dataclass(frozen=True, slots=True)
class Answer:
    """How one kind of refusal is answered on each transport, and counted."""

    http_status: int
    grpc_code: grpc.StatusCode
    outcome: str  # the ``outcome`` label of ``podtrace_otlp_requests_total``
    retryable: bool = False  # Retry-After / RetryInfo attached


# Most specific first: ``ShuttingDown`` and ``Busy`` are ``Overloaded``.
_TABLE: tuple[tuple[type[IngestError], Answer], ...] = (
    (ShuttingDown, Answer(503, grpc.StatusCode.UNAVAILABLE, "unavailable", retryable=True)),
    (Busy, Answer(429, grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", retryable=True)),
    (Overloaded, Answer(429, grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded", retryable=True)),
    (TooLarge, Answer(413, grpc.StatusCode.RESOURCE_EXHAUSTED, "too_large")),
    (DecodeError, Answer(400, grpc.StatusCode.INVALID_ARGUMENT, "bad_request")),
)
INTERNAL = Answer(500, grpc.StatusCode.INTERNAL, "error")
UNAUTHORIZED = Answer(401, grpc.StatusCode.UNAUTHENTICATED, "unauthorized")


def answer_for(exc: BaseException) -> Answer:
    """The answer to a refusal; ``INTERNAL`` for anything that is not an ``IngestError``."""
    for cls, answer in _TABLE:
        if isinstance(exc, cls):
            return answer
    return INTERNAL


def retry_after_s(exc: BaseException) -> float:
    """The delay a retryable refusal asks for."""
    return exc.retry_after_s if isinstance(exc, Overloaded) else 1.0


# The ``google.rpc.Status`` code carried in the body of an OTLP/HTTP error, by HTTP status.
_RPC_CODES = {
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


def rpc_code(http_status: int) -> int:
    """The ``google.rpc.Code`` of an OTLP/HTTP error answer."""
    return int(_RPC_CODES.get(http_status, code_pb2.UNKNOWN))
