"""Export accounting: outcomes counted, exceptions contained, queue overflow counted."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import podtrace
from podtrace._export import CountingExporter, count_queue_drops


class _Scripted(SpanExporter):
    def __init__(self, *outcomes: SpanExportResult | Exception) -> None:
        self.outcomes = list(outcomes)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def _spans(n: int) -> list[ReadableSpan]:
    tracer = TracerProvider().get_tracer("t")
    out = []
    for _ in range(n):
        span = tracer.start_span("s")
        span.end()
        out.append(span)  # type: ignore[arg-type]
    return out


def test_counts_success_failure_and_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    """Accepted spans, failed batches and raising exporters all land in the counters."""
    inner = _Scripted(SpanExportResult.SUCCESS, SpanExportResult.FAILURE, RuntimeError("bug"))
    exporter = CountingExporter(inner)
    with caplog.at_level(logging.WARNING, logger="podtrace"):
        assert exporter.export(_spans(3)) is SpanExportResult.SUCCESS
        assert exporter.export(_spans(2)) is SpanExportResult.FAILURE
        assert exporter.export(_spans(4)) is SpanExportResult.FAILURE
    stats = podtrace.stats()
    assert (stats.exported_spans, stats.dropped_spans, stats.failed_exports) == (3, 6, 2)
    assert caplog.text.count("span export failed") == 1  # logged once, counted always
    assert "raised" in caplog.text


class _Blocking(SpanExporter):
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(5)
        return SpanExportResult.SUCCESS


def test_queue_overflow_is_counted() -> None:
    """Spans dropped because the batch queue is full are counted as dropped."""
    blocking = _Blocking()
    processor = BatchSpanProcessor(
        CountingExporter(blocking),
        max_queue_size=2,
        max_export_batch_size=2,
        schedule_delay_millis=60_000,
    )
    assert count_queue_drops(processor)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for _ in range(2):
        tracer.start_span("s").end()
    assert blocking.entered.wait(5)  # the worker is now stuck exporting the first batch
    for _ in range(3):
        tracer.start_span("s").end()
    blocking.release.set()
    provider.shutdown()
    stats = podtrace.stats()
    assert stats.queue_dropped_spans == 1
    assert stats.dropped_spans == 1
    assert stats.exported_spans == 4
