"""A lean, wire-compatible view of ``ExportTraceServiceRequest`` for the ingest hot path.

Parsing the full OTLP message and reading it through the protobuf runtime costs several
microseconds per span, mostly in creating a Python object for every attribute's ``KeyValue`` and
``AnyValue``.  The lean schema below is derived from opentelemetry-proto's own descriptors (same
field numbers, so the same bytes), but keeps only what ingest reads, and declares

* ``Span.attributes`` and ``Resource.attributes`` as ``repeated bytes`` (each element is one
  serialized ``KeyValue``: iterating bytes is cheap, and only kept keys are decoded), and
* ``Span.status`` as ``bytes`` (usually empty or two bytes), ``Span.kind`` as ``int32``.

Every other field (events, links, trace state, scope, schema URLs...) is kept by the protobuf
runtime as unknown fields and written back by ``SerializeToString``, so a lean message forwards
losslessly: the bytes it produces parse as the same ``ExportTraceServiceRequest``.
"""

from __future__ import annotations

from collections.abc import MutableSequence, Sequence
from typing import Any, Protocol

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "podtrace.lean.v1"

# message -> (source descriptor, {field: (type override or None, message type or None)})
_SCHEMA: dict[str, tuple[Any, dict[str, tuple[int | None, str | None]]]] = {
    "Span": (
        trace_pb2.Span.DESCRIPTOR,
        {
            "trace_id": (None, None),
            "span_id": (None, None),
            "parent_span_id": (None, None),
            "name": (None, None),
            "kind": (_F.TYPE_INT32, None),
            "start_time_unix_nano": (None, None),
            "end_time_unix_nano": (None, None),
            "attributes": (_F.TYPE_BYTES, None),
            "status": (_F.TYPE_BYTES, None),
        },
    ),
    "ScopeSpans": (trace_pb2.ScopeSpans.DESCRIPTOR, {"spans": (None, "Span")}),
    "Resource": (resource_pb2.Resource.DESCRIPTOR, {"attributes": (_F.TYPE_BYTES, None)}),
    "ResourceSpans": (
        trace_pb2.ResourceSpans.DESCRIPTOR,
        {"resource": (None, "Resource"), "scope_spans": (None, "ScopeSpans")},
    ),
}


def _build() -> descriptor_pool.DescriptorPool:
    file = descriptor_pb2.FileDescriptorProto(
        name="podtrace_lean_trace.proto", package=_PACKAGE, syntax="proto3"
    )
    for name, (source, fields) in _SCHEMA.items():
        message = file.message_type.add(name=name)
        for field_name, (type_override, message_type) in fields.items():
            original = source.fields_by_name[field_name]
            repeated = original.is_repeated
            field = message.field.add(
                name=field_name,
                number=original.number,
                type=type_override or original.type,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if message_type and type_override is None:
                field.type_name = f".{_PACKAGE}.{message_type}"
    request = file.message_type.add(name="ExportTraceServiceRequest")
    request.field.add(
        name="resource_spans",
        number=1,
        type=_F.TYPE_MESSAGE,
        label=_F.LABEL_REPEATED,
        type_name=f".{_PACKAGE}.ResourceSpans",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool


_POOL = _build()


def _cls(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


class LeanSpan(Protocol):
    """What ingest reads of one span (the lean ``Span``)."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    name: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    status: bytes  # a serialized ``Status``
    attributes: Sequence[bytes]  # serialized ``KeyValue`` each


class LeanScopeSpans(Protocol):
    spans: Sequence[LeanSpan]


class LeanResource(Protocol):
    attributes: MutableSequence[bytes]  # the sidecar's enricher appends to it


class LeanResourceSpans(Protocol):
    resource: LeanResource
    scope_spans: Sequence[LeanScopeSpans]


class OtlpRequest(Protocol):
    """A parsed ``ExportTraceServiceRequest`` in its lean form, as ingest and forwarding see it.

    The message class is built at run time from descriptors, so this protocol is what the type
    checker knows of it.
    """

    resource_spans: Sequence[LeanResourceSpans]

    def SerializeToString(self) -> bytes: ...


LeanRequest: Any = _cls("ExportTraceServiceRequest")
"""The message class: ``LeanRequest()`` is an empty ``OtlpRequest`` to ``ParseFromString``."""
