"""Choosing the exporter: protocol, endpoint, timeout and OTEL_TRACES_EXPORTER."""

from __future__ import annotations

import socket
import time

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExportResult

from podtrace._exporters import hasten_for_exit, make_exporter, resolve_protocol, resolve_timeout_s
from tests.library.otlp_receiver import OtlpReceiver


def test_protocol_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argument > OTEL_EXPORTER_OTLP_TRACES_PROTOCOL > OTEL_EXPORTER_OTLP_PROTOCOL > http."""
    assert resolve_protocol(None) == "http/protobuf"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert resolve_protocol(None) == "grpc"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    assert resolve_protocol(None) == "http/protobuf"
    assert resolve_protocol("grpc") == "grpc"


def test_unsupported_protocol_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    """http/json (not in the Python SDK) falls back to http/protobuf with a warning."""
    assert resolve_protocol("http/json") == "http/protobuf"
    assert "unsupported" in caplog.text


def test_timeout_default_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """2 s unless given or set by a standard variable (then the exporter reads it)."""
    assert resolve_timeout_s(None) == 2.0
    assert resolve_timeout_s(0.5) == 0.5
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "7")
    assert resolve_timeout_s(None) is None


def test_default_endpoints() -> None:
    """Default export goes to the sidecar on localhost: 4318 (http) or 4317 (grpc)."""
    http = make_exporter(None, None, None)
    assert isinstance(http, HttpExporter)
    assert http._endpoint == "http://localhost:4318/v1/traces"
    grpc = make_exporter(None, "grpc", None)
    assert isinstance(grpc, GrpcExporter)
    assert grpc._endpoint == "localhost:4317"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "kind"),
    [("none", type(None)), ("console", ConsoleSpanExporter), ("otlp", HttpExporter)],
)
def test_traces_exporter_variable(monkeypatch: pytest.MonkeyPatch, value: str, kind: type) -> None:
    """OTEL_TRACES_EXPORTER selects none, an entry-point exporter, or OTLP."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    assert isinstance(make_exporter(None, None, None), kind)


def test_unknown_exporter_falls_back_to_otlp(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown exporter name is logged and OTLP used."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkinish")
    assert isinstance(make_exporter(None, None, None), HttpExporter)
    assert "zipkinish" in caplog.text


def test_grpc_host_port_is_plaintext(receiver: OtlpReceiver) -> None:
    """endpoint="host:port" for gRPC reaches a plaintext receiver (the sidecar)."""
    exporter = make_exporter(f"127.0.0.1:{receiver.grpc_port}", "grpc", 2.0)
    assert exporter is not None
    span = TracerProvider().get_tracer("t").start_span("plain")
    span.end()
    assert exporter.export([span]) is SpanExportResult.SUCCESS  # type: ignore[list-item]
    exporter.shutdown()
    assert receiver.wait_for(lambda s: len(s) == 1)[0].transport == "grpc"


def _one_span() -> list[object]:
    span = TracerProvider().get_tracer("t").start_span("s")
    span.end()
    return [span]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_hasten_for_exit_ends_retries(protocol: str, dead_port: int) -> None:
    """At exit a refused connection fails at once; the exporter would retry for 10 s otherwise."""
    exporter = make_exporter(f"http://127.0.0.1:{dead_port}", protocol, 10.0)
    assert exporter is not None and hasten_for_exit(exporter, 5.0)
    start = time.monotonic()
    assert exporter.export(_one_span()) is SpanExportResult.FAILURE  # type: ignore[arg-type]
    assert time.monotonic() - start < 0.7  # a first retry backoff alone is 0.8 s or more


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_hasten_for_exit_shortens_the_request_timeout(protocol: str) -> None:
    """A collector that never answers costs the exit timeout, not the configured 10 s."""
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(4)
        port = black_hole.getsockname()[1]
        exporter = make_exporter(f"http://127.0.0.1:{port}", protocol, 10.0)
        assert exporter is not None and hasten_for_exit(exporter, 0.3)
        start = time.monotonic()
        assert exporter.export(_one_span()) is SpanExportResult.FAILURE  # type: ignore[arg-type]
        assert time.monotonic() - start < 2.0


def test_hasten_for_exit_leaves_other_exporters_alone() -> None:
    """An exporter without the OTLP exporters' retry loop is reported as not hastened."""
    assert not hasten_for_exit(ConsoleSpanExporter(), 1.0)
