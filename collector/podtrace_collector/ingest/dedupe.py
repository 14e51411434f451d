"""Duplicate span suppression: the same (trace id, span id) is handed on once.

OTLP clients retry a whole request when an answer is lost or retryable, so a span can arrive two
or more times.  ``Deduplicator`` remembers recently seen ids in two generations of sets: ids are
added to the current generation; when it holds ``capacity // 2`` ids, or is older than
``window_s``, it becomes the previous generation and the old previous one is discarded.  Memory is
therefore bounded by ``capacity`` ids (about 100 bytes each in CPython), and any id is remembered
for at least ``min(window_s, the time it takes to receive capacity/2 spans)``.  Retries come within
seconds, so the defaults (one million ids, ten minutes) catch them at any realistic rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from podtrace_collector.model import Span

DEFAULT_CAPACITY = 1_000_000
DEFAULT_WINDOW_S = 600.0


class Deduplicator:
    """Filters spans already seen, in bounded memory; thread-safe.

    Args:
        capacity: the most ids remembered at once (both generations together).
        window_s: the longest a generation stays current.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        window_s: float = DEFAULT_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._half = max(1, capacity // 2)
        self._window_s = window_s
        self._clock = clock
        self._current: set[bytes] = set()
        self._previous: set[bytes] = set()
        self._rotated_at = clock()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def filter(self, spans: Sequence[Span]) -> list[Span]:
        """Return the spans not seen before (in order) and remember their ids."""
        keys = [span.trace_id + span.span_id for span in spans]
        batch = set(keys)
        with self._lock:
            self._maybe_rotate()
            current, previous = self._current, self._previous
            # The common case, no duplicate at all, in bulk set operations (C loops; each key's
            # hash is computed once and cached by the bytes object).
            if len(batch) == len(keys) and current.isdisjoint(batch) and previous.isdisjoint(batch):
                current |= batch
                return list(spans)
            fresh: list[Span] = []
            append = fresh.append
            add = current.add
            for span, key in zip(spans, keys, strict=True):
                if key in current or key in previous:
                    continue
                add(key)
                append(span)
        return fresh

    def forget(self, spans: Sequence[Span]) -> None:
        """Undo ``filter`` for spans that were not handed on after all (refused requests)."""
        with self._lock:
            for span in spans:
                key = span.trace_id + span.span_id
                self._current.discard(key)
                self._previous.discard(key)

    def _maybe_rotate(self) -> None:
        now = self._clock()
        if len(self._current) >= self._half or now - self._rotated_at >= self._window_s:
            self._previous = self._current
            self._current = set()
            self._rotated_at = now
