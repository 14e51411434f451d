"""The collector's data model: decoded spans and the interfaces between pipeline stages.

The pipeline is ``receive -> ingest (enrich, dedupe) -> SpanSink``, with forwarding beside it.
In a gateway the sink is the analysis stage (``stage.AnalysisStage``: the assembler groups spans
into traces and hands complete traces to the ``TraceSink``, the analyser); a sidecar has no sink,
its ingest hands requests to the forwarder only.  Everything here is plain data so the analysis
core stays free of I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

AttrValue = str | bool | int | float
Attributes = Mapping[str, AttrValue]

# OTLP Span.SpanKind numbers (opentelemetry/proto/trace/v1/trace.proto).
KIND_UNSPECIFIED = 0
KIND_INTERNAL = 1
KIND_SERVER = 2
KIND_CLIENT = 3
KIND_PRODUCER = 4
KIND_CONSUMER = 5

# OTLP Status.StatusCode numbers.
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2

# Span attributes the analysis reads; decoders keep these and may drop the rest.
SPAN_KEYS_KEPT = frozenset(
    {
        "http.request.method",
        "http.method",
        "http.route",
        "http.target",
        "rpc.service",
        "rpc.method",
        "messaging.destination.name",
        "enduser.id",
        # A client span of a database or a message system never gets a child request
        # (``analyse.pairing``): these tell it apart.
        "db.system",
        "db.system.name",
        "messaging.system",
    }
)


class Resource:
    """The resource of a batch of spans: its attributes, shared by all of its spans."""

    __slots__ = ("_key", "attributes")

    def __init__(self, attributes: dict[str, AttrValue]) -> None:
        self.attributes = attributes
        self._key: tuple[tuple[str, AttrValue], ...] | None = None

    @property
    def key(self) -> tuple[tuple[str, AttrValue], ...]:
        """A hashable identity of the attributes, for caching per-resource derivations."""
        if self._key is None:
            self._key = tuple(sorted(self.attributes.items()))
        return self._key

    def __repr__(self) -> str:
        return f"Resource({self.attributes!r})"


class Span:
    """One decoded span: only what assembly and analysis need.

    Ids are raw bytes (16 for the trace, 8 for spans); ``parent_id`` is ``b""`` for a root.
    """

    __slots__ = (
        "attributes",
        "end_ns",
        "kind",
        "name",
        "parent_id",
        "resource",
        "span_id",
        "start_ns",
        "status",
        "trace_id",
    )

    def __init__(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_id: bytes,
        name: str,
        kind: int,
        start_ns: int,
        end_ns: int,
        status: int,
        attributes: dict[str, AttrValue],
        resource: Resource,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.name = name
        self.kind = kind
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.status = status
        self.attributes = attributes
        self.resource = resource

    @property
    def failed(self) -> bool:
        return self.status == STATUS_ERROR

    def __repr__(self) -> str:
        return (
            f"Span({self.trace_id.hex()}/{self.span_id.hex()} parent={self.parent_id.hex()}"
            f" {self.name!r} kind={self.kind} status={self.status})"
        )


class SpanSink(Protocol):
    """A pipeline stage that accepts decoded, deduplicated spans.

    ``submit`` must be cheap and must not block on I/O; it raises ``Overloaded`` (from
    ``podtrace_collector.errors``) when the stage's memory budget is exhausted, so that the
    receiver can answer with a retryable error instead of growing without bound.
    """

    def submit(self, spans: Sequence[Span]) -> None: ...


class TraceSink(Protocol):
    """Receives complete traces from the assembler."""

    def on_trace(self, spans: Sequence[Span], *, late: bool) -> None: ...
