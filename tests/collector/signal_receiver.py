"""A real OTLP metrics and logs receiver for tests, standing in for an OpenTelemetry Collector.

OTLP/gRPC ``MetricsService/Export`` and ``LogsService/Export`` on one port, OTLP/HTTP
``POST /v1/metrics`` and ``/v1/logs`` (protobuf) on another, both on 127.0.0.1.  Every request
is kept as the generated ``opentelemetry.proto`` message it decodes to, with the transport and
the raw bytes, so tests see exactly what was forwarded.

    with SignalReceiver() as rx:
        ... forward to rx.grpc_url or rx.http_url ...
        requests = rx.wait_for("metrics", lambda got: len(got) >= 1)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

REQUESTS = {
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}
RESPONSES = {
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}


@dataclass(frozen=True)
class Received:
    """One export request as it arrived."""

    signal: str
    transport: str
    body: bytes
    message: Any  # the decoded ExportMetricsServiceRequest / ExportLogsServiceRequest


def attributes(kvs: Any) -> dict[str, Any]:
    """Resource or record attributes as a plain dict."""
    return {kv.key: value(kv.value) for kv in kvs}


def value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


class SignalReceiver:
    """OTLP metrics and logs over gRPC and HTTP; ``received`` in arrival order."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self), self._grpc)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.http_port = self._http.server_address[1]

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def __enter__(self) -> SignalReceiver:
        self._grpc.start()
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._grpc.stop(0)
        self._http.shutdown()
        self._http.server_close()

    def record(self, signal: str, transport: str, body: bytes) -> None:
        message = REQUESTS[signal].FromString(body)
        with self._lock:
            self.received.append(Received(signal, transport, body, message))

    def of(self, signal: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.signal == signal]

    def wait_for(
        self, signal: str, done: Callable[[list[Received]], bool], timeout_s: float = 15.0
    ) -> list[Received]:
        """The requests of ``signal`` once ``done`` holds for them (or fail after the timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.of(signal)
            if done(got):
                return got
            time.sleep(0.02)
        raise AssertionError(f"{signal}: condition not met; received {self.of(signal)}")


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    def __init__(self, rx: SignalReceiver) -> None:
        self._rx = rx

    def Export(self, request: Any, context: Any) -> Any:
        self._rx.record("metrics", "grpc", request.SerializeToString())
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):  # type: ignore[misc]
    def __init__(self, rx: SignalReceiver) -> None:
        self._rx = rx

    def Export(self, request: Any, context: Any) -> Any:
        self._rx.record("logs", "grpc", request.SerializeToString())
        return logs_service_pb2.ExportLogsServiceResponse()


def _handler(rx: SignalReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            signal = {"/v1/metrics": "metrics", "/v1/logs": "logs"}.get(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if signal is None:
                self.send_response(404)
                self.end_headers()
                return
            rx.record(signal, "http", body)
            answer = RESPONSES[signal]().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    return Handler
