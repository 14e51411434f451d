"""The Collector process: real OpenTelemetry SDK exporters in-process and from a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from podtrace_collector.collector import Collector
from podtrace_collector.errors import CollectorError

from tests.collector.otlp_helpers import RecordingSink, running, test_config


def _export(exporter: SpanExporter, n_traces: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for _ in range(n_traces):
        with tracer.start_as_current_span("POST /checkout"), tracer.start_as_current_span("call"):
            pass
    provider.shutdown()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_sdk_exporters_in_process(protocol: str) -> None:
    """The SDK's OTLP exporters deliver every span, with their resource and kind."""
    sink = RecordingSink()
    with running(sink=sink) as collector:
        if protocol == "grpc":
            exporter: SpanExporter = GrpcExporter(
                endpoint=f"127.0.0.1:{collector.grpc_port}", insecure=True
            )
        else:
            exporter = HttpExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/traces")
        _export(exporter, 5)
    assert len(sink.spans) == 10
    assert {s.resource.attributes["service.name"] for s in sink.spans} == {"checkout"}
    assert {s.kind for s in sink.spans} == {1}


def test_sdk_exporters_from_a_subprocess() -> None:
    """Another process using the SDK's grpc and http exporters: every span arrives."""
    sink = RecordingSink()
    with running(sink=sink) as collector:
        script = textwrap.dedent(
            f"""
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as G
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as H
            p = TracerProvider()
            g = G(endpoint="127.0.0.1:{collector.grpc_port}", insecure=True)
            h = H(endpoint="http://127.0.0.1:{collector.http_port}/v1/traces")
            p.add_span_processor(BatchSpanProcessor(g))
            p.add_span_processor(BatchSpanProcessor(h))
            t = p.get_tracer("sub")
            for i in range(20):
                with t.start_as_current_span("op"):
                    pass
            p.shutdown()
            """
        )
        done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
    # Both exporters send the same span ids: the collector hands each on once.
    assert len(sink.spans) == 20
    assert len(set(sink.ids())) == 20


def test_ports_health_and_restart() -> None:
    """Port 0 binds free ports; /readyz is ready while running; start/stop works twice."""
    for _ in range(2):
        collector = Collector(test_config())
        assert not collector.ready
        collector.start()
        try:
            ports = {collector.grpc_port, collector.http_port, collector.api_port}
            assert len(ports) == 3 and 0 not in ports
            api = f"http://127.0.0.1:{collector.api_port}"
            assert httpx.get(f"{api}/readyz").status_code == 200
        finally:
            collector.stop(1.0)
        assert not collector.ready


def test_stop_closes_the_sink_and_refuses_new_work() -> None:
    """stop() marks ingest as stopping, closes the sink and the API."""
    sink = RecordingSink()
    collector = Collector(test_config(), sink=sink)
    collector.start()
    api_port = collector.api_port
    started = time.monotonic()
    collector.stop(2.0)
    assert time.monotonic() - started < 5
    assert sink.closed and collector.ingest.stopping
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=1)


def test_a_failed_start_stops_what_it_started() -> None:
    """The API port taken: start() raises, and the gRPC and OTLP/HTTP servers it had started
    are stopped (their ports refuse), the sink is closed, and none of its threads is left
    (grpcio's own process-wide poller, started once per process, is not the collector's)."""
    before = {t.ident for t in threading.enumerate()}
    with running() as other:
        sink = RecordingSink()
        collector = Collector(test_config(api_port=other.api_port), sink=sink)
        with pytest.raises(CollectorError, match="Address already in use"):
            collector.start()
    assert collector.grpc_port and collector.http_port  # both had been bound
    for port in (collector.grpc_port, collector.http_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert sink.closed
    left = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and t.name.startswith("podtrace-")
    ]
    assert not left, left
