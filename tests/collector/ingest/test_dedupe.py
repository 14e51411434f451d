"""Duplicate suppression: each (trace id, span id) once, in bounded memory."""

from __future__ import annotations

from podtrace_collector.ingest.dedupe import Deduplicator
from podtrace_collector.model import Resource, Span

RESOURCE = Resource({})


def _span(trace: int, span: int) -> Span:
    return Span(
        trace.to_bytes(16, "big"), span.to_bytes(8, "big"), b"", "op", 2, 0, 1, 0, {}, RESOURCE
    )


def test_filters_repeats_across_and_within_batches() -> None:
    """A repeat, even within one batch, is dropped; the same span id in another trace is not."""
    dedupe = Deduplicator()
    first = [_span(1, 1), _span(1, 2), _span(1, 2)]
    assert dedupe.filter(first) == first[:2]
    assert [s.trace_id[-1] for s in dedupe.filter([_span(1, 1), _span(3, 1)])] == [3]


def test_forget_undoes_a_refused_batch() -> None:
    """Spans of a refused request are forgotten, so the client's retry is not a duplicate."""
    dedupe = Deduplicator()
    batch = [_span(1, 1), _span(1, 2)]
    dedupe.filter(batch)
    dedupe.forget(batch)
    assert len(dedupe.filter(batch)) == 2


def test_memory_is_bounded_by_capacity() -> None:
    """Never more than capacity ids (plus one batch) are remembered; recent ones still are."""
    dedupe = Deduplicator(capacity=100)
    for i in range(1000):
        dedupe.filter([_span(i, 1)])
        assert len(dedupe) <= 101
    assert dedupe.filter([_span(999, 1)]) == []
    assert len(dedupe.filter([_span(0, 1)])) == 1


def test_window_rotates_with_time() -> None:
    """After two windows an id is forgotten; within one it is remembered."""
    now = [0.0]
    dedupe = Deduplicator(window_s=10.0, clock=lambda: now[0])
    dedupe.filter([_span(1, 1)])
    now[0] = 11.0
    assert dedupe.filter([_span(1, 1)]) == []
    now[0] = 22.0
    dedupe.filter([])
    now[0] = 33.0
    assert len(dedupe.filter([_span(1, 1)])) == 1
