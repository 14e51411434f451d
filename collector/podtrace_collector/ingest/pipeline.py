"""What both receivers do with a parsed request: enrich, extract, dedupe, hand on, forward.

``Ingest.export`` is the one entry point shared by OTLP/gRPC and OTLP/HTTP, so both transports
behave identically: the same validation, the same duplicate suppression, the same overload
answers.  Duplicates are remembered only once the request has been accepted, so a refused
request (``Overloaded``) can be retried without its spans being mistaken for duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from podtrace_collector.errors import Overloaded, ShuttingDown, TooLarge
from podtrace_collector.ingest.dedupe import Deduplicator
from podtrace_collector.ingest.enrich import Enricher
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.model import Span, SpanSink
from podtrace_collector.receive.decode import Decoded, decode_body, extract, parse_protobuf
from podtrace_collector.receive.lean import OtlpRequest


class Forwarding(Protocol):
    """The part of ``forward.Forwarder`` that ingest uses."""

    def forward(
        self,
        request: OtlpRequest,
        accepted: Sequence[Span] | None,
        *,
        refuse: bool,
        body: bytes | None,
    ) -> None: ...


class ExportResult:
    """The outcome of one accepted export request."""

    __slots__ = ("accepted", "message", "rejected")

    def __init__(self, accepted: int, rejected: int, message: str) -> None:
        self.accepted = accepted
        self.rejected = rejected
        self.message = message


class Ingest:
    """The receivers' shared pipeline.

    Args:
        metrics: where counts go.
        dedupe: the duplicate filter.
        sink: the gateway's analysis stage (``None`` in a sidecar).
        forwarder: forwards accepted spans (the sidecar's destination; optional in a gateway).
        enricher: stamps pod attributes (sidecar only).
    """

    def __init__(
        self,
        *,
        metrics: CollectorMetrics,
        dedupe: Deduplicator,
        sink: SpanSink | None = None,
        forwarder: Forwarding | None = None,
        enricher: Enricher | None = None,
    ) -> None:
        self.metrics = metrics
        self.dedupe = dedupe
        self.sink = sink
        self.forwarder = forwarder
        self.enricher = enricher if enricher else None
        self.stopping = False

    def export_protobuf(self, body: bytes) -> ExportResult:
        """Take one protobuf ``ExportTraceServiceRequest`` body.

        A gateway that neither enriches nor forwards needs only the spans, so it decodes them
        straight from the bytes (``decode_body``); otherwise the lean message is parsed too, to be
        enriched and forwarded.

        Raises:
            Overloaded: a budget is exhausted or the collector is stopping; nothing was kept.
            DecodeError: the body is not a valid request.
        """
        if self.enricher is not None or self.forwarder is not None:
            return self.export(parse_protobuf(body), body=body)
        self._check_running()
        return self._accept(decode_body(body), None, body)

    def export(self, request: OtlpRequest, *, body: bytes | None = None) -> ExportResult:
        """Take one parsed ``LeanRequest``; ``body`` is its original bytes when available.

        Raises:
            Overloaded: a budget is exhausted or the collector is stopping; nothing was kept.
            DecodeError: the request is malformed beyond per-span rejection.
        """
        self._check_running()
        if self.enricher is not None and self.enricher.apply(request):
            body = None  # the original bytes no longer match the request
        return self._accept(extract(request), request, body)

    def _check_running(self) -> None:
        if self.stopping:
            raise ShuttingDown("collector is shutting down", retry_after_s=1.0)

    def _accept(
        self, decoded: Decoded, request: OtlpRequest | None, body: bytes | None
    ) -> ExportResult:
        m = self.metrics
        m.spans_received.inc(decoded.total)
        if decoded.rejected:
            m.spans_rejected.inc(decoded.rejected)
        fresh = self.dedupe.filter(decoded.spans)
        try:
            self._hand_on(request, decoded.total, fresh, body)
        except (Overloaded, TooLarge):
            self.dedupe.forget(fresh)
            m.spans_refused.inc(decoded.total)
            raise
        except Exception:
            self.dedupe.forget(fresh)  # a failing stage: the client's retry must not be a duplicate
            raise
        duplicates = len(decoded.spans) - len(fresh)
        if duplicates:
            m.spans_deduplicated.inc(duplicates)
        m.spans_accepted.inc(len(fresh))
        return ExportResult(len(fresh), decoded.rejected, decoded.error)

    def _hand_on(
        self, request: OtlpRequest | None, total: int, fresh: list[Span], body: bytes | None
    ) -> None:
        if self.sink is not None and fresh:
            self.sink.submit(fresh)
            self.metrics.sink_spans.inc(len(fresh))
        if self.forwarder is not None and fresh:
            assert request is not None  # export_protobuf parses the request when forwarding
            # In a gateway the analysis already has the spans: forwarding must not refuse them.
            # ``None``: every span of the request is accepted, forward it whole.
            accepted = None if len(fresh) == total else fresh
            self.forwarder.forward(request, accepted, refuse=self.sink is None, body=body)
