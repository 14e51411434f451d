"""The lean metrics and logs messages: counted, stamped and re-serialized without loss."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from podtrace_collector.errors import DecodeError
from podtrace_collector.ingest.enrich import Enricher
from podtrace_collector.receive import lean_signals
from podtrace_collector.signals import LOGS, METRICS

KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def _metrics(points: list[tuple[str, int]]) -> ExportMetricsServiceRequest:
    """One metric per (kind, number of points), spread over two resources."""
    request = ExportMetricsServiceRequest()
    for i, (kind, n) in enumerate(points):
        rm = request.resource_metrics[i % 2] if len(request.resource_metrics) > i % 2 else None
        rm = rm or request.resource_metrics.add(schema_url="https://opentelemetry.io/schemas/1")
        sm = rm.scope_metrics.add()
        sm.scope.name = "lib"
        metric = sm.metrics.add(name=f"m{i}", unit="ms", description="d")
        data = getattr(metric, kind)
        for j in range(n):
            data.data_points.add().attributes.add(key="j").value.int_value = j
    return request


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 4)), max_size=8))
def test_metrics_count_and_roundtrip(points: list[tuple[str, int]]) -> None:
    """Every metric type's data points are counted, and the lean message re-serializes to the
    same request."""
    request = _metrics(points)
    lean = lean_signals.parse(METRICS, request.SerializeToString())
    assert lean_signals.count_items(METRICS, lean) == sum(n for _, n in points)
    assert ExportMetricsServiceRequest.FromString(lean.SerializeToString()) == request


def test_logs_count_stamp_and_roundtrip() -> None:
    """Log records are counted; stamping adds the pod's attributes and changes nothing else."""
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = "cart"
    records = rl.scope_logs.add().log_records
    for i in range(3):
        records.add(severity_text="INFO", trace_id=bytes(16 * [i + 1])).body.string_value = f"r{i}"
    request.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "bare"
    lean = lean_signals.parse(LOGS, request.SerializeToString())
    assert lean_signals.count_items(LOGS, lean) == 4
    added = Enricher({"k8s.pod.name": "cart-abc-x"}).stamp(lean_signals.resources(LOGS, lean))
    assert added == 2
    stamped = ExportLogsServiceRequest.FromString(lean.SerializeToString())
    for resource_logs in stamped.resource_logs:
        keys = [kv.key for kv in resource_logs.resource.attributes]
        assert keys[-1] == "k8s.pod.name"
        resource_logs.resource.attributes.pop()
    request.resource_logs[1].resource.SetInParent()  # the group without a resource got one
    assert stamped == request


def test_json_is_converted_with_hex_ids() -> None:
    """OTLP/JSON hex ids (log records, exemplars) become the right bytes."""
    doc = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "g",
                                "gauge": {
                                    "dataPoints": [
                                        {
                                            "asInt": "5",
                                            "exemplars": [
                                                {"traceId": "0102" * 8, "spanId": "0a0b" * 4}
                                            ],
                                        }
                                    ]
                                },
                            }
                        ]
                    }
                ]
            }
        ]
    }
    body = lean_signals.json_to_protobuf(METRICS, json.dumps(doc).encode())
    request = ExportMetricsServiceRequest.FromString(body)
    exemplar = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
    assert exemplar.exemplars[0].trace_id == bytes.fromhex("0102" * 8)
    assert exemplar.exemplars[0].span_id == bytes.fromhex("0a0b" * 4)


@pytest.mark.parametrize(
    ("signal", "body", "is_json"),
    [
        (METRICS, b"\xff\xff\xff", False),
        (LOGS, b"not json", True),
        (LOGS, b"[1, 2]", True),
        (LOGS, b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}', True),
        (METRICS, b'{"resourceMetrics": "nope"}', True),
    ],
)
def test_bad_bodies_are_decode_errors(signal: object, body: bytes, is_json: bool) -> None:
    """Garbage is a DecodeError (a 400 / INVALID_ARGUMENT), never another exception."""
    with pytest.raises(DecodeError):
        if is_json:
            lean_signals.json_to_protobuf(signal, body)  # type: ignore[arg-type]
        else:
            lean_signals.parse(signal, body)  # type: ignore[arg-type]


def test_partial_success_answers() -> None:
    """Rejections are reported in each signal's own response field."""
    body = lean_signals.encode_response(LOGS, 3, "why", as_json=False)
    answer = ExportLogsServiceResponse.FromString(body)
    assert (answer.partial_success.rejected_log_records, answer.partial_success.error_message) == (
        3,
        "why",
    )
    ok = lean_signals.encode_response(METRICS, 0, "", as_json=True)
    assert json.loads(ok) == {}
    as_json = json.loads(lean_signals.encode_response(METRICS, 2, "no", as_json=True))
    assert as_json == {"partialSuccess": {"rejectedDataPoints": "2", "errorMessage": "no"}}
    json_format.Parse(ok, ExportLogsServiceResponse())  # valid for any signal
