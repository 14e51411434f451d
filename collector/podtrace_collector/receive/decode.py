"""OTLP trace requests (protobuf or JSON) → ``Span`` objects, with per-span validation.

This is the ingest hot path, with two ways in.  ``decode_body`` (a gateway that neither enriches
nor forwards) reads protobuf bytes with the optional C scanner (``_wire.c``): it walks the
canonical wire encoding SDKs produce straight into span records, and declines anything else
(returns ``None``), which then goes the second way.  Otherwise protobuf bodies are parsed by the
protobuf runtime (upb, in C) into the lean, wire-compatible view of ``ExportTraceServiceRequest``
from ``receive.lean`` (also what is enriched and forwarded), and ``extract`` walks it.  Either
way one ``Resource`` is built per ``ResourceSpans`` and one ``Span`` per valid span, decoding
only the ``SPAN_KEYS_KEPT`` attributes, with the same results and errors.  Invalid spans (ids of
the wrong length, all-zero ids, a start or end time outside ``EARLIEST_NS`` .. now +
``MAX_AHEAD_NS``) are rejected one by one: the rest is accepted and the count goes into
``partial_success``.  A span that ends before it starts is kept with its end set to its start.

OTLP/JSON follows the OTLP specification (hex ids, lowerCamelCase keys, enums as integers, 64-bit
integers as strings, unknown fields ignored) and also accepts what real clients send and the
OpenTelemetry Collector accepts: snake_case keys, enum names, 64-bit integers as numbers.  It is
parsed with opentelemetry-proto's generated classes and converted to the same lean message.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from podtrace_collector.errors import DecodeError
from podtrace_collector.model import SPAN_KEYS_KEPT, AttrValue, Resource, Span
from podtrace_collector.receive.lean import LeanRequest, OtlpRequest

try:  # the optional C scanner (hatch_build.py compiles it; see decode_body)
    from podtrace_collector.receive import _wire
except ImportError:  # pragma: no cover  (no compiler where it was installed)
    _wire = None  # type: ignore[assignment]

SCANNER = _wire is not None and not os.environ.get("PODTRACE_NO_SCANNER")
"""Whether ``decode_body`` uses the C scanner (``PODTRACE_NO_SCANNER=1`` turns it off)."""

__all__ = [
    "Decoded",
    "LeanRequest",
    "decode_body",
    "encode_response",
    "extract",
    "parse_json",
    "parse_json_message",
    "parse_message",
    "parse_protobuf",
    "resource_attributes",
]

EARLIEST_NS = 946_684_800 * 10**9
"""Spans starting or ending before 2000-01-01T00:00:00Z are rejected (unset or broken clocks)."""
MAX_AHEAD_NS = 86_400 * 10**9
"""Spans starting or ending more than a day after the collector's clock are rejected."""

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
# Invalid hex in OTLP/JSON becomes this 1-byte id, which fails the length check, so that the span
# alone is rejected (partial success) rather than the whole request.
_BAD_ID_B64 = base64.b64encode(b"\xff").decode()
_ID_KEYS = frozenset({"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"})
# The serialized prefix of a KeyValue whose key is kept: field 1 (key), length, key bytes.
_KEPT_PREFIXES = {b"\x0a" + bytes([len(k.encode())]) + k.encode(): k for k in SPAN_KEYS_KEPT}
assert all(len(k.encode()) < 128 for k in SPAN_KEYS_KEPT)  # one-byte length in the prefix
# Serialized span KeyValue -> what it contributes: ``(kept key, value)``, or ``None`` (dropped).
# Attributes repeat exactly across spans (``http.response.status_code=200``, a route, a host),
# so a hit replaces prefix slicing, matching and value decoding with one dict lookup.  Bounded:
# only short KeyValues are remembered, and the table starts over when full (distinct values such
# as URL paths just cycle through it).  Shared by receiver threads: single dict operations are
# atomic, and an entry is a pure function of its key, so a race can only cost a recomputation.
_SEEN: dict[bytes, tuple[str, AttrValue] | None] = {}
_SEEN_MAX = 4096
_SEEN_MAX_BYTES = 256
_UNSEEN: Any = object()


class Decoded:
    """The result of decoding one request.

    Attributes:
        spans: the valid spans, in request order.
        total: how many spans the request held.
        rejected: how many were invalid.
        error: why the first rejected span was rejected ("" when none was).
    """

    __slots__ = ("error", "rejected", "spans", "total")

    def __init__(self, spans: list[Span], total: int, rejected: int, error: str) -> None:
        self.spans = spans
        self.total = total
        self.rejected = rejected
        self.error = error


def parse_protobuf(body: bytes) -> OtlpRequest:
    """Parse protobuf ``ExportTraceServiceRequest`` bytes into a ``LeanRequest``.

    Raises:
        DecodeError: the bytes are not a valid message.
    """
    parsed: OtlpRequest = parse_message(LeanRequest(), body)
    return parsed


def parse_json(body: bytes) -> OtlpRequest:
    """Parse an OTLP/JSON ``ExportTraceServiceRequest`` into a ``LeanRequest``.

    Raises:
        DecodeError: the bytes are not JSON, or not of the OTLP shape.
    """
    full = parse_json_message(ExportTraceServiceRequest(), body, _hex_ids_to_base64)
    return parse_protobuf(full.SerializeToString())


M = TypeVar("M", bound=Message)


def parse_message(message: M, body: bytes) -> M:
    """Parse protobuf bytes into ``message`` (any OTLP request, lean or full).

    Raises:
        DecodeError: the bytes are not a valid message.
    """
    try:
        message.ParseFromString(body)
    except (ProtobufDecodeError, RecursionError, ValueError) as exc:
        raise DecodeError(f"invalid OTLP protobuf: {exc}") from exc
    return message


def parse_json_message(message: M, body: bytes, rewrite_ids: Callable[[dict[str, Any]], None]) -> M:
    """Parse an OTLP/JSON body into ``message`` (a full generated message).

    OTLP/JSON writes trace and span ids in hex where protobuf's JSON mapping expects base64:
    ``rewrite_ids`` converts them in the parsed document first.

    Raises:
        DecodeError: the bytes are not JSON, or not of the OTLP shape.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DecodeError("invalid OTLP/JSON: the body must be a JSON object")
    try:
        rewrite_ids(data)
        return json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError, AttributeError) as exc:
        raise DecodeError(f"invalid OTLP/JSON: {exc}") from exc


# What extraction reads of one span, in this order: trace_id, span_id, parent_span_id, name, kind,
# start_time_unix_nano, end_time_unix_nano, serialized Status, serialized attribute KeyValues.
SpanRecord = tuple[bytes, bytes, bytes, str, int, int, int, bytes, Iterable[bytes]]
# One ResourceSpans: its serialized resource attribute KeyValues, and its spans' records.
ResourceRecords = tuple[Iterable[bytes], Iterable[SpanRecord]]


def decode_body(body: bytes) -> Decoded:
    """``extract(parse_protobuf(body))``, through the C scanner when it is built and applies.

    The scanner (``receive/_wire.c``) reads the canonical encoding several times faster than the
    protobuf runtime; for anything else it declines and the runtime decides, so the result, and
    every error, is the same either way.

    Raises:
        DecodeError: as ``parse_protobuf`` and ``extract``.
    """
    if SCANNER:
        scanned = _wire.scan(body)
        if scanned is not None:
            return _extract(scanned)
    return extract(parse_protobuf(body))


def extract(request: OtlpRequest) -> Decoded:
    """Build the ``Span`` objects of a parsed ``LeanRequest``, rejecting invalid spans one by one.

    Raises:
        DecodeError: a resource attribute is not a valid ``KeyValue``.
    """
    return _extract(_records(request))


def _records(request: OtlpRequest) -> Iterator[ResourceRecords]:
    """The records of a ``LeanRequest``, as the C scanner returns them from bytes."""
    for resource_spans in request.resource_spans:
        yield (
            resource_spans.resource.attributes,
            (
                (
                    s.trace_id,
                    s.span_id,
                    s.parent_span_id,
                    s.name,
                    s.kind,
                    s.start_time_unix_nano,
                    s.end_time_unix_nano,
                    s.status,
                    s.attributes,
                )
                for scope_spans in resource_spans.scope_spans
                for s in scope_spans.spans
            ),
        )


def _extract(records: Iterable[ResourceRecords]) -> Decoded:
    spans: list[Span] = []
    append = spans.append
    prefixes = _KEPT_PREFIXES
    seen = _SEEN
    total = rejected = 0
    error = ""
    earliest, latest = EARLIEST_NS, time.time_ns() + MAX_AHEAD_NS
    for resource_raw, span_records in records:
        resource = Resource(resource_attributes(resource_raw))
        for trace_id, span_id, parent_id, name, kind, start, end, status, raw in span_records:
            total += 1
            if (
                len(trace_id) != 16
                or len(span_id) != 8
                or trace_id == _ZERO_TRACE
                or span_id == _ZERO_SPAN
                or (parent_id and len(parent_id) != 8)
                or not earliest <= start <= latest
                or not earliest <= end <= latest
            ):
                rejected += 1
                error = error or _why_invalid(trace_id, span_id, parent_id, start, end, latest)
                continue
            attributes: dict[str, AttrValue] = {}
            for kv in raw:
                # Hot loop: most serialized KeyValues repeat exactly (same key, same value)
                # from span to span, so one dict lookup usually settles an attribute.
                hit = seen.get(kv, _UNSEEN)
                if hit is None:
                    continue
                if hit is not _UNSEEN:
                    attributes[hit[0]] = hit[1]
                    continue
                got = _attribute(kv, prefixes, attributes)
                if len(kv) <= _SEEN_MAX_BYTES:
                    if len(seen) >= _SEEN_MAX:
                        seen.clear()
                    seen[kv] = got
            append(
                Span(
                    trace_id,
                    span_id,
                    b"" if parent_id == _ZERO_SPAN else parent_id,
                    name,
                    kind,
                    start,
                    end if end >= start else start,  # clock stepped back mid-span: no duration
                    (status[1] if len(status) == 2 and status[0] == 0x18 else _status(status))
                    if status
                    else 0,
                    attributes,
                    resource,
                )
            )
    return Decoded(spans, total, rejected, error)


def _attribute(
    kv: bytes, prefixes: dict[bytes, str], attributes: dict[str, AttrValue]
) -> tuple[str, AttrValue] | None:
    """Decode one serialized span attribute into ``attributes`` if its key is kept.

    Returns what ``extract`` remembers for these exact bytes (decoding is a pure function of
    them): ``(key, value)`` when a kept key was set, else ``None`` (not kept, or undecodable).
    """
    # Compare the serialized key prefix; decode only kept keys.
    try:
        key = prefixes.get(kv[: 2 + kv[1]])
    except IndexError:  # under 2 bytes: an empty or broken KeyValue
        return None
    if key is not None:
        value = _kept_value(kv, len(key) + 2)
        if value is None:
            return None
        attributes[key] = value
        return key, value
    if kv[0] != 0x0A:
        return _odd_key_value(kv, attributes)
    return None


def _kept_value(kv: bytes, offset: int) -> AttrValue | None:
    # Fast path: ``0x12 len 0x0a len <utf-8>``, a short string value right after the key.
    if len(kv) > offset + 3 and kv[offset] == 0x12 and kv[offset + 2] == 0x0A:
        n = kv[offset + 3]
        if n < 128 and kv[offset + 1] == n + 2 and len(kv) == offset + 4 + n:
            try:
                return kv[offset + 4 :].decode()
            except UnicodeDecodeError:
                return None
    try:
        return _value(KeyValue.FromString(kv).value)
    except (ProtobufDecodeError, RecursionError, ValueError):
        return None


def _odd_key_value(kv: bytes, attributes: dict[str, AttrValue]) -> tuple[str, AttrValue] | None:
    """A KeyValue not serialized key-first (legal, rare): decode it fully."""
    try:
        parsed = KeyValue.FromString(kv)
    except (ProtobufDecodeError, RecursionError, ValueError):
        return None
    if parsed.key in SPAN_KEYS_KEPT:
        value = _value(parsed.value)
        if value is not None:
            attributes[parsed.key] = value
            return parsed.key, value
    return None


def _status(raw: bytes) -> int:
    try:
        return int(Status.FromString(raw).code)
    except (ProtobufDecodeError, RecursionError, ValueError):
        return 0


def resource_attributes(attributes: Iterable[bytes]) -> dict[str, AttrValue]:
    """Serialized resource ``KeyValue``s as plain values.

    Arrays of scalars are joined with ``,``, bytes become hex, nested key-value lists are skipped.

    Raises:
        DecodeError: an attribute is not a valid ``KeyValue``.
    """
    out: dict[str, AttrValue] = {}
    for raw in attributes:
        try:
            kv = KeyValue.FromString(raw)
        except (ProtobufDecodeError, RecursionError, ValueError) as exc:
            raise DecodeError(f"invalid resource attribute: {exc}") from exc
        value = _value(kv.value)
        if value is not None:
            out[kv.key] = value
    return out


def _value(any_value: AnyValue) -> AttrValue | None:
    which = any_value.WhichOneof("value")
    if which is None or which == "kvlist_value":
        return None
    if which == "array_value":
        items = (_value(v) for v in any_value.array_value.values)
        return ",".join(str(item) for item in items if item is not None)
    if which == "bytes_value":
        return bytes(any_value.bytes_value).hex()
    value: AttrValue = getattr(any_value, which)
    return value


def _why_invalid(
    trace_id: bytes, span_id: bytes, parent_id: bytes, start: int, end: int, latest: int
) -> str:
    if len(trace_id) != 16:
        return f"invalid trace id: {len(trace_id)} bytes, want 16"
    if trace_id == _ZERO_TRACE:
        return "invalid trace id: all zeros"
    if len(span_id) != 8:
        return f"invalid span id: {len(span_id)} bytes, want 8"
    if span_id == _ZERO_SPAN:
        return "invalid span id: all zeros"
    if parent_id and len(parent_id) != 8:
        return f"invalid parent span id: {len(parent_id)} bytes, want 8 or none"
    for field, ns in (("start_time_unix_nano", start), ("end_time_unix_nano", end)):
        if ns < EARLIEST_NS:
            return f"invalid {field} {ns}: before 2000-01-01T00:00:00Z (unset or broken clock)"
        if ns > latest:
            return f"invalid {field} {ns}: more than a day ahead of the collector's clock"
    return "invalid span"  # pragma: no cover  (every rejection has a reason above)


def _hex_ids_to_base64(data: dict[str, Any]) -> None:
    """Rewrite OTLP/JSON hex ids in place into the base64 that protobuf's JSON parser expects."""
    for resource_spans in _items(data, "resourceSpans", "resource_spans"):
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for span in _items(scope_spans, "spans", "spans"):
                _convert_ids(span)
                for link in _items(span, "links", "links"):
                    _convert_ids(link)


def _items(obj: object, camel: str, snake: str) -> list[Any]:
    if not isinstance(obj, dict):
        return []
    value = obj.get(camel, obj.get(snake))
    return value if isinstance(value, list) else []


def _convert_ids(obj: object) -> None:
    if not isinstance(obj, dict):
        return
    for key in _ID_KEYS.intersection(obj):
        value = obj[key]
        if isinstance(value, str):
            obj[key] = _hex_to_base64(value)


def _hex_to_base64(text: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return _BAD_ID_B64
    return base64.b64encode(raw).decode() if raw or not text else _BAD_ID_B64


def encode_response(rejected: int, message: str, *, as_json: bool) -> bytes:
    """An ``ExportTraceServiceResponse``; ``partial_success`` only when something was rejected."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if as_json:
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()
