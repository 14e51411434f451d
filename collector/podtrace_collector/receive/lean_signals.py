"""Lean, wire-compatible views of OTLP metrics and logs export requests, and their answers.

The sidecar stamps resources and forwards metrics and logs without reading them, so, as for
traces (``receive/lean.py``), the messages parsed are derived from opentelemetry-proto's own
descriptors but keep only what is read: each resource's attributes (``repeated bytes``, one
serialized ``KeyValue`` each, which ``ingest/enrich.py`` appends to) and, to count the items, the
data points of every metric type and the log records (``repeated bytes``: counted, never
decoded).  Every other field stays an unknown field that ``SerializeToString`` writes back, so a
lean request re-serializes to the same request.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from podtrace_collector.errors import DecodeError
from podtrace_collector.receive.decode import parse_json_message, parse_message
from podtrace_collector.receive.lean import LeanResource
from podtrace_collector.signals import LOGS, METRICS, Signal

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "podtrace.lean.signals.v1"
_DATA = ("gauge", "sum", "histogram", "exponential_histogram", "summary")

# message -> (source descriptor, {field: lean message type, or None: the source's own type,
# and a message-typed field without a lean type becomes opaque ``bytes``})
_SCHEMA: dict[str, tuple[Any, dict[str, str | None]]] = {
    "Resource": (resource_pb2.Resource.DESCRIPTOR, {"attributes": None}),
    "Points": (metrics_pb2.Gauge.DESCRIPTOR, {"data_points": None}),
    "Metric": (metrics_pb2.Metric.DESCRIPTOR, dict.fromkeys(_DATA, "Points")),
    "ScopeMetrics": (metrics_pb2.ScopeMetrics.DESCRIPTOR, {"metrics": "Metric"}),
    "ResourceMetrics": (
        metrics_pb2.ResourceMetrics.DESCRIPTOR,
        {"resource": "Resource", "scope_metrics": "ScopeMetrics"},
    ),
    "ScopeLogs": (logs_pb2.ScopeLogs.DESCRIPTOR, {"log_records": None}),
    "ResourceLogs": (
        logs_pb2.ResourceLogs.DESCRIPTOR,
        {"resource": "Resource", "scope_logs": "ScopeLogs"},
    ),
    "ExportMetricsServiceRequest": (
        metrics_service_pb2.ExportMetricsServiceRequest.DESCRIPTOR,
        {"resource_metrics": "ResourceMetrics"},
    ),
    "ExportLogsServiceRequest": (
        logs_service_pb2.ExportLogsServiceRequest.DESCRIPTOR,
        {"resource_logs": "ResourceLogs"},
    ),
}


def _build() -> descriptor_pool.DescriptorPool:
    file = descriptor_pb2.FileDescriptorProto(
        name="podtrace_lean_signals.proto", package=_PACKAGE, syntax="proto3"
    )
    for name, (source, fields) in _SCHEMA.items():
        message = file.message_type.add(name=name)
        for field_name, lean_type in fields.items():
            original = source.fields_by_name[field_name]
            field = message.field.add(
                name=field_name,
                number=original.number,
                type=original.type,
                label=_F.LABEL_REPEATED if original.is_repeated else _F.LABEL_OPTIONAL,
            )
            if lean_type is not None:
                field.type_name = f".{_PACKAGE}.{lean_type}"
            elif original.type == _F.TYPE_MESSAGE:
                field.type = _F.TYPE_BYTES
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool


_POOL = _build()


def _cls(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


_LEAN = {
    METRICS.name: _cls("ExportMetricsServiceRequest"),
    LOGS.name: _cls("ExportLogsServiceRequest"),
}
_FULL = {
    METRICS.name: metrics_service_pb2.ExportMetricsServiceRequest,
    LOGS.name: logs_service_pb2.ExportLogsServiceRequest,
}
_RESPONSES = {
    METRICS.name: (metrics_service_pb2.ExportMetricsServiceResponse, "rejected_data_points"),
    LOGS.name: (logs_service_pb2.ExportLogsServiceResponse, "rejected_log_records"),
}
_ID_KEYS = frozenset({"traceId", "spanId", "trace_id", "span_id"})


def parse(signal: Signal, body: bytes) -> Any:
    """Parse a protobuf metrics or logs export request into its lean message.

    Raises:
        DecodeError: the bytes are not a valid message.
    """
    return parse_message(_LEAN[signal.name](), body)


def json_to_protobuf(signal: Signal, body: bytes) -> bytes:
    """An OTLP/JSON metrics or logs export request as protobuf bytes.

    OTLP/JSON writes trace and span ids (log records, exemplars) in hex, where protobuf's JSON
    mapping expects base64; they are converted first.

    Raises:
        DecodeError: the bytes are not JSON, or not of the OTLP shape.
    """
    full = parse_json_message(_FULL[signal.name](), body, _hex_ids)
    return bytes(full.SerializeToString())


def count_items(signal: Signal, request: Any) -> int:
    """Data points (every metric type) or log records in a lean request."""
    if signal is LOGS:
        return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    return sum(
        len(getattr(metric, kind).data_points)
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for kind in _DATA
    )


def resources(signal: Signal, request: Any) -> Iterator[LeanResource]:
    """Every resource of a lean request (for the sidecar to stamp)."""
    groups = request.resource_logs if signal is LOGS else request.resource_metrics
    for group in groups:
        yield group.resource


def encode_response(signal: Signal, rejected: int, message: str, *, as_json: bool) -> bytes:
    """The export response; ``partial_success`` only when something was rejected."""
    cls, field = _RESPONSES[signal.name]
    response = cls()
    if rejected:
        setattr(response.partial_success, field, rejected)
        response.partial_success.error_message = message
    if as_json:
        return json_format.MessageToJson(response, indent=None).encode()
    return bytes(response.SerializeToString())


def _hex_ids(obj: object) -> None:
    """Rewrite hex ``traceId``/``spanId`` values anywhere in the document into base64."""
    if isinstance(obj, list):
        for item in obj:
            _hex_ids(item)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if key in _ID_KEYS and isinstance(value, str):
                obj[key] = _hex_to_base64(value)
            else:
                _hex_ids(value)


def _hex_to_base64(text: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(text)).decode()
    except ValueError:
        raise DecodeError(f"invalid OTLP/JSON: id {text[:64]!r} is not hex") from None
