"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

The servicer subclasses opentelemetry-proto's generated ``TraceServiceServicer`` but is
registered with a raw-bytes request deserializer: the bytes go to ``Ingest.export_protobuf``,
which decodes them once (the C scanner in a plain gateway; the lean message, which is also what
gets enriched and forwarded, otherwise).  gzip-compressed requests are decompressed by
grpcio; the largest accepted message (after decompression) is ``--max-body-bytes``.

Answers: OK with ``partial_success`` when some spans were invalid; ``INVALID_ARGUMENT`` for an
undecodable request; ``UNAUTHENTICATED`` without the ``--otlp-token`` bearer token;
``RESOURCE_EXHAUSTED`` with a ``google.rpc.RetryInfo`` detail when a budget is exhausted;
``UNAVAILABLE`` while shutting down.
"""

from __future__ import annotations

import hmac
import logging
from concurrent import futures
from typing import Any, NoReturn

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from podtrace_collector.errors import CollectorError
from podtrace_collector.ingest.pipeline import Ingest
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.receive.decode import encode_response
from podtrace_collector.receive.status import INTERNAL, UNAUTHORIZED, answer_for, retry_after_s

logger = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
TRANSPORT = "grpc"


class TraceServiceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    """``Export`` over raw request bytes."""

    def __init__(self, ingest: Ingest, metrics: CollectorMetrics, *, token: str | None) -> None:
        self._ingest = ingest
        self._metrics = metrics
        self._expected = f"Bearer {token}".encode() if token else None

    def Export(self, request: bytes, context: Any) -> bytes:
        """Decode, validate and ingest one ``ExportTraceServiceRequest``."""
        if self._expected is not None and not self._authorized(context):
            self._metrics.requests.labels(TRANSPORT, UNAUTHORIZED.outcome).inc()
            context.abort(UNAUTHORIZED.grpc_code, "missing or bad bearer token")
        try:
            result = self._ingest.export_protobuf(request)
        except Exception as exc:
            self._refuse(context, exc)
        self._metrics.requests.labels(TRANSPORT, "partial" if result.rejected else "ok").inc()
        return encode_response(result.rejected, result.message, as_json=False)

    def _refuse(self, context: Any, exc: Exception) -> NoReturn:
        answer = answer_for(exc)
        self._metrics.requests.labels(TRANSPORT, answer.outcome).inc()
        if answer is INTERNAL:  # a bug downstream: log it, never leak a traceback
            logger.error("export failed", exc_info=exc)
            context.abort(answer.grpc_code, "internal error; see the collector's log")
        if answer.retryable and answer.grpc_code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            _set_retry_info(context, str(exc), retry_after_s(exc))
        context.abort(answer.grpc_code, str(exc))
        raise AssertionError("unreachable")  # pragma: no cover  (abort raises)

    def _authorized(self, context: Any) -> bool:
        for key, value in context.invocation_metadata():
            if key == "authorization" and self._expected is not None:
                got = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(got, self._expected)
        return False


def _set_retry_info(context: Any, message: str, retry_after_s: float) -> None:
    """Attach ``google.rpc.RetryInfo`` in ``grpc-status-details-bin`` (OTLP: retry after it)."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(retry_after_s * 1e9))
    rpc = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message)
    rpc.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    context.set_trailing_metadata((("grpc-status-details-bin", rpc.SerializeToString()),))


def create_server(
    ingest: Ingest,
    metrics: CollectorMetrics,
    *,
    bind: str,
    port: int,
    max_body_bytes: int,
    token: str | None = None,
    max_workers: int = 4,
) -> tuple[grpc.Server, int]:
    """A started-ready (not yet started) gRPC server and the port it bound.

    Raises:
        CollectorError: the address cannot be bound.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="podtrace-grpc"),
        options=[
            ("grpc.max_receive_message_length", max_body_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=max_workers * 8,
    )
    servicer = TraceServiceServicer(ingest, metrics, token=token)
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {"Export": grpc.unary_unary_rpc_method_handler(servicer.Export)},
    )
    server.add_generic_rpc_handlers((handler,))
    host = f"[{bind}]" if ":" in bind else bind
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:
        raise CollectorError(f"cannot bind OTLP/gRPC on {host}:{port}: {exc}") from exc
    if not bound:
        raise CollectorError(f"cannot bind OTLP/gRPC on {host}:{port}")
    return server, bound
