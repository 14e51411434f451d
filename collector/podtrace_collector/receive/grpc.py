"""OTLP/gRPC receiver: ``Export`` of ``TraceService``, ``MetricsService`` and ``LogsService``.

The server is ``grpc.aio`` on an event loop of its own thread, registered with a raw-bytes
request deserializer: the bytes go to the signal's ``ExportRoute`` (``ingest/signals.py``) on a
pool of worker threads; for traces ``Ingest.export_protobuf``, which decodes them once (the C
scanner in a plain gateway; the lean message, which is also what gets enriched and forwarded,
otherwise).  Receiving a request holds no thread: a client that
sends its message slowly, or never, costs a stream, not a worker (with grpcio's threaded server
six such clients stopped every export).  gzip-compressed requests are decompressed by grpcio;
the largest accepted message (after decompression) is ``--max-body-bytes``.

Answers: OK with ``partial_success`` when some spans were invalid; ``INVALID_ARGUMENT`` for an
undecodable request; ``UNAUTHENTICATED`` without the ``--otlp-token`` bearer token;
``RESOURCE_EXHAUSTED`` with a ``google.rpc.RetryInfo`` detail when a budget is exhausted or
admission refuses (``receive/admission.py``: too many exports in progress, checked on the event
loop before any work is queued); ``UNAVAILABLE`` while shutting down.  Connections that never
complete the HTTP/2 handshake are closed after ``HANDSHAKE_TIMEOUT_S``, idle ones after
``IDLE_TIMEOUT_S``; at most ``max_connections`` at once.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from functools import partial
from typing import Any, NoReturn

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]

from podtrace_collector.errors import CollectorError
from podtrace_collector.ingest.pipeline import ExportResult, Ingest
from podtrace_collector.ingest.signals import ExportRoute, TraceRoute
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.receive.admission import Admission
from podtrace_collector.receive.status import INTERNAL, UNAUTHORIZED, answer_for, retry_after_s
from podtrace_collector.signals import TRACES

logger = logging.getLogger(__name__)

SERVICE = TRACES.grpc_service
TRANSPORT = "grpc"
HANDSHAKE_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 300.0
MAX_STREAMS_PER_CONNECTION = 100


class ExportServicer:
    """One signal's ``Export`` over raw request bytes, as a coroutine of the receiver's loop."""

    def __init__(
        self,
        route: ExportRoute,
        metrics: CollectorMetrics,
        admission: Admission,
        pool: futures.Executor,
        *,
        token: str | None,
    ) -> None:
        self._route = route
        self._metrics = metrics
        self._admission = admission
        self._pool = pool
        self._expected = f"Bearer {token}".encode() if token else None

    @property
    def service(self) -> str:
        """The gRPC service this servicer's ``Export`` belongs to."""
        return self._route.signal.grpc_service

    async def Export(self, request: bytes, context: Any) -> bytes:
        """Admit, then decode, validate and take one export request of the signal."""
        started = time.perf_counter()
        try:
            return await self._export(request, context)
        finally:
            self._metrics.otlp_duration.labels(TRANSPORT, self._route.signal.name).observe(
                time.perf_counter() - started
            )

    async def _export(self, request: bytes, context: Any) -> bytes:
        if self._expected is not None and not self._authorized(context):
            self._metrics.requests.labels(TRANSPORT, UNAUTHORIZED.outcome).inc()
            await context.abort(UNAUTHORIZED.grpc_code, "missing or bad bearer token")
        if not self._admission.try_enter():
            await self._refuse(context, self._admission.busy())
        try:
            loop = asyncio.get_running_loop()
            work = partial(self._route.export_body, request, is_json=False)
            result: ExportResult = await loop.run_in_executor(self._pool, work)
        except Exception as exc:
            await self._refuse(context, exc)
        finally:
            self._admission.leave()
        self._metrics.requests.labels(TRANSPORT, "partial" if result.rejected else "ok").inc()
        return self._route.encode(result, as_json=False)

    async def _refuse(self, context: Any, exc: Exception) -> NoReturn:
        answer = answer_for(exc)
        self._metrics.requests.labels(TRANSPORT, answer.outcome).inc()
        if answer is INTERNAL:  # a bug downstream: log it, never leak a traceback
            logger.error("export failed", exc_info=exc)
            await context.abort(answer.grpc_code, "internal error; see the collector's log")
        trailers: tuple[tuple[str, bytes], ...] = ()
        if answer.retryable and answer.grpc_code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            trailers = (_retry_info(str(exc), retry_after_s(exc)),)
        await context.abort(answer.grpc_code, str(exc), trailing_metadata=trailers)
        raise AssertionError("unreachable")  # pragma: no cover  (abort raises)

    def _authorized(self, context: Any) -> bool:
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and self._expected is not None:
                got = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(got, self._expected)
        return False


def _retry_info(message: str, retry_after_s: float) -> tuple[str, bytes]:
    """``google.rpc.RetryInfo`` in ``grpc-status-details-bin`` (OTLP: retry after it)."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(retry_after_s * 1e9))
    rpc = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message)
    rpc.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return ("grpc-status-details-bin", rpc.SerializeToString())


class GrpcReceiver:
    """The OTLP/gRPC server, its event loop thread and its worker pool.

    ``port`` is the port bound.  ``signals`` are the routes of the signals besides traces
    (metrics, logs); a service without one answers ``UNIMPLEMENTED``.

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
        signals: Sequence[ExportRoute] = (),
    ) -> None:
        self._pool = futures.ThreadPoolExecutor(max_workers, thread_name_prefix="podtrace-grpc")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="podtrace-grpc-loop", daemon=True
        )
        self._thread.start()
        servicers = [
            ExportServicer(route, metrics, admission, self._pool, token=token)
            for route in (TraceRoute(ingest), *signals)
        ]
        host = f"[{bind}]" if ":" in bind else bind
        try:
            self.server, self.port = self._call(
                _create(servicers, f"{host}:{port}", _options(max_body_bytes, max_connections))
            )
        except Exception:
            self._close_loop()
            raise

    def start(self) -> None:
        self._call(self.server.start())

    def stop(self, grace_s: float) -> None:
        """Refuse new RPCs, let those in progress finish for ``grace_s``, stop the workers."""
        try:
            self._call(self.server.stop(grace_s), timeout_s=grace_s + 2.0)
        finally:
            self._close_loop()

    def _call(self, coroutine: Any, timeout_s: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _create(
    servicers: Sequence[ExportServicer], address: str, options: list[tuple[str, Any]]
) -> tuple[Any, int]:
    """Build the server on the receiver's loop (``grpc.aio`` binds a server to its loop)."""
    server = grpc.aio.server(options=options)
    handlers = tuple(
        grpc.method_handlers_generic_handler(
            servicer.service, {"Export": grpc.unary_unary_rpc_method_handler(servicer.Export)}
        )
        for servicer in servicers
    )
    server.add_generic_rpc_handlers(handlers)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise CollectorError(f"cannot bind OTLP/gRPC on {address}: {exc}") from exc
    if not bound:
        raise CollectorError(f"cannot bind OTLP/gRPC on {address}")
    return server, bound


def _options(max_body_bytes: int, max_connections: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", max_body_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
        # A connection that has not sent its HTTP/2 preface and settings within this is closed
        # (a silent or slow client must not hold a file descriptor).
        ("grpc.server_handshake_timeout_ms", int(HANDSHAKE_TIMEOUT_S * 1000)),
        ("grpc.max_allowed_incoming_connections", max_connections),
        ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
        # Idle connections (no RPC for this long) are closed with GOAWAY; clients reconnect.
        ("grpc.max_connection_idle_ms", int(IDLE_TIMEOUT_S * 1000)),
        # Ping quiet clients, and close connections whose peer no longer answers.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
    ]
