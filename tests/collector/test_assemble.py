"""Tests for assemble: grouping spans into traces, timeouts, bounds, late spans, shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from podtrace_collector.analyse.analyzer import Analyzer
from podtrace_collector.assemble import Assembler
from podtrace_collector.errors import Overloaded
from podtrace_collector.model import Span

from tests.collector.analyse.tracebuilder import Trace, deployment, summarize

FE = deployment("shop", "frontend", "fe1")
CART = deployment("shop", "cart", "cart1")


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A TraceSink that keeps what it receives."""

    def __init__(self) -> None:
        self.traces: list[tuple[list[Span], bool]] = []

    def on_trace(self, spans: Sequence[Span], *, late: bool) -> None:
        self.traces.append((list(spans), late))

    @property
    def names(self) -> list[tuple[list[str], bool]]:
        return [(sorted(s.name for s in spans), late) for spans, late in self.traces]


def trace(*names: str) -> Trace:
    """A trace with one server span per name, all roots."""
    t = Trace()
    for name in names:
        t.server(FE, name)
    return t


def make(**kw: object) -> tuple[Assembler, Recorder, Clock]:
    sink, clock = Recorder(), Clock()
    options: dict[str, object] = {"trace_timeout_s": 10.0, "max_spans": 1000, **kw}
    return Assembler(sink, clock=clock, **options), sink, clock  # type: ignore[arg-type]


def test_complete_after_timeout_since_last_span() -> None:
    """A trace is emitted trace_timeout after its last span, not its first."""
    asm, sink, clock = make()
    t = trace("a", "b")
    asm.submit(t.spans[:1])
    clock.now += 8
    asm.submit(t.spans[1:])
    clock.now += 8
    assert asm.tick() == 0 and asm.buffered_traces == 1
    clock.now += 2
    assert asm.tick() == 1
    assert sink.names == [(["a", "b"], False)]
    assert (asm.buffered_spans, asm.traces_completed, asm.spans_received) == (0, 1, 2)


def test_interleaved_traces_are_grouped() -> None:
    """Spans of several traces arriving mixed come out grouped by trace id."""
    asm, sink, clock = make()
    one, two = trace("1a", "1b"), trace("2a", "2b")
    asm.submit([one.spans[0], two.spans[0]])
    asm.submit([two.spans[1], one.spans[1]])
    clock.now += 10
    assert asm.tick() == 2
    assert sorted(sink.names) == [(["1a", "1b"], False), (["2a", "2b"], False)]


def test_spans_of_a_trace_share_one_trace_id_object() -> None:
    """Buffered spans of one trace hold the same bytes object (memory)."""
    asm, sink, clock = make()
    t = trace("a", "b", "c")
    for s in t.spans:
        s.trace_id = bytes(bytearray(s.trace_id))  # distinct objects, as a decoder makes them
        asm.submit([s])
    clock.now += 10
    asm.tick()
    ((spans, _),) = sink.traces
    assert len({id(s.trace_id) for s in spans}) == 1


def test_equal_names_and_attributes_are_shared() -> None:
    """Buffered spans share equal names and small attribute dicts; contents are unchanged."""
    asm, sink, clock = make()
    t = Trace()
    for _ in range(3):
        t.server(FE, "".join(["GE", "T /x"]), method="GET", route="/x")
        t.server(FE, "bare")
    t.server(FE, "odd", attrs={"http.route": ["not", "hashable"]})  # type: ignore[dict-item]
    asm.submit(t.spans)
    clock.now += 10
    asm.tick()
    ((spans, _),) = sink.traces
    routed = [s for s in spans if s.name == "GET /x"]
    assert len({id(s.name) for s in routed}) == 1
    assert len({id(s.attributes) for s in routed}) == 1
    assert routed[0].attributes == {"http.request.method": "GET", "http.route": "/x"}
    assert len({id(s.attributes) for s in spans if s.name == "bare"}) == 1
    assert spans[-1].attributes == {"http.route": ["not", "hashable"]}


def test_over_budget_finishes_oldest_early() -> None:
    """Past max_spans the oldest traces are finished early and counted."""
    asm, sink, clock = make(max_spans=4)
    old, mid, new = trace("o1", "o2"), trace("m1", "m2"), trace("n1")
    asm.submit(old.spans)
    clock.now += 1
    asm.submit(mid.spans)
    clock.now += 1
    asm.submit(new.spans)
    assert sink.names == [(["o1", "o2"], False)]
    assert (asm.traces_finished_early, asm.spans_finished_early, asm.buffered_spans) == (1, 2, 3)


def test_batch_larger_than_budget_is_still_accepted() -> None:
    """A single batch bigger than max_spans is taken and finished early, never refused."""
    asm, sink, _ = make(max_spans=2)
    asm.submit(trace("a", "b", "c").spans)
    assert sink.names == [(["a", "b", "c"], False)] and asm.buffered_spans == 0


def test_late_spans_are_their_own_trace() -> None:
    """Spans of a completed trace are assembled and emitted as a late trace, and counted."""
    asm, sink, clock = make()
    t = trace("a", "b", "c")
    asm.submit(t.spans[:1])
    clock.now += 10
    asm.tick()
    asm.submit(t.spans[1:])
    clock.now += 10
    asm.tick()
    assert sink.names == [(["a"], False), (["b", "c"], True)]
    assert (asm.late_spans, asm.late_traces) == (2, 1)


def test_recently_completed_set_is_bounded() -> None:
    """Only the last recent_traces completed ids are remembered."""
    asm, sink, clock = make(recent_traces=1)
    first, second = trace("f1", "f2"), trace("s1")
    asm.submit(first.spans[:1])
    asm.submit(second.spans)
    clock.now += 10
    asm.tick()
    asm.submit(first.spans[1:])  # its trace id was forgotten: a new, not-late trace
    clock.now += 10
    asm.tick()
    assert sink.names[-1] == (["f2"], False) and asm.late_spans == 0


def test_close_flushes_and_then_refuses() -> None:
    """close() emits every buffered trace; later submits raise Overloaded and are counted."""
    asm, sink, _ = make()
    asm.submit(trace("a").spans)
    asm.close()
    assert sink.names == [(["a"], False)] and asm.traces_flushed == 1
    with pytest.raises(Overloaded):
        asm.submit(trace("b").spans)
    assert asm.spans_rejected == 1


def test_sink_errors_are_counted() -> None:
    """A sink that raises is logged and counted; the assembler goes on."""

    class Broken:
        def on_trace(self, spans: Sequence[Span], *, late: bool) -> None:
            raise RuntimeError("boom")

    clock = Clock()
    asm = Assembler(Broken(), trace_timeout_s=1, max_spans=10, clock=clock)
    asm.submit(trace("a").spans)
    asm.submit(trace("b").spans)
    clock.now += 1
    assert asm.tick() == 2 and asm.sink_errors == 2


def test_sheds_when_early_finishing_is_saturated() -> None:
    """Over budget while another thread is still finishing traces early: Overloaded."""
    entered, release = threading.Event(), threading.Event()

    class Slow:
        def on_trace(self, spans: Sequence[Span], *, late: bool) -> None:
            entered.set()
            release.wait(5)

    asm = Assembler(Slow(), trace_timeout_s=10, max_spans=10, clock=Clock())
    asm.submit(trace(*"abcdefghij").spans)
    worker = threading.Thread(target=asm.submit, args=(trace("k").spans,))
    worker.start()
    assert entered.wait(5)  # the worker is busy finishing the 10-span trace early
    try:
        with pytest.raises(Overloaded):
            asm.submit(trace(*"lmnopqrstuv").spans)
    finally:
        release.set()
        worker.join(5)
    assert asm.spans_rejected == 11
    asm.submit(trace("w").spans)  # drained again: accepted


def test_background_thread_emits() -> None:
    """start() ticks on a thread with the real clock; close() stops it."""
    sink = Recorder()
    asm = Assembler(sink, trace_timeout_s=0.05, max_spans=100, tick_interval_s=0.01)
    asm.start()
    try:
        asm.submit(trace("a").spans)
        deadline = time.monotonic() + 5
        while not sink.traces and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        asm.close(timeout_s=1)
    assert sink.names == [(["a"], False)]


def test_assembled_analysis_matches_direct_summary() -> None:
    """Shuffled spans in small batches through assembly equal summarising the trace directly."""
    t = Trace()
    fe = t.server(FE, "fe", error=True, method="GET", route="/", user="u")
    for i in range(5):
        t.call(fe, CART, f"cart{i}", error=i == 3)
    analyzer, clock = Analyzer(), Clock()
    asm = Assembler(analyzer, trace_timeout_s=10, max_spans=1000, clock=clock)
    spans = t.shuffled(7)
    for i in range(0, len(spans), 3):
        asm.submit(spans[i : i + 3])
        clock.now += 1
    clock.now += 10
    asm.tick()
    bucket, expected = summarize(t.spans)
    assert analyzer.drain() == {bucket: expected}
