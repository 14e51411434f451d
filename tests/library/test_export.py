"""Export accounting: outcomes counted, exceptions contained, queue overflow counted."""

from __future__ import annotations

import logging
import os
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


def test_after_a_failure_at_exit_the_rest_is_dropped_and_counted() -> None:
    """Once the collector failed an exit export, later batches are not sent, only counted."""
    inner = _Scripted(SpanExportResult.FAILURE, SpanExportResult.SUCCESS)
    exporter = CountingExporter(inner)
    exporter.begin_exit(1.0)
    assert exporter.export(_spans(2)) is SpanExportResult.FAILURE
    assert exporter.export(_spans(3)) is SpanExportResult.FAILURE
    assert inner.outcomes == [SpanExportResult.SUCCESS]  # the second batch never reached it
    assert podtrace.stats().dropped_spans == 5


def test_before_exit_failures_do_not_stop_exports() -> None:
    """Outside exit, a failed batch does not keep the next one from being sent."""
    exporter = CountingExporter(_Scripted(SpanExportResult.FAILURE, SpanExportResult.SUCCESS))
    assert exporter.export(_spans(1)) is SpanExportResult.FAILURE
    assert exporter.export(_spans(1)) is SpanExportResult.SUCCESS


class _Named(SpanExporter):
    def __init__(self, name: str) -> None:
        self.name = name
        self.shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shut = True


def test_a_forked_child_exports_through_its_own_exporter() -> None:
    """After fork the first export builds a fresh exporter; the parent's is not used or shut."""
    parent_inner = _Named("parent")
    exporter = CountingExporter(parent_inner, rebuild=lambda: _Named("child"))
    spans = _spans(1)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover  (the child reports through the pipe)
        exporter.export(spans)
        report = f"{exporter.inner.name} {parent_inner.shut}"  # type: ignore[attr-defined]
        os.write(write_end, report.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    os.waitpid(pid, 0)
    assert report == "child False"
    exporter.export(spans)
    assert exporter.inner is parent_inner  # the parent keeps its own


def test_a_forked_child_that_never_exported_does_not_close_the_parents_exporter() -> None:
    """Shutdown in a child that never exported leaves the parent's connections alone."""
    parent_inner = _Named("parent")
    exporter = CountingExporter(parent_inner, rebuild=lambda: _Named("child"))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        exporter.shutdown()
        os.write(write_end, b"1" if parent_inner.shut else b"0")
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == b"0"
    os.waitpid(pid, 0)
