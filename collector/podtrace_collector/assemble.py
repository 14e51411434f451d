"""Assembly: spans in, complete traces out.

The ``Assembler`` is the gateway's ``SpanSink``.  It groups spans by trace id and hands a trace to
its ``TraceSink`` (the analysis) once ``trace_timeout_s`` has passed since the trace's **last**
span arrived.  ``tick()`` does that; ``start()`` runs it on a background thread and ``close()``
stops the thread and flushes every buffered trace.

Bounds and what is counted (attributes, read by ``/metrics``):

* ``max_spans`` — past it, the oldest traces (by last arrival) are finished early, on the
  submitting thread: ``traces_finished_early`` / ``spans_finished_early``.
* ``Overloaded`` (retryable) is raised, and ``spans_rejected`` counted, only when the assembler
  truly cannot take a batch: it is closed (shutting down), or it is over ``max_spans`` while other
  threads are already finishing more than ``max_spans // 10`` spans early — memory would then grow
  past its budget faster than the analysis drains it.
* Late spans — spans of a trace completed recently (the last ``recent_traces`` completed trace
  ids are remembered) — are assembled as a trace of their own and emitted with ``late=True``
  (counted in ``late_spans`` / ``late_traces`` when emitted).  A span of a trace completed longer
  ago starts a new trace.
* ``sink_errors`` — traces whose sink raised (logged; the assembler carries on).

Memory: one list slot per buffered span plus a small record per trace.  To keep buffered spans
small, spans of one trace are made to share one ``trace_id`` bytes object, equal span names share
one string, and equal small attribute dicts (and empty ones) share one dict: treat
``Span.attributes`` as read-only after assembly.  ``bench/bench_pipeline.py`` measures the bytes
per buffered span.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from podtrace_collector.errors import Overloaded
from podtrace_collector.model import AttrValue, Span, TraceSink

logger = logging.getLogger(__name__)

Batch = list[tuple[list[Span], bool]]  # (spans of a trace, late)
# Distinct span names / attribute sets remembered for sharing; past it a table starts over.
_MAX_SHARED = 50_000
# Shared by every buffered span without attributes: downstream stages treat attributes read-only.
_NO_ATTRIBUTES: dict[str, AttrValue] = {}


class _Pending:
    __slots__ = ("last", "late", "spans", "trace_id")

    def __init__(self, trace_id: bytes, late: bool, now: float) -> None:
        self.trace_id = trace_id
        self.late = late
        self.last = now
        self.spans: list[Span] = []


class Assembler:
    """Groups spans into traces; a trace is complete ``trace_timeout_s`` after its last span."""

    def __init__(
        self,
        sink: TraceSink,
        *,
        trace_timeout_s: float = 10.0,
        max_spans: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
        recent_traces: int = 100_000,
        tick_interval_s: float | None = None,
    ) -> None:
        """Args:
        sink: receives complete traces (called from the tick thread and submitting threads).
        trace_timeout_s: quiet time after a trace's last span before it is complete.
        max_spans: buffered spans past which the oldest traces are finished early.
        clock: monotonic seconds; injectable for tests.
        recent_traces: completed trace ids remembered to recognise late spans.
        tick_interval_s: period of the background thread (default: timeout / 10, 50 ms..1 s).
        """
        self._sink = sink
        self._timeout_s = trace_timeout_s
        self._max_spans = max(1, max_spans)
        self._max_early = max(1, self._max_spans // 10)
        self._clock = clock
        self._recent_cap = max(0, recent_traces)
        self._interval_s = tick_interval_s or min(1.0, max(0.05, trace_timeout_s / 10))
        self._pending: OrderedDict[bytes, _Pending] = OrderedDict()
        self._recent: dict[bytes, None] = {}
        self._names: dict[str, str] = {}
        self._shared_attributes: dict[tuple[tuple[str, AttrValue], ...], dict[str, AttrValue]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._early_in_flight = 0
        self.buffered_spans = 0
        self.spans_received = 0
        self.spans_rejected = 0
        self.traces_completed = 0
        self.traces_finished_early = 0
        self.spans_finished_early = 0
        self.traces_flushed = 0
        self.late_spans = 0
        self.late_traces = 0
        self.sink_errors = 0

    @property
    def buffered_traces(self) -> int:
        """Traces waiting for their timeout."""
        return len(self._pending)

    def submit(self, spans: Sequence[Span]) -> None:
        """Buffer spans (``SpanSink``).

        Raises:
            Overloaded: closed, or over budget while early finishing is already saturated.
        """
        with self._lock:
            over = self.buffered_spans + len(spans) > self._max_spans
            if self._closed or (over and self._early_in_flight >= self._max_early):
                self.spans_rejected += len(spans)
                raise Overloaded("closed" if self._closed else "trace buffer full")
            self._add(spans, self._clock())
            early = self._finish_early() if self.buffered_spans > self._max_spans else []
            early_spans = sum(len(t) for t, _ in early)
            self._early_in_flight += early_spans
        try:
            self._emit(early)
        finally:
            with self._lock:
                self._early_in_flight -= early_spans

    def tick(self) -> int:
        """Emit every trace whose last span arrived ``trace_timeout_s`` ago; return how many."""
        deadline = self._clock() - self._timeout_s
        done: Batch = []
        with self._lock:
            pending = self._pending
            while pending:
                p = next(iter(pending.values()))
                if p.last > deadline:
                    break  # ordered by last arrival: everything after is younger
                pending.popitem(last=False)
                done.append(self._complete(p))
            self.traces_completed += len(done)
        self._emit(done)
        return len(done)

    def start(self) -> None:
        """Run ``tick`` every ``tick_interval_s`` on a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="podtrace-assembler", daemon=True
            )
            self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (waiting up to ``timeout_s``), then flush every buffered trace."""
        with self._lock:
            self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._lock:
            done = [self._complete(p) for p in self._pending.values()]
            self._pending.clear()
            self.traces_flushed += len(done)
        self._emit(done)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.tick()
            except Exception:  # the thread must survive anything a tick meets
                logger.exception("assembler tick failed")

    def _add(self, spans: Sequence[Span], now: float) -> None:
        pending = self._pending
        recent = self._recent
        names = self._names
        shared = self._shared_attributes
        if len(names) > _MAX_SHARED:
            names.clear()
        if len(shared) > _MAX_SHARED:
            shared.clear()
        last_tid = None
        shared_tid = b""
        append = None
        for s in spans:
            tid = s.trace_id
            if tid != last_tid:  # a batch usually holds a trace's spans next to each other
                p = pending.get(tid)
                if p is None:
                    p = pending[tid] = _Pending(tid, tid in recent, now)
                elif p.last != now:
                    p.last = now
                    pending.move_to_end(tid)
                last_tid = shared_tid = p.trace_id
                append = p.spans.append
            s.trace_id = shared_tid  # share one bytes object per trace
            # Buffered spans share equal names and attribute dicts: memory, not speed.
            s.name = names.setdefault(s.name, s.name)
            attrs = s.attributes
            if not attrs:
                s.attributes = _NO_ATTRIBUTES
            elif len(attrs) < 4:  # http.request.method + http.route are the common case
                try:
                    s.attributes = shared.setdefault(tuple(attrs.items()), attrs)
                except TypeError:  # an unhashable value from a lenient decoder: keep it as is
                    pass
            append(s)  # type: ignore[misc]
        self.buffered_spans += len(spans)
        self.spans_received += len(spans)

    def _finish_early(self) -> Batch:
        out: Batch = []
        pending = self._pending
        while self.buffered_spans > self._max_spans and pending:
            _, p = pending.popitem(last=False)
            out.append(self._complete(p))
            self.traces_finished_early += 1
            self.spans_finished_early += len(p.spans)
        return out

    def _complete(self, p: _Pending) -> tuple[list[Span], bool]:
        self.buffered_spans -= len(p.spans)
        if p.late:
            self.late_traces += 1
            self.late_spans += len(p.spans)
        recent = self._recent
        recent[p.trace_id] = None
        if len(recent) > self._recent_cap:
            del recent[next(iter(recent))]
        return p.spans, p.late

    def _emit(self, traces: Batch) -> None:
        for spans, late in traces:
            try:
                self._sink.on_trace(spans, late=late)
            except Exception:
                with self._lock:
                    self.sink_errors += 1
                logger.exception("trace sink failed on a trace of %d spans", len(spans))
