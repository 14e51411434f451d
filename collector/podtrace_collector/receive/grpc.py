"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

The servicer subclasses opentelemetry-proto's generated ``TraceServiceServicer`` but is
registered with a raw-bytes request deserializer: the bytes go to ``Ingest.export_protobuf``,
which decodes them once (the C scanner in a plain gateway; the lean message, which is also what
gets enriched and forwarded, otherwise).  gzip-compressed requests are decompressed by
grpcio; the largest accepted message (after decompression) is ``--max-body-bytes``.

Answers: OK with ``partial_success`` when some spans were invalid; ``INVALID_ARGUMENT`` for an
undecodable request; ``UNAUTHENTICATED`` without the ``--otlp-token`` bearer token;
``RESOURCE_EXHAUSTED`` with a ``google.rpc.RetryInfo`` detail when a budget is exhausted or
admission refuses (``receive/admission.py``: too many exports in progress); ``UNAVAILABLE`` while
shutting down.  Connections that never complete the HTTP/2 handshake are closed after
``HANDSHAKE_TIMEOUT_S``, idle ones after ``IDLE_TIMEOUT_S``; at most ``max_connections`` at once.
"""

from __future__ import annotations

import hmac
import logging
import time
from concurrent import futures
from typing import Any, NoReturn

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from podtrace_collector.errors import CollectorError
from podtrace_collector.ingest.pipeline import Ingest
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.receive.admission import Admission
from podtrace_collector.receive.decode import encode_response
from podtrace_collector.receive.status import INTERNAL, UNAUTHORIZED, answer_for, retry_after_s

logger = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
TRANSPORT = "grpc"
HANDSHAKE_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 300.0


class TraceServiceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    """``Export`` over raw request bytes."""

    def __init__(self, ingest: Ingest, metrics: CollectorMetrics, *, token: str | None) -> None:
        self._ingest = ingest
        self._metrics = metrics
        self._expected = f"Bearer {token}".encode() if token else None

    def Export(self, request: bytes, context: Any) -> bytes:
        """Decode, validate and ingest one ``ExportTraceServiceRequest``."""
        started = time.perf_counter()
        try:
            return self._export(request, context)
        finally:
            self._metrics.otlp_duration.labels(TRANSPORT, "traces").observe(
                time.perf_counter() - started
            )

    def _export(self, request: bytes, context: Any) -> bytes:
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


class _AdmittingPool(futures.ThreadPoolExecutor):
    """The export workers: every RPC grpcio queues here counts as an export in progress."""

    def __init__(self, admission: Admission, max_workers: int) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="podtrace-grpc")
        self._admission = admission

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        self._admission.enter()
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._admission.leave()
            raise
        future.add_done_callback(lambda _: self._admission.leave())
        return future


class _Refuse:
    """Answers an export that admission refused, without reading its request.

    Registered as a client-streaming handler, whose request is read only on demand (a unary one
    would receive the whole message first), and run on its own small pool (grpcio honours a
    behaviour's ``experimental_thread_pool``), so that refusals never wait behind exports.
    """

    def __init__(self, admission: Admission, metrics: CollectorMetrics) -> None:
        self._admission = admission
        self._metrics = metrics
        self.experimental_thread_pool = futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="podtrace-grpc-refuse"
        )

    def __call__(self, request_iterator: Any, context: Any) -> bytes:
        exc = self._admission.busy()
        self._metrics.requests.labels(TRANSPORT, answer_for(exc).outcome).inc()
        _set_retry_info(context, str(exc), retry_after_s(exc))
        context.abort(answer_for(exc).grpc_code, str(exc))
        raise AssertionError("unreachable")  # pragma: no cover  (abort raises)


class _Admit(grpc.ServerInterceptor):  # type: ignore[misc]
    """Refuses new RPCs while as many exports as admission allows are in progress.

    Interceptors run on grpcio's serving thread before the RPC is queued for a worker, so a
    refusal never waits for a worker (unlike grpcio's ``maximum_concurrent_rpcs``, whose refusal
    carries no ``RetryInfo`` and is counted nowhere).
    """

    def __init__(self, admission: Admission, refuse: _Refuse) -> None:
        self._admission = admission
        self._refusal = grpc.stream_unary_rpc_method_handler(refuse)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        if self._admission.full():
            return self._refusal
        return continuation(handler_call_details)


class GrpcReceiver:
    """The OTLP/gRPC server with its worker pools; ``port`` is the port it bound.

    Raises:
        CollectorError: the address cannot be bound.
    """

    def __init__(
        self,
        ingest: Ingest,
        metrics: CollectorMetrics,
        admission: Admission,
        *,
        bind: str,
        port: int,
        max_body_bytes: int,
        max_connections: int,
        token: str | None = None,
        max_workers: int = 4,
    ) -> None:
        self._pool = _AdmittingPool(admission, max_workers)
        self._refuse = _Refuse(admission, metrics)
        self.server = grpc.server(
            self._pool,
            interceptors=[_Admit(admission, self._refuse)],
            options=_options(max_body_bytes, max_connections),
        )
        servicer = TraceServiceServicer(ingest, metrics, token=token)
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {"Export": grpc.unary_unary_rpc_method_handler(servicer.Export)},
        )
        self.server.add_generic_rpc_handlers((handler,))
        host = f"[{bind}]" if ":" in bind else bind
        try:
            bound = self.server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as exc:
            raise CollectorError(f"cannot bind OTLP/gRPC on {host}:{port}: {exc}") from exc
        if not bound:
            raise CollectorError(f"cannot bind OTLP/gRPC on {host}:{port}")
        self.port: int = bound

    def start(self) -> None:
        self.server.start()

    def stop(self, grace_s: float) -> None:
        """Refuse new RPCs, let those in progress finish for ``grace_s``, stop the workers."""
        self.server.stop(grace=grace_s).wait(grace_s + 1.0)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._refuse.experimental_thread_pool.shutdown(wait=False, cancel_futures=True)


def _options(max_body_bytes: int, max_connections: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", max_body_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
        # A connection that has not sent its HTTP/2 preface and settings within this is closed
        # (a silent or slow client must not hold a file descriptor).
        ("grpc.server_handshake_timeout_ms", int(HANDSHAKE_TIMEOUT_S * 1000)),
        ("grpc.max_allowed_incoming_connections", max_connections),
        # Idle connections (no RPC for this long) are closed with GOAWAY; clients reconnect.
        ("grpc.max_connection_idle_ms", int(IDLE_TIMEOUT_S * 1000)),
        # Ping quiet clients, and close connections whose peer no longer answers.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
    ]
