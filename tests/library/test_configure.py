"""podtrace.init(): the global provider, its resource, exporter choice, counters, fork."""

from __future__ import annotations

import logging
import os

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import podtrace
from podtrace._configure import build_resource
from tests.library.otlp_receiver import OtlpReceiver


def _span(name: str = "work") -> None:
    with trace.get_tracer("test").start_as_current_span(name):
        pass


def test_init_sets_the_global_provider_once(caplog: pytest.LogCaptureFixture) -> None:
    """The first call configures the global provider; the second warns and returns it."""
    first = podtrace.init(instrument=False, exporter=InMemorySpanExporter())
    assert isinstance(first, TracerProvider)
    assert trace.get_tracer_provider() is first
    with caplog.at_level(logging.WARNING, logger="podtrace"):
        second = podtrace.init("other", instrument=False)
    assert second is first
    assert "already called" in caplog.text


def test_unknown_option_is_a_clear_error() -> None:
    """A misspelt option raises TypeError naming it, before anything is configured."""
    with pytest.raises(TypeError, match="export_timeout"):
        podtrace.init(instrument=False, export_timeout=1)
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


def test_spans_carry_the_pod_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans are exported with the detected Kubernetes attributes on their resource."""
    monkeypatch.setenv("POD_NAME", "cart-7d9f8c6b5-x2k4p")
    monkeypatch.setenv("POD_NAMESPACE", "shop")
    exporter = InMemorySpanExporter()
    provider = podtrace.init(instrument=False, exporter=exporter)
    _span()
    provider.force_flush()
    (span,) = exporter.get_finished_spans()
    attrs = span.resource.attributes
    assert attrs["k8s.deployment.name"] == "cart"
    assert attrs["service.name"] == "cart"
    assert attrs["service.instance.id"] == f"shop/cart-7d9f8c6b5-x2k4p/{os.getpid()}"
    assert attrs["telemetry.sdk.name"] == "opentelemetry"


def test_resource_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    """argument > OTEL_SERVICE_NAME > OTEL_RESOURCE_ATTRIBUTES > resource_attributes > detection."""
    monkeypatch.setenv("POD_NAME", "cart-7d9f8c6b5-x2k4p")
    monkeypatch.setenv("POD_NAMESPACE", "shop")
    assert build_resource().attributes["service.name"] == "cart"
    assert build_resource(extra={"service.name": "x"}).attributes["service.name"] == "x"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=attr,k8s.namespace.name=ns2")
    resource = build_resource(extra={"service.name": "x"})
    assert resource.attributes["service.name"] == "attr"
    assert resource.attributes["k8s.namespace.name"] == "ns2"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "env")
    assert build_resource().attributes["service.name"] == "env"
    assert build_resource("arg").attributes["service.name"] == "arg"


def test_no_kubernetes_keeps_sdk_defaults() -> None:
    """Outside a pod: the SDK's unknown_service name and random instance id."""
    attrs = build_resource().attributes
    assert str(attrs["service.name"]).startswith("unknown_service")
    assert len(str(attrs["service.instance.id"])) == 36  # a UUID


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_exports_over_otlp(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    """Both OTLP protocols reach a real receiver; counters record the export."""
    monkeypatch.setenv("POD_NAME", "web-0")
    monkeypatch.setenv("POD_NAMESPACE", "shop")
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
    provider = podtrace.init("web", endpoint=endpoint, protocol=protocol, instrument=False)
    _span("exported")
    provider.force_flush()
    (span,) = receiver.wait_for(lambda spans: len(spans) >= 1)
    assert span.transport == protocol.split("/")[0]
    assert span.resource["k8s.pod.name"] == "web-0"
    assert span.resource["service.name"] == "web"
    assert podtrace.stats().exported_spans == 1


def test_protocol_and_endpoint_from_standard_variables(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL and OTEL_EXPORTER_OTLP_ENDPOINT are honoured."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint)
    provider = podtrace.init(instrument=False)
    _span()
    provider.force_flush()
    assert receiver.wait_for(lambda spans: len(spans) >= 1)[0].transport == "grpc"


def test_failed_export_is_counted_not_raised(dead_port: int) -> None:
    """Nothing listening: the span is counted as dropped and nothing raises."""
    provider = podtrace.init(
        instrument=False, endpoint=f"http://127.0.0.1:{dead_port}", export_timeout_s=0.2
    )
    _span()
    provider.force_flush()
    stats = podtrace.stats()
    assert (stats.dropped_spans, stats.failed_exports, stats.exported_spans) == (1, 1, 0)


def test_traces_exporter_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_TRACES_EXPORTER=none: a working provider that exports nothing."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    provider = podtrace.init(instrument=False)
    _span()
    assert provider.force_flush()
    assert podtrace.stats() == podtrace.ExportStats()


def test_sdk_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SDK_DISABLED=true: spans are non-recording, nothing is exported."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    podtrace.init(instrument=False)
    with trace.get_tracer("t").start_as_current_span("s") as span:
        assert not span.is_recording()


def test_existing_foreign_provider_is_kept(caplog: pytest.LogCaptureFixture) -> None:
    """An SDK provider configured elsewhere is left in place, with a warning."""
    theirs = TracerProvider()
    trace.set_tracer_provider(theirs)
    with caplog.at_level(logging.WARNING, logger="podtrace"):
        assert podtrace.init(instrument=False) is theirs
    assert "already configured" in caplog.text


def test_forked_child_gets_its_own_instance_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """After fork: instance id with the child's pid, counters from zero."""
    monkeypatch.setenv("POD_NAME", "web-0")
    monkeypatch.setenv("POD_NAMESPACE", "shop")
    provider = podtrace.init(instrument=False, exporter=InMemorySpanExporter())
    _span()
    provider.force_flush()
    assert podtrace.stats().exported_spans == 1
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report and leave without running pytest's teardown
        resource = trace.get_tracer_provider().resource  # type: ignore[attr-defined]
        value = f"{resource.attributes['service.instance.id']} {podtrace.stats().exported_spans}"
        os.write(write_fd, value.encode())
        os._exit(0)
    os.close(write_fd)
    child_value = os.read(read_fd, 200).decode()
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert provider.resource.attributes["service.instance.id"] == f"shop/web-0/{os.getpid()}"
    assert child_value == f"shop/web-0/{pid} 0"  # and the child counts its own spans


def test_batch_processor_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_BSP_* variables reach the batch processor podtrace creates."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "700")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "123")
    provider = podtrace.init(instrument=False, exporter=InMemorySpanExporter())
    (processor,) = provider._active_span_processor._span_processors  # type: ignore[attr-defined]
    batch = processor._batch_processor
    assert (batch._max_queue_size, batch._schedule_delay_millis) == (700, 123)


def test_inconsistent_batch_variables_do_not_break_the_app(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A queue smaller than the batch (the SDK raises on it) falls back to defaults, logged."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "7")
    exporter = InMemorySpanExporter()
    provider = podtrace.init(instrument=False, exporter=exporter)
    _span()
    provider.force_flush()
    assert len(exporter.get_finished_spans()) == 1
    assert "invalid OTEL_BSP_" in caplog.text


def test_unusable_exporter_settings_do_not_break_the_app(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exporter that cannot be built leaves a working provider and a warning."""
    # The gRPC exporter raises ValueError on a malformed timeout variable.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon")
    provider = podtrace.init(instrument=False, protocol="grpc")
    _span()
    provider.force_flush()
    assert isinstance(provider, TracerProvider)
    assert "no span exporter" in caplog.text
