"""The gateway's analysis stage: assemble → analyse → write to the store.

``build_analysis_stage`` is what ``collector.Collector`` plugs in as the gateway's ``SpanSink``:

    receivers ─▶ AnalysisStage.submit ─▶ Assembler ─(complete traces)─▶ Analyzer
                                                                         │ drain() every
                                                                         ▼ write interval (2 s)
                                                         StoreWriter ─▶ Store (SQLite)

Memory: every span held by the assembler is reserved in the collector's shared ``MemoryBudget``
and released when its trace leaves for the analysis.  The assembler itself finishes the oldest
traces early at 80 % of the budget, so the retryable refusal (``Overloaded``) from the budget is
only reached when analysis cannot keep up even then.  Counters of every stage are read by
Prometheus at scrape time (``_StageMetrics``), never incremented per span.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector as PromCollector

from podtrace_collector.aggregate.window import Reads
from podtrace_collector.analyse.analyzer import Analyzer
from podtrace_collector.analyse.cardinality import RevisionCap
from podtrace_collector.assemble import Assembler
from podtrace_collector.budget import DECODED_SPAN_BYTES, MemoryBudget
from podtrace_collector.config import CollectorConfig
from podtrace_collector.errors import Overloaded
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.model import Span
from podtrace_collector.store.base import Store
from podtrace_collector.store.writer import StoreWriter

logger = logging.getLogger(__name__)

# Share of the span budget at which the assembler starts finishing the oldest traces early.
EARLY_FINISH_SHARE = 0.8


class _ReleasingSink:
    """Hands complete traces to the analyser and gives their spans back to the budget."""

    def __init__(self, analyzer: Analyzer, budget: MemoryBudget) -> None:
        self._analyzer = analyzer
        self._budget = budget

    def on_trace(self, spans: Sequence[Span], *, late: bool) -> None:
        try:
            self._analyzer.on_trace(spans, late=late)
        finally:
            self._budget.release(len(spans) * DECODED_SPAN_BYTES, len(spans))


class AnalysisStage:
    """The gateway's ``SpanSink``: owns the assembler, the analyser and the store writer."""

    def __init__(
        self,
        store: Store,
        budget: MemoryBudget,
        *,
        trace_timeout_s: float,
        retention_s: float,
        write_interval_s: float = 2.0,
        max_new_revisions: int | None = None,
        pair_wait_s: float = 30.0,
    ) -> None:
        self.budget = budget
        cap = None
        if max_new_revisions is not None:
            # Seeded with what the store has registered, so a restart's returning workloads
            # are not new.
            known = store.read(lambda _registry: Reads([])).registry
            cap = RevisionCap(max_new_revisions, known=known)
        self.analyzer = Analyzer(cap=cap, pair_wait_s=pair_wait_s)
        span_cap = min(budget.limit_spans, budget.limit_bytes // DECODED_SPAN_BYTES)
        self.assembler = Assembler(
            _ReleasingSink(self.analyzer, budget),
            trace_timeout_s=trace_timeout_s,
            max_spans=max(1, int(span_cap * EARLY_FINISH_SHARE)),
        )
        self.writer = StoreWriter(
            self.analyzer, store, interval_s=write_interval_s, retention_s=retention_s
        )

    def submit(self, spans: Sequence[Span]) -> None:
        """Buffer spans for assembly.

        Raises:
            Overloaded: the memory budget is exhausted or the gateway is shutting down.
        """
        n = len(spans)
        self.budget.reserve(n * DECODED_SPAN_BYTES, n)
        try:
            self.assembler.submit(spans)
        except Overloaded:
            self.budget.release(n * DECODED_SPAN_BYTES, n)
            raise

    def start(self) -> None:
        self.writer.start()
        self.assembler.start()

    @property
    def healthy(self) -> bool:
        """Whether the last store write succeeded (the collector is not ready while it fails)."""
        return self.writer.healthy

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush buffered traces (unfinished traces are analysed as they are, and requests
        waiting for the rest of their trace are added as they are) and the writer."""
        self.assembler.close(timeout_s / 2)
        self.analyzer.release_waiting()
        if not self.writer.close(timeout_s / 2):
            logger.warning("store writer did not finish within %.1fs", timeout_s / 2)


class _StageMetrics(PromCollector):
    """Exposes the assembler, analyser and writer counters at scrape time."""

    def __init__(self, sink: AnalysisStage) -> None:
        self._sink = sink

    def collect(self) -> Iterator[Any]:
        a, an, w = self._sink.assembler, self._sink.analyzer, self._sink.writer
        counters = [
            ("podtrace_traces_assembled", "Traces completed by the assembler", a.traces_completed),
            (
                "podtrace_traces_finished_early",
                "Traces finished early at the buffer bound",
                a.traces_finished_early,
            ),
            (
                "podtrace_spans_finished_early",
                "Spans in traces finished early",
                a.spans_finished_early,
            ),
            ("podtrace_traces_flushed", "Unfinished traces analysed at shutdown", a.traces_flushed),
            (
                "podtrace_late_spans_assembled",
                "Spans that arrived after their trace completed",
                a.late_spans,
            ),
            ("podtrace_late_traces", "Late spans analysed as a trace of their own", a.late_traces),
            (
                "podtrace_assembler_spans_rejected",
                "Spans the assembler refused (overload)",
                a.spans_rejected,
            ),
            ("podtrace_traces_analysed", "Traces analysed", an.traces),
            (
                "podtrace_revisions_registered",
                "Workload-revisions first seen and registered (within --max-new-revisions)",
                an.registered_revisions,
            ),
            (
                "podtrace_traces_over_revision_cap",
                "Traces naming more new workload-revisions than --max-new-revisions allows"
                " this minute: counted in totals, not analysed",
                an.capped_traces,
            ),
            (
                "podtrace_spans_over_revision_cap",
                "Spans of traces over the cap on new workload-revisions",
                an.capped_spans,
            ),
            ("podtrace_spans_analysed", "Spans analysed", an.spans),
            (
                "podtrace_traces_analysis_failed",
                "Traces the analysis could not handle (skipped)",
                an.failed_traces,
            ),
            ("podtrace_store_writes", "Successful store write batches", w.writes),
            (
                "podtrace_store_write_failures",
                "Failed store write batches (retried)",
                w.write_failures,
            ),
            (
                "podtrace_store_buckets_dropped",
                "Minute buckets lost after repeated write failures",
                w.dropped_buckets,
            ),
            (
                "podtrace_store_entries_dropped",
                "Aggregate entries the store could not hold (a value out of its range)",
                w.dropped_entries,
            ),
        ]
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "podtrace_store_healthy",
            "1 while store writes succeed, 0 after a failed write until one succeeds",
            value=1 if w.healthy else 0,
        )
        yield GaugeMetricFamily(
            "podtrace_assembler_buffered_spans",
            "Spans waiting in the assembler",
            value=a.buffered_spans,
        )
        yield GaugeMetricFamily(
            "podtrace_assembler_buffered_traces",
            "Traces waiting in the assembler",
            value=a.buffered_traces,
        )
        yield from self._pairing()

    def _pairing(self) -> Iterator[Any]:
        p = self._sink.analyzer.pairing
        for name, doc, value in (
            (
                "podtrace_requests_paired",
                "Requests of traces analysed in fragments whose open ends a later fragment paired",
                p.paired,
            ),
            (
                "podtrace_requests_unpaired",
                "Requests added as they were after waiting --pair-wait for the rest of their trace",
                p.unpaired,
            ),
            (
                "podtrace_requests_pairing_overflow",
                "Requests with open ends added at once: too many were waiting",
                p.overflow,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "podtrace_requests_waiting_for_pair",
            "Requests whose time samples wait for the rest of their trace",
            value=p.waiting,
        )
        f = self._sink.analyzer.fragments
        for name, doc, value in (
            (
                "podtrace_fragments_joined",
                "Fragments held as spans and analysed with a later fragment of their trace",
                f.joined,
            ),
            (
                "podtrace_fragments_unpaired",
                "Fragments held as spans and analysed alone after --pair-wait",
                f.unpaired,
            ),
            (
                "podtrace_fragments_overflow",
                "Fragments that would have been held analysed at once: too many spans were held",
                f.overflow,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "podtrace_fragments_held_spans",
            "Spans of fragments held for the rest of their trace",
            value=f.held_spans,
        )


def build_analysis_stage(
    config: CollectorConfig, *, store: Store, metrics: CollectorMetrics, budget: MemoryBudget
) -> AnalysisStage:
    """The gateway's analysis stage for ``config``, with its metrics in ``metrics.registry``."""
    sink = AnalysisStage(
        store,
        budget,
        trace_timeout_s=config.trace_timeout_s,
        retention_s=config.retention_s,
        max_new_revisions=config.max_new_revisions,
        pair_wait_s=config.pair_wait_s,
    )
    metrics.registry.register(_StageMetrics(sink))
    return sink
