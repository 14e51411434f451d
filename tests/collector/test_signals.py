"""Metrics and logs through a real sidecar: the real SDK exporters in, a real receiver out.

The OpenTelemetry Python SDK's OTLP metric and log exporters (gRPC and HTTP) send to a running
sidecar, which stamps the pod's attributes on every resource and forwards each request as it is
to a real OTLP receiver (``signal_receiver.py``) over gRPC or HTTP.  Without a destination the
sidecar answers with a partial success that rejects the items, and counts them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetrics,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetrics,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from podtrace_collector.collector import Collector

from tests.collector.otlp_helpers import metric, running, test_config
from tests.collector.signal_receiver import SignalReceiver, attributes

POD = {
    "k8s.namespace.name": "shop",
    "k8s.pod.name": "cart-7d9f8c6b5-x7k2p",
    "k8s.deployment.name": "cart",
}
APP = {"service.name": "cart", "service.version": "1.4.0"}


@pytest.fixture
def receiver() -> Iterator[SignalReceiver]:
    with SignalReceiver() as rx:
        yield rx


def _sidecar(**config: Any) -> Any:
    """A running sidecar with the pod's attributes (its trace gateway is never reached)."""
    cfg = test_config(mode="sidecar", forward=("127.0.0.1:9",), **config)
    return running(cfg, pod_attributes=POD)


def _metrics_exporter(sidecar: Collector, protocol: str) -> Any:
    if protocol == "grpc":
        return GrpcMetrics(endpoint=f"127.0.0.1:{sidecar.grpc_port}", insecure=True, timeout=5)
    return HttpMetrics(endpoint=f"http://127.0.0.1:{sidecar.http_port}/v1/metrics", timeout=5)


def _logs_exporter(sidecar: Collector, protocol: str) -> Any:
    if protocol == "grpc":
        return GrpcLogs(endpoint=f"127.0.0.1:{sidecar.grpc_port}", insecure=True, timeout=5)
    return HttpLogs(endpoint=f"http://127.0.0.1:{sidecar.http_port}/v1/logs", timeout=5)


def _send_metrics(exporter: Any) -> None:
    """An app's counter and histogram, exported once by the SDK."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create(APP), metric_readers=[reader])
    meter = provider.get_meter("shop.cart")
    meter.create_counter("orders").add(3, {"route": "/checkout"})
    meter.create_histogram("charge.duration", unit="ms").record(12.5)
    provider.shutdown()  # one last collection, exported once


def _send_logs(exporter: Any) -> str:
    """An app's warning, emitted inside a span; returns the span's trace id (hex)."""
    provider = LoggerProvider(resource=Resource.create(APP))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("shop.cart")
    with TracerProvider().get_tracer("t").start_as_current_span("charge") as span:
        logger.emit(
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            body="payment declined for order 42",
            attributes={"order.id": 42},
        )
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()  # exports what is batched
    return trace_id


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("upstream", ["grpc", "http"])
def test_metrics_are_stamped_and_forwarded(
    receiver: SignalReceiver, protocol: str, upstream: str
) -> None:
    """The SDK's metrics reach the receiver with the pod's attributes added, points intact."""
    url = receiver.grpc_url if upstream == "grpc" else receiver.http_url
    with _sidecar(forward_metrics=(url,)) as sidecar:
        _send_metrics(_metrics_exporter(sidecar, protocol))
        (got,) = receiver.wait_for("metrics", lambda r: len(r) >= 1)
        text = httpx.get(f"http://127.0.0.1:{sidecar.api_port}/metrics").text
    assert got.transport == upstream
    (rm,) = got.message.resource_metrics
    assert attributes(rm.resource.attributes).items() >= {**APP, **POD}.items()
    by_name = {m.name: m for sm in rm.scope_metrics for m in sm.metrics}
    (point,) = by_name["orders"].sum.data_points
    assert point.as_int == 3 and attributes(point.attributes) == {"route": "/checkout"}
    assert by_name["charge.duration"].histogram.data_points[0].sum == 12.5
    assert by_name["charge.duration"].unit == "ms"
    assert metric(text, "podtrace_signal_items_received_total", signal="metrics") == 2
    assert metric(text, "podtrace_signal_items_accepted_total", signal="metrics") == 2
    sent = "podtrace_forward_items_sent_total"
    target = url if upstream == "grpc" else f"{url}/v1/metrics"
    assert metric(text, sent, signal="metrics", target=target) == 2


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_logs_are_stamped_and_forwarded(receiver: SignalReceiver, protocol: str) -> None:
    """The SDK's log records reach the receiver with the pod's attributes, trace ids intact."""
    with _sidecar(forward_logs=(receiver.http_url,)) as sidecar:
        trace_id = _send_logs(_logs_exporter(sidecar, protocol))
        (got,) = receiver.wait_for("logs", lambda r: len(r) >= 1)
    (rl,) = got.message.resource_logs
    assert attributes(rl.resource.attributes).items() >= {**APP, **POD}.items()
    (record,) = [r for sl in rl.scope_logs for r in sl.log_records]
    assert record.body.string_value == "payment declined for order 42"
    assert record.severity_text == "WARN" and attributes(record.attributes) == {"order.id": 42}
    assert record.trace_id.hex() == trace_id


def test_a_request_with_the_pods_attributes_is_forwarded_byte_for_byte(
    receiver: SignalReceiver,
) -> None:
    """Nothing to stamp: the forwarded bytes are the bytes the app sent."""
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    for key, value in POD.items():
        rm.resource.attributes.add(key=key).value.string_value = value
    rm.resource.attributes.add(key="service.name").value.string_value = "cart"
    m = rm.scope_metrics.add().metrics.add(name="queue.depth")
    m.gauge.data_points.add(as_int=7, time_unix_nano=1)
    body = request.SerializeToString()
    with _sidecar(forward_metrics=(receiver.grpc_url,)) as sidecar:
        answer = httpx.post(
            f"http://127.0.0.1:{sidecar.http_port}/v1/metrics",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert answer.status_code == 200
        assert not ExportMetricsServiceResponse.FromString(answer.content).HasField(
            "partial_success"
        )
        (got,) = receiver.wait_for("metrics", lambda r: len(r) >= 1)
    assert got.body == body


def test_otlp_json_logs_keep_their_hex_ids(receiver: SignalReceiver) -> None:
    """OTLP/JSON logs (hex trace and span ids) are forwarded as the same records in protobuf."""
    document = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]
                },
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": "1700000000000000000",
                                "body": {"stringValue": "hello"},
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                            }
                        ]
                    }
                ],
            }
        ]
    }
    with _sidecar(forward_logs=(receiver.grpc_url,)) as sidecar:
        answer = httpx.post(
            f"http://127.0.0.1:{sidecar.http_port}/v1/logs",
            content=json.dumps(document),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 200 and answer.json() == {}
        (got,) = receiver.wait_for("logs", lambda r: len(r) >= 1)
    (record,) = got.message.resource_logs[0].scope_logs[0].log_records
    assert record.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert record.span_id.hex() == "eee19b7ec3c1b174"
    assert record.body.string_value == "hello"
    assert (
        attributes(got.message.resource_logs[0].resource.attributes)["k8s.pod.name"]
        == (POD["k8s.pod.name"])
    )


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_without_a_destination_items_are_rejected_and_counted(protocol: str) -> None:
    """No --forward-metrics: the SDK's export succeeds as a partial success rejecting every
    point (no retry), and the points count as dropped for want of a destination."""
    with _sidecar() as sidecar:
        _send_metrics(_metrics_exporter(sidecar, protocol))
        api = f"http://127.0.0.1:{sidecar.api_port}"
        text = httpx.get(f"{api}/metrics").text
        raw = httpx.post(
            f"http://127.0.0.1:{sidecar.http_port}/v1/logs",
            content=json.dumps(
                {
                    "resourceLogs": [
                        {"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}}]}]}
                    ]
                }
            ),
            headers={"Content-Type": "application/json"},
        )
    dropped = "podtrace_signal_items_dropped_total"
    assert metric(text, dropped, signal="metrics", reason="no_destination") == 2
    assert metric(text, "podtrace_otlp_requests_total", transport=protocol, outcome="partial") == 1
    assert raw.status_code == 200
    partial = raw.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert "--forward-logs" in partial["errorMessage"]


def test_a_full_queue_is_refused_retryably() -> None:
    """An upstream that is down fills the queue; the next request gets 429 + Retry-After (the
    SDK keeps it), nothing accepted is dropped."""
    config = {"forward_metrics": ("http://127.0.0.1:9",), "forward_queue_spans": 3}
    request = ExportMetricsServiceRequest()
    m = request.resource_metrics.add().scope_metrics.add().metrics.add(name="g")
    for i in range(2):
        m.gauge.data_points.add(as_int=i)
    body = request.SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    with _sidecar(**config) as sidecar:
        url = f"http://127.0.0.1:{sidecar.http_port}/v1/metrics"
        assert httpx.post(url, content=body, headers=headers).status_code == 200
        refused = httpx.post(url, content=body, headers=headers)
        text = httpx.get(f"http://127.0.0.1:{sidecar.api_port}/metrics").text
    assert refused.status_code == 429 and refused.headers["retry-after"]
    assert metric(text, "podtrace_signal_items_refused_total", signal="metrics") == 2
    assert metric(text, "podtrace_signal_items_accepted_total", signal="metrics") == 2
