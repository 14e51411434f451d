"""Export accounting: every span is either exported or counted as dropped, never raised.

:class:`CountingExporter` wraps the real exporter; it runs on the batch processor's worker thread,
never on the request path, so counting costs nothing per span where it matters. Spans the batch
processor drops because its queue is full are counted through the processor's metrics seam.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from podtrace._exporters import hasten_for_exit
from podtrace._log import warn_once

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportStats:
    """Counters of this process since :func:`podtrace.init` (a forked child starts at zero).

    Attributes:
        exported_spans: spans the exporter accepted.
        dropped_spans: spans lost: failed exports plus queue overflow.
        failed_exports: export calls that failed (one call carries a batch of spans).
        queue_dropped_spans: the part of ``dropped_spans`` lost to a full queue.
    """

    exported_spans: int = 0
    dropped_spans: int = 0
    failed_exports: int = 0
    queue_dropped_spans: int = 0


class _Counters:
    __slots__ = ("exported", "failed_batches", "failed_spans", "lock", "queue_dropped")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.exported = self.failed_spans = self.failed_batches = self.queue_dropped = 0

    def snapshot(self) -> ExportStats:
        with self.lock:
            return ExportStats(
                exported_spans=self.exported,
                dropped_spans=self.failed_spans + self.queue_dropped,
                failed_exports=self.failed_batches,
                queue_dropped_spans=self.queue_dropped,
            )


COUNTERS = _Counters()


class CountingExporter(SpanExporter):
    """Delegates to ``inner``; counts outcomes; turns exceptions into a counted failure.

    ``rebuild`` makes a fresh inner exporter: a forked child gets its own on its first export,
    because the parent's HTTP keep-alive connections and gRPC channel belong to the parent (two
    processes writing requests into one socket corrupt both streams). :meth:`begin_exit` makes the
    process's last exports quick (see :func:`podtrace._exporters.hasten_for_exit`); once one of
    them has failed, the rest are dropped and counted rather than each waiting out a timeout.
    """

    def __init__(
        self,
        inner: SpanExporter,
        counters: _Counters = COUNTERS,
        *,
        rebuild: Callable[[], SpanExporter | None] | None = None,
    ) -> None:
        self.inner = inner
        self._counters = counters
        self._rebuild = rebuild
        self._pid = os.getpid()
        self._exit_timeout_s: float | None = None
        self._exit_failed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export a batch; never raises."""
        inner = self._own_inner()
        if self._exit_failed:
            result = SpanExportResult.FAILURE  # the collector already failed us at exit
        else:
            try:
                result = inner.export(spans)
            except Exception as exc:  # an exporter bug must not kill the worker thread
                warn_once(logger, "export-raised", "podtrace: span exporter raised: %r", exc)
                result = SpanExportResult.FAILURE
        with self._counters.lock:
            if result is SpanExportResult.SUCCESS:
                self._counters.exported += len(spans)
            else:
                self._counters.failed_batches += 1
                self._counters.failed_spans += len(spans)
        if result is not SpanExportResult.SUCCESS:
            self._exit_failed = self._exit_timeout_s is not None
            warn_once(logger, "export-failed", "podtrace: span export failed; dropping (counted)")
        return result

    def begin_exit(self, timeout_s: float) -> None:
        """From now on: no retries, each request within ``timeout_s``, nothing after a failure."""
        self._exit_timeout_s = timeout_s
        hasten_for_exit(self.inner, timeout_s)

    def _own_inner(self) -> SpanExporter:
        # Only the batch processor calls export, under its export lock: no race on the rebuild.
        pid = os.getpid()
        if pid != self._pid and self._rebuild is not None:
            self._pid = pid
            try:
                fresh = self._rebuild()
            except Exception as exc:
                warn_once(logger, "export-rebuild", "podtrace: exporter after fork: %r", exc)
                fresh = None
            if fresh is not None:
                self.inner = fresh  # the parent's copy is left alone: closing it is the parent's
                if self._exit_timeout_s is not None:
                    hasten_for_exit(fresh, self._exit_timeout_s)
        return self.inner

    def shutdown(self) -> None:
        """Shut the wrapped exporter down; never raises."""
        if os.getpid() != self._pid and self._rebuild is not None:
            return  # a forked child that never exported holds only the parent's connections
        try:
            self.inner.shutdown()
        except Exception as exc:
            warn_once(logger, "export-shutdown", "podtrace: exporter shutdown raised: %r", exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        try:
            return self.inner.force_flush(timeout_millis)
        except Exception:
            return False


class _QueueDropMetrics:
    """Stands in for the batch processor's metrics object to count queue-full drops."""

    def __init__(self, inner: object, on_drop: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_drop = on_drop

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        self._inner.register_queue_size(get_queue_size)  # type: ignore[attr-defined]

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        self._on_drop(count)
        self._inner.drop_items(count, error_type)  # type: ignore[attr-defined]

    def finish_items(self, count: int) -> None:
        self._inner.finish_items(count)  # type: ignore[attr-defined]


def count_queue_drops(processor: BatchSpanProcessor, counters: _Counters = COUNTERS) -> bool:
    """Hook queue-overflow counting into ``processor``; False if this SDK has no such seam.

    SDK 1.45's BatchProcessor reports queue-full drops to ``_metrics.drop_items``; that call is
    off the common path (it only happens when the queue is full), so wrapping it is free.
    """
    batch = getattr(processor, "_batch_processor", None)
    metrics = getattr(batch, "_metrics", None)
    if batch is None or metrics is None or not hasattr(metrics, "drop_items"):
        return False

    def on_drop(count: int) -> None:
        with counters.lock:
            counters.queue_dropped += count

    batch._metrics = _QueueDropMetrics(metrics, on_drop)
    return True


def stats() -> ExportStats:
    """Return the export counters of this process (see :class:`ExportStats`)."""
    return COUNTERS.snapshot()


def reset_stats() -> None:
    """Zero the counters (tests)."""
    with COUNTERS.lock:
        COUNTERS.exported = COUNTERS.failed_spans = COUNTERS.failed_batches = 0
        COUNTERS.queue_dropped = 0


def _restart_after_fork() -> None:
    # The child counts its own spans; the parent's lock may have been held at fork time.
    COUNTERS.lock = threading.Lock()
    reset_stats()


os.register_at_fork(after_in_child=_restart_after_fork)
