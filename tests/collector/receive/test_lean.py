"""The lean schema is wire-compatible with ExportTraceServiceRequest: parse, re-serialize, equal."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from podtrace_collector.receive.lean import LeanRequest

from tests.collector.otlp_helpers import kv

_text = st.text(max_size=12)
_value = st.one_of(
    _text, st.integers(-(2**63), 2**63 - 1), st.booleans(), st.floats(allow_nan=False)
)


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rs = request.resource_spans.add(schema_url=draw(_text))
        rs.resource.attributes.extend(
            kv(k, v) for k, v in draw(st.dictionaries(_text, _value, max_size=3)).items()
        )
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(_text)
            for _ in range(draw(st.integers(0, 3))):
                span = ss.spans.add(
                    trace_id=draw(st.binary(max_size=17)),
                    span_id=draw(st.binary(max_size=9)),
                    parent_span_id=draw(st.binary(max_size=9)),
                    name=draw(_text),
                    kind=draw(st.integers(0, 5)),
                    start_time_unix_nano=draw(st.integers(0, 2**64 - 1)),
                    end_time_unix_nano=draw(st.integers(0, 2**64 - 1)),
                    trace_state=draw(_text),
                    flags=draw(st.integers(0, 2**32 - 1)),
                )
                span.attributes.extend(
                    kv(k, v) for k, v in draw(st.dictionaries(_text, _value, max_size=3)).items()
                )
                if draw(st.booleans()):
                    span.status.CopyFrom(Status(code=draw(st.integers(0, 2)), message=draw(_text)))
                for _ in range(draw(st.integers(0, 2))):
                    span.events.add(
                        name=draw(_text), time_unix_nano=draw(st.integers(0, 2**64 - 1))
                    )
                if draw(st.booleans()):
                    span.links.append(Span.Link(trace_id=b"\x01" * 16, span_id=b"\x02" * 8))
    return request


def _without_empty_status(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    """An empty Status message and an absent one carry the same meaning (and the same spans)."""
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                if span.HasField("status") and span.status.ByteSize() == 0:
                    span.ClearField("status")
    return request


@settings(max_examples=80, deadline=None)
@given(requests())
def test_round_trip_is_lossless(request: ExportTraceServiceRequest) -> None:
    """Every field, known to the lean schema or not, survives parse and re-serialization."""
    lean = LeanRequest.FromString(request.SerializeToString())
    again = ExportTraceServiceRequest.FromString(lean.SerializeToString())
    assert again == _without_empty_status(request)
