"""A real OTLP receiver for tests: OTLP/gRPC TraceService/Export and OTLP/HTTP POST /v1/traces.

Both servers listen on 127.0.0.1 ports picked by the OS and decode protobuf with the generated
``opentelemetry.proto`` classes, so what the tests see is exactly what the real exporter sent.

    with OtlpReceiver() as rx:
        ... export to rx.http_endpoint or rx.grpc_endpoint ...
        spans = rx.wait_for(lambda spans: len(spans) >= 2)
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
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as received, with its resource's attributes flattened to Python values."""

    resource: dict[str, Any]
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    transport: str


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


def decode(
    request: trace_service_pb2.ExportTraceServiceRequest, transport: str
) -> list[ReceivedSpan]:
    """Flatten an export request into spans."""
    out = []
    for rs in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    ReceivedSpan(
                        resource=resource,
                        name=s.name,
                        kind=s.kind,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        attributes={kv.key: _value(kv.value) for kv in s.attributes},
                        transport=transport,
                    )
                )
    return out


class OtlpReceiver:
    """Collects every span sent to it over either transport."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.http_delay_s = 0.0  # how long OTLP/HTTP takes to answer (a slow collector)
        self.http_answered_at: list[float] = []  # time.monotonic() of each OTLP/HTTP answer
        self._cond = threading.Condition()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Servicer(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _http_handler(self))
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def http_endpoint(self) -> str:
        """Base URL for OTLP/HTTP (the exporter appends /v1/traces)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        """Endpoint for OTLP/gRPC."""
        return f"http://127.0.0.1:{self.grpc_port}"

    def add(self, spans: list[ReceivedSpan]) -> None:
        with self._cond:
            self.spans.extend(spans)
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 10.0
    ) -> list[ReceivedSpan]:
        """Wait until ``predicate(spans)`` holds; return the spans (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self.spans):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [s.name for s in self.spans]
                    raise AssertionError(f"timed out waiting for spans; got {names}")
                self._cond.wait(remaining)
            return list(self.spans)

    def __enter__(self) -> OtlpReceiver:
        self._grpc.start()
        self._http_thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=None)


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        self._receiver.add(decode(request, "grpc"))
        return trace_service_pb2.ExportTraceServiceResponse()


def _http_handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            receiver.add(decode(request, "http"))
            time.sleep(receiver.http_delay_s)
            payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            receiver.http_answered_at.append(time.monotonic())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
