"""The C scanner (receive/_wire.c) against the protobuf runtime: same spans, or it declines."""

from __future__ import annotations

import shlex
import shutil
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from podtrace_collector.errors import DecodeError
from podtrace_collector.receive import decode
from podtrace_collector.receive.decode import Decoded, decode_body, extract, parse_protobuf

from tests.collector.otlp_helpers import make_request

wire = decode._wire


def _can_compile() -> bool:
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")[0]
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    return shutil.which(compiler) is not None and headers.exists()


def _summary(decoded: Decoded) -> tuple[Any, ...]:
    spans = [
        (
            s.trace_id,
            s.span_id,
            s.parent_id,
            s.name,
            s.kind,
            s.start_ns,
            s.end_ns,
            s.status,
            s.attributes,
            s.resource.attributes,
        )
        for s in decoded.spans
    ]
    return spans, decoded.total, decoded.rejected, decoded.error


def _by_runtime(body: bytes) -> tuple[Any, ...] | str:
    try:
        return _summary(extract(parse_protobuf(body)))
    except DecodeError:
        return "DecodeError"


def _by_decode_body(body: bytes) -> tuple[Any, ...] | str:
    try:
        return _summary(decode_body(body))
    except DecodeError:
        return "DecodeError"


def _by_scanner(body: bytes) -> tuple[Any, ...] | str | None:
    """What decoding through the scanner gives; ``None`` when the scanner declines."""
    assert wire is not None
    scanned = wire.scan(body)
    if scanned is None:
        return None
    try:
        return _summary(decode._extract(scanned))
    except DecodeError:  # a bad resource KeyValue: found after scanning, as after parsing
        return "DecodeError"


def test_the_scanner_is_built_and_used_where_a_compiler_exists() -> None:
    """With a C compiler and Python headers, the install built the scanner and ingest uses it."""
    if not _can_compile():
        pytest.skip("no C compiler or Python headers here: ingest runs on the protobuf runtime")
    assert wire is not None, "the C scanner was not built: see the warning from `make install`"
    assert decode.SCANNER


needs_scanner = pytest.mark.skipif(wire is None, reason="the C scanner is not built here")

_ids = st.one_of(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=8, max_size=8),
    st.sampled_from([b"", bytes(16), bytes(8), b"\x01"]),
    st.binary(max_size=20),
)
_values = st.one_of(
    st.text(max_size=30).map(lambda v: AnyValue(string_value=v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: AnyValue(int_value=v)),
    st.booleans().map(lambda v: AnyValue(bool_value=v)),
    st.floats(allow_nan=False).map(lambda v: AnyValue(double_value=v)),
    st.binary(max_size=8).map(lambda v: AnyValue(bytes_value=v)),
    st.lists(st.text(max_size=5), max_size=3).map(
        lambda vs: AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in vs]))
    ),
)
_keys = st.one_of(
    st.sampled_from(["http.route", "http.request.method", "http.response.status_code", "url.path"]),
    st.sampled_from(["rpc.service", "enduser.id", "error.type", "messaging.system"]),
    st.text(max_size=12),
)
# Any fixed64, or a time ingest accepts (so that accepted spans are compared, not only rejections).
_times = st.one_of(
    st.integers(0, 2**64 - 1), st.integers(decode.EARLIEST_NS, 1_900_000_000 * 10**9)
)
_attributes = st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), _keys, _values), max_size=5)


@st.composite
def _span(draw: st.DrawFn) -> ProtoSpan:
    span = ProtoSpan(
        trace_id=draw(_ids),
        span_id=draw(_ids),
        parent_span_id=draw(_ids),
        name=draw(st.text(max_size=20)),
        kind=draw(st.integers(-(2**31), 2**31 - 1)),
        start_time_unix_nano=draw(_times),
        end_time_unix_nano=draw(_times),
        trace_state=draw(st.text(max_size=5)),
        flags=draw(st.integers(0, 2**32 - 1)),
    )
    span.attributes.extend(draw(_attributes))
    if draw(st.booleans()):
        span.status.code = draw(st.integers(0, 2))
        span.status.message = draw(st.text(max_size=10))
    for _ in range(draw(st.integers(0, 2))):
        event = span.events.add(name=draw(st.text(max_size=5)), time_unix_nano=3)
        event.attributes.extend(draw(_attributes))
    if draw(st.booleans()):
        span.links.add(trace_id=draw(_ids), span_id=draw(_ids))
    return span


@st.composite
def _requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        resource_spans = request.resource_spans.add(schema_url=draw(st.text(max_size=5)))
        resource_spans.resource.attributes.extend(draw(_attributes))
        resource_spans.resource.dropped_attributes_count = draw(st.integers(0, 3))
        for _ in range(draw(st.integers(0, 3))):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = draw(st.text(max_size=8))
            scope_spans.spans.extend(draw(st.lists(_span(), max_size=4)))
    return request


@needs_scanner
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_every_serialized_request_scans_as_the_runtime_reads_it(
    request: ExportTraceServiceRequest,
) -> None:
    """Whatever the SDK serializes, the scanner handles and reads exactly as the runtime does."""
    body = request.SerializeToString()
    by_scanner = _by_scanner(body)
    assert by_scanner is not None
    assert by_scanner == _by_runtime(body)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    body = bytearray(draw(_requests()).SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "append"]))
        at = draw(st.integers(0, len(body)))
        if action == "flip" and body:
            at = min(at, len(body) - 1)
            body[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del body[at : at + draw(st.integers(1, 8))]
        elif action == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=6))
        else:  # concatenated messages are one merged message, to protobuf
            body += draw(_requests()).SerializeToString()
    return bytes(body)


@needs_scanner
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_mutated(), st.binary(max_size=200)))
def test_damaged_bytes_scan_the_same_or_are_declined(body: bytes) -> None:
    """On damaged bytes the scanner agrees with the runtime or declines, never differs."""
    by_runtime = _by_runtime(body)
    by_scanner = _by_scanner(body)
    if by_scanner is not None:
        assert by_scanner == by_runtime
    assert _by_decode_body(body) == by_runtime


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    tag = (number << 3) | wire_type
    if wire_type == 2:
        return _varint(tag) + _varint(len(payload)) + payload
    return _varint(tag) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _wrap(span: bytes, resource: bytes = b"") -> bytes:
    scope_spans = _field(2, 2, span)
    resource_spans = (_field(1, 2, resource) if resource else b"") + _field(2, 2, scope_spans)
    return _field(1, 2, resource_spans)


_T = (1_700_000_000 * 10**9).to_bytes(8, "little")  # a valid time: the span is accepted
_IDS = _field(1, 2, b"\x01" * 16) + _field(2, 2, b"\x02" * 8) + _field(7, 1, _T) + _field(8, 1, _T)


@needs_scanner
@pytest.mark.parametrize(
    ("span", "handled"),
    [
        (_IDS + _field(5, 2, b"a") + _field(5, 2, b"b"), True),  # repeated name: last wins
        (_IDS + _field(1, 2, b"\x03" * 16), True),  # repeated trace id: last wins
        (_IDS + _field(6, 0, _varint(2**64 - 1)), True),  # kind -1 as a ten-byte varint
        (_IDS + _field(6, 0, _varint(2**40 + 3)), True),  # kind: int32 keeps the low 32 bits
        (_IDS + _field(15, 2, b"\x18\x02") + _field(15, 2, b""), True),  # repeated status
        (_IDS + _field(77, 5, b"abcd") + _field(78, 1, b"12345678"), True),  # unknown fields
        (_IDS + _field(6, 2, b"\x02"), False),  # kind with the wrong wire type
        (_IDS + _field(7, 0, b"\x05"), False),  # start time with the wrong wire type
        (_IDS + _field(5, 2, b"\xff\xfe"), False),  # name not UTF-8
        (_IDS + _field(9, 3, b""), False),  # a group
        (_IDS + b"\x00\x01", False),  # field number 0
        (_IDS + _field(6, 0, b"\xff" * 10 + b"\x01"), False),  # varint over ten bytes
    ],
)
def test_unusual_encodings(span: bytes, handled: bool) -> None:
    """Legal oddities are read as the runtime reads them; anything else is left to it."""
    body = _wrap(span)
    assert (_by_scanner(body) is not None) == handled
    assert _by_decode_body(body) == _by_runtime(body)


@needs_scanner
def test_a_repeated_resource_is_merged() -> None:
    """A ResourceSpans with two resource fields gets the attributes of both, as in protobuf."""
    first = _field(
        1, 2, KeyValue(key="service.name", value=AnyValue(string_value="a")).SerializeToString()
    )
    second = _field(
        1, 2, KeyValue(key="k8s.pod.name", value=AnyValue(string_value="p")).SerializeToString()
    )
    scope_spans = _field(2, 2, _IDS)
    body = _field(1, 2, _field(1, 2, first) + _field(2, 2, scope_spans) + _field(1, 2, second))
    scanned = _by_scanner(body)
    assert isinstance(scanned, tuple) and scanned == _by_runtime(body)
    assert scanned[0][0][9] == {"service.name": "a", "k8s.pod.name": "p"}


@needs_scanner
def test_the_benchmark_request_scans_like_the_runtime() -> None:
    """A realistic many-span request reads the same both ways."""
    body = make_request(300, spans_per_trace=6).SerializeToString()
    assert _by_scanner(body) == _by_runtime(body)
    assert wire is not None and wire.scan(bytearray(body)) is not None  # any buffer will do
