"""OTLP decoding: protobuf and JSON to spans, per-span rejection, and fuzzing for crashes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from podtrace_collector.errors import DecodeError
from podtrace_collector.receive import decode
from podtrace_collector.receive.decode import (
    Decoded,
    decode_body,
    encode_response,
    extract,
    parse_json,
    parse_protobuf,
)

from tests.collector.otlp_helpers import kv, make_request, to_json

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


def _decode_pb(body: bytes) -> Decoded:
    return extract(parse_protobuf(body))


def _decode_json(body: bytes) -> Decoded:
    return extract(parse_json(body))


_T0 = 1_700_000_000_000_000_000  # the default start and end of a JSON span below
_T = _T0 + 17


def _json_span(**fields: Any) -> bytes:
    span = {"traceId": TRACE, "spanId": SPAN, "name": "op", "startTimeUnixNano": str(_T0)}
    span.update(endTimeUnixNano=str(_T0 + 1000), **fields)
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def test_protobuf_fields_and_kept_attributes() -> None:
    """Every Span field is decoded; only the kept span attributes survive."""
    request = make_request(2, spans_per_trace=2)
    root = request.resource_spans[0].scope_spans[0].spans[0]
    root.status.code = 2
    root.status.message = "boom"
    decoded = _decode_pb(request.SerializeToString())
    first, second = decoded.spans
    assert (first.trace_id, first.span_id, first.parent_id) == (root.trace_id, root.span_id, b"")
    assert second.parent_id == root.span_id
    assert (first.name, first.kind, first.status) == ("GET /items/0", 2, 2)
    assert (first.start_ns, first.end_ns) == (root.start_time_unix_nano, root.end_time_unix_nano)
    assert first.attributes == {"http.request.method": "GET", "http.route": "/items/{id}"}
    assert first.resource is second.resource
    assert first.resource.attributes["service.name"] == "cart"


def test_remembered_attributes_decode_as_on_first_sight() -> None:
    """Repeated, evicted, long and value-first attributes decode the same every time."""
    n = decode._SEEN_MAX + 50  # more distinct KeyValues than the table holds: it starts over
    request = make_request(n, spans_per_trace=1)
    for i, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        del span.attributes[:]
        span.attributes.extend(
            [kv("http.route", f"/r/{i}"), kv("http.request.method", "GET"), kv("x", i % 7)]
        )
        span.attributes.append(kv("enduser.id", "u" * 300))  # over the size remembered
    lean = parse_protobuf(request.SerializeToString())
    # The same KeyValue serialized value first (legal): decoded in full, and also remembered.
    value_first = b"\x12\x03\x0a\x01x\x0a\x0brpc.service"
    for span in lean.resource_spans[0].scope_spans[0].spans:
        span.attributes.append(value_first)
    for _ in range(2):
        spans = extract(lean).spans
        assert len(spans) == n
        for i, got in enumerate(spans):
            assert got.attributes == {
                "http.route": f"/r/{i}",
                "http.request.method": "GET",
                "enduser.id": "u" * 300,
                "rpc.service": "x",
            }
    assert len(decode._SEEN) <= decode._SEEN_MAX


def test_attribute_value_types() -> None:
    """Kept attributes keep their type; resource arrays join, bytes become hex, kvlists skip."""
    request = make_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    del span.attributes[:]
    span.attributes.extend(
        [kv("enduser.id", "u" * 300), kv("rpc.method", 7), kv("http.route", True)]
    )
    span.attributes.append(KeyValue(value=AnyValue(string_value="x"), key="rpc.service"))
    resource = request.resource_spans[0].resource.attributes
    tags = AnyValue(
        array_value=ArrayValue(values=[AnyValue(string_value="1.4"), AnyValue(int_value=2)])
    )
    resource.append(KeyValue(key="container.image.tags", value=tags))
    resource.append(KeyValue(key="b", value=AnyValue(bytes_value=b"\x01\x02")))
    resource.append(KeyValue(key="nested", value=AnyValue(kvlist_value=KeyValueList())))
    decoded = _decode_pb(request.SerializeToString())
    attrs = decoded.spans[0].attributes
    assert attrs == {
        "enduser.id": "u" * 300,
        "rpc.method": 7,
        "http.route": True,
        "rpc.service": "x",
    }
    res = decoded.spans[0].resource.attributes
    assert res["container.image.tags"] == "1.4,2" and res["b"] == "0102" and "nested" not in res


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("trace_id", b"\x01" * 15, "trace id"),
        ("trace_id", b"", "trace id"),
        ("trace_id", bytes(16), "all zeros"),
        ("span_id", b"\x01" * 7, "span id"),
        ("span_id", bytes(8), "all zeros"),
        ("parent_span_id", b"\x01" * 4, "parent"),
    ],
)
def test_invalid_span_rejected_alone(field: str, value: bytes, why: str) -> None:
    """One invalid span is rejected with a reason; its neighbours are kept."""
    request = make_request(3)
    setattr(request.resource_spans[0].scope_spans[0].spans[1], field, value)
    decoded = _decode_pb(request.SerializeToString())
    assert (decoded.total, decoded.rejected, len(decoded.spans)) == (3, 1, 2)
    assert why in decoded.error


POISON = bytes.fromhex(  # a span ending at 2**63 ns: once accepted, it broke the SQLite writer
    "0a530a1a0a180a0c736572766963652e6e616d6512080a06706f69736f6e123512330a100101010101010101"
    "0101010101010101120802020202020202022a01783002390195412bf3d4ec18410000000000000080"
)
_DAY = 86_400 * 10**9


def _now() -> int:
    return time.time_ns()


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        (0, 0, "start_time_unix_nano 0: before 2000"),
        (_T0, 0, "end_time_unix_nano 0: before 2000"),
        (decode.EARLIEST_NS - 1, _T0, "before 2000-01-01"),
        (_T0, 2**63, "end_time_unix_nano 9223372036854775808: more than a day ahead"),
        (_T0, 2**64 - 1, "more than a day ahead"),
        (2**63 - 1, 2**63 - 1, "start_time_unix_nano"),
        (_T0, -2, "more than a day ahead"),  # a fixed64 of -2: 2**64 - 2 on the wire
    ],
)
def test_out_of_range_times_rejected_alone(start: int, end: int, why: str) -> None:
    """A span stamped before 2000 or more than a day ahead is rejected with why; others kept."""
    request = make_request(3)
    span = request.resource_spans[0].scope_spans[0].spans[1]
    span.start_time_unix_nano, span.end_time_unix_nano = start, end % 2**64
    for decoded in (
        _decode_pb(request.SerializeToString()),
        decode_body(request.SerializeToString()),
    ):
        assert (decoded.total, decoded.rejected, len(decoded.spans)) == (3, 1, 2)
        assert why in decoded.error


def test_times_up_to_a_day_ahead_are_kept() -> None:
    """A client clock somewhat ahead is tolerated: up to a day after the collector's clock."""
    request = make_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.start_time_unix_nano = _now() + _DAY - 60 * 10**9
    span.end_time_unix_nano = span.start_time_unix_nano + 5
    decoded = decode_body(request.SerializeToString())
    assert decoded.rejected == 0 and decoded.spans[0].end_ns == span.end_time_unix_nano


def test_span_ending_before_it_starts_gets_no_duration() -> None:
    """A span ending before it starts (a clock stepped back) is kept, its end set to its start."""
    request = make_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.end_time_unix_nano = span.start_time_unix_nano - 10**9
    decoded = decode_body(request.SerializeToString())
    assert decoded.rejected == 0
    assert decoded.spans[0].start_ns == decoded.spans[0].end_ns == span.start_time_unix_nano


def test_poison_span_is_rejected() -> None:
    """The reproducer of the span that stopped all persistence is rejected, on both paths."""
    for decoded in (decode_body(POISON), _decode_pb(POISON)):
        assert (decoded.total, decoded.rejected, decoded.spans) == (1, 1, [])
        assert "end_time_unix_nano 9223372036854775808" in decoded.error


_any_time = st.one_of(
    st.integers(0, 2**64 - 1),
    st.integers(decode.EARLIEST_NS - 10, decode.EARLIEST_NS + 10),
    st.integers(_T0, _T0 + 10**12),
    st.sampled_from([0, 2**63 - 1, 2**63, 2**64 - 1]),
    st.integers(-(10**12), 2 * _DAY).map(lambda d: _now() + d),  # around now + a day
)


def _out_of_range(times: list[tuple[int, int]], latest: int) -> int:
    return sum(
        not (decode.EARLIEST_NS <= start <= latest and decode.EARLIEST_NS <= end <= latest)
        for start, end in times
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_any_time, _any_time), min_size=1, max_size=6))
def test_no_accepted_span_has_out_of_range_times(times: list[tuple[int, int]]) -> None:
    """Whatever the times, accepted spans lie in [2000, now + 1 day] and end at or after start;
    exactly the out-of-range spans are rejected, through the scanner and the runtime alike."""
    times = [(start % 2**64, end % 2**64) for start, end in times]
    request = make_request(len(times), spans_per_trace=1)
    for span, (start, end) in zip(
        request.resource_spans[0].scope_spans[0].spans, times, strict=True
    ):
        span.start_time_unix_nano, span.end_time_unix_nano = start, end
    body = request.SerializeToString()
    before = _now()
    decoded_both = (decode_body(body), _decode_pb(body))
    after = _now()
    for decoded in decoded_both:
        assert decoded.total == len(times) == decoded.rejected + len(decoded.spans)
        for span in decoded.spans:
            assert decode.EARLIEST_NS <= span.start_ns <= span.end_ns <= after + _DAY
        # Times within the few microseconds between the two clock reads may go either way.
        assert _out_of_range(times, after + _DAY) <= decoded.rejected
        assert decoded.rejected <= _out_of_range(times, before + _DAY)


def test_zero_parent_is_root() -> None:
    """An all-zero parent span id means no parent."""
    request = make_request(1)
    request.resource_spans[0].scope_spans[0].spans[0].parent_span_id = bytes(8)
    decoded = _decode_pb(request.SerializeToString())
    assert decoded.spans[0].parent_id == b""


def test_json_matches_protobuf() -> None:
    """The OTLP/JSON form of a request decodes to the same spans as its protobuf form."""
    request = make_request(4)
    from_pb = _decode_pb(request.SerializeToString())
    from_json = _decode_json(json.dumps(to_json(request)).encode())
    fields = (
        "trace_id",
        "span_id",
        "parent_id",
        "name",
        "kind",
        "start_ns",
        "end_ns",
        "attributes",
    )
    for a, b in zip(from_pb.spans, from_json.spans, strict=True):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]


@pytest.mark.parametrize(
    ("body", "kind", "status", "start"),
    [
        (_json_span(kind=2, status={"code": 2}, startTimeUnixNano=str(_T)), 2, 2, _T),
        (_json_span(kind="SPAN_KIND_SERVER", status={"code": "STATUS_CODE_ERROR"}), 2, 2, _T0),
        (_json_span(kind=3, startTimeUnixNano=_T, unknownField={"a": 1}), 3, 0, _T),
    ],
)
def test_json_variants(body: bytes, kind: int, status: int, start: int) -> None:
    """Integer or named enums, int64 as string or number, unknown fields ignored."""
    decoded = _decode_json(body)
    span = decoded.spans[0]
    assert (span.kind, span.status, span.start_ns) == (kind, status, start)
    assert span.trace_id.hex() == TRACE


def test_json_snake_case() -> None:
    """snake_case keys, as some clients send, are accepted."""
    span = {"trace_id": TRACE, "span_id": SPAN, "parent_span_id": "", "name": "op"}
    span.update(start_time_unix_nano=_T0, end_time_unix_nano=_T0)
    body = json.dumps({"resource_spans": [{"scope_spans": [{"spans": [span]}]}]}).encode()
    decoded = _decode_json(body)
    assert decoded.spans[0].span_id.hex() == SPAN and decoded.spans[0].parent_id == b""


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"[]",
        b"{",
        b'{"resourceSpans": "x"}',
        b'{"resourceSpans": [{"scopeSpans": 1}]}',
    ],
)
def test_json_undecodable(body: bytes) -> None:
    """Bodies that are not OTLP/JSON objects raise DecodeError."""
    with pytest.raises(DecodeError):
        _decode_json(body)


def test_empty_protobuf_is_empty_request() -> None:
    """Zero bytes are a valid empty request."""
    decoded = _decode_pb(b"")
    assert (decoded.total, decoded.spans) == (0, [])


def test_response_encoding() -> None:
    """partial_success appears only when something was rejected."""
    assert encode_response(0, "", as_json=True) == b"{}"
    assert encode_response(0, "", as_json=False) == b""
    assert json.loads(encode_response(2, "bad", as_json=True)) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "bad"}
    }


def test_lean_message_forwards_losslessly() -> None:
    """The lean parse re-serializes to the same ExportTraceServiceRequest (events, links kept)."""
    request = make_request(3)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.events.add(name="exception", time_unix_nano=5)
    span.links.add(trace_id=b"\x07" * 16, span_id=b"\x08" * 8)
    span.status.code = 2
    span.status.message = "why"
    request.resource_spans[0].schema_url = "https://opentelemetry.io/schemas/1.26.0"
    lean = parse_protobuf(request.SerializeToString())
    assert ExportTraceServiceRequest.FromString(lean.SerializeToString()) == request


def test_deep_nesting_is_a_decode_error_not_a_crash() -> None:
    """Deeply nested values: a DecodeError (or a decoded request), never a crash."""
    deep_json = b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(DecodeError):
        _decode_json(deep_json)
    inner = AnyValue(string_value="leaf").SerializeToString()
    for _ in range(500):  # AnyValue{array_value{values[AnyValue{...}]}}, built as raw bytes
        array = b"\x0a" + _varint(len(inner)) + inner
        inner = b"\x2a" + _varint(len(array)) + array
    for key in (b"deep", b"http.route"):
        pair = b"\x0a" + bytes([len(key)]) + key + b"\x12" + _varint(len(inner)) + inner
        resource = b"\x0a" + _varint(len(pair)) + pair
        resource_spans = b"\x0a" + _varint(len(resource)) + resource
        body = make_request(1).SerializeToString() + b"\x0a" + _varint(len(resource_spans))
        with pytest.raises(DecodeError):
            _decode_pb(body + resource_spans)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_protobuf_bytes(body: bytes) -> None:
    """Arbitrary bytes decode or raise DecodeError; nothing else."""
    try:
        _decode_pb(body)
    except DecodeError:
        pass


@_FUZZ
@given(st.data())
def test_fuzz_mutated_protobuf(data: st.DataObject) -> None:
    """A valid request with bytes flipped, cut or inserted decodes or raises DecodeError."""
    body = bytearray(make_request(3).SerializeToString())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(body) - 1))
        body[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    try:
        _decode_pb(bytes(body[:cut]))
    except DecodeError:
        pass


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=10,
)
_otlp_keys = st.sampled_from(
    [
        "resourceSpans",
        "scopeSpans",
        "spans",
        "traceId",
        "spanId",
        "kind",
        "status",
        "attributes",
        "resource",
        "value",
        "stringValue",
        "startTimeUnixNano",
        "links",
        "code",
        "key",
    ]
)
_otlp_like = st.recursive(
    _json_values,
    lambda children: (
        st.dictionaries(_otlp_keys, children, max_size=5) | st.lists(children, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_otlp_keys, _otlp_like, max_size=4))
def test_fuzz_json(document: dict[str, Any]) -> None:
    """OTLP-shaped JSON with arbitrary values decodes or raises DecodeError."""
    try:
        _decode_json(json.dumps(document).encode())
    except DecodeError:
        pass
