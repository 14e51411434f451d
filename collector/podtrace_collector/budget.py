"""The memory budget shared by every stage that holds spans: forward queues, trace buffers.

A stage ``reserve``s an estimate of the bytes (and the number of spans) it is about to hold and
``release``s it when the spans leave.  Past either limit ``reserve`` raises ``Overloaded``, which
the receivers turn into retryable answers (HTTP 429, gRPC ``RESOURCE_EXHAUSTED`` with RetryInfo),
so the process sheds load instead of growing.  One lock, taken once per batch, never per span.
"""

from __future__ import annotations

import threading

from podtrace_collector.errors import Overloaded, TooLarge

# A decoded Span with its slots, ids and a small attribute dict costs about this much in CPython;
# stages that hold decoded spans (rather than encoded bytes) reserve this per span.
DECODED_SPAN_BYTES = 600


class MemoryBudget:
    """A thread-safe byte and span budget.

    Args:
        limit_bytes: the most bytes that may be reserved at once.
        limit_spans: the most spans that may be reserved at once.
        retry_after_s: the delay suggested to refused clients.
    """

    def __init__(self, limit_bytes: int, limit_spans: int, *, retry_after_s: float = 1.0) -> None:
        self.limit_bytes = limit_bytes
        self.limit_spans = limit_spans
        self.retry_after_s = retry_after_s
        self._used_bytes = 0
        self._used_spans = 0
        self._lock = threading.Lock()

    @property
    def used_bytes(self) -> int:
        """Bytes currently reserved."""
        return self._used_bytes

    @property
    def used_spans(self) -> int:
        """Spans currently reserved."""
        return self._used_spans

    def reserve(self, n_bytes: int, n_spans: int) -> None:
        """Reserve room for ``n_spans`` spans taking ``n_bytes``, all or nothing.

        Raises:
            Overloaded: the reservation would exceed a limit; nothing was reserved.
            TooLarge: the reservation exceeds a limit on its own: it could never be granted.
        """
        if n_bytes > self.limit_bytes or n_spans > self.limit_spans:
            raise TooLarge(
                f"a request of {n_spans} spans ({n_bytes} bytes buffered) is larger than the"
                f" whole buffer budget ({self.limit_spans} spans, {self.limit_bytes} bytes);"
                " send smaller batches"
            )
        with self._lock:
            if self._used_bytes + n_bytes > self.limit_bytes:
                raise Overloaded(
                    f"memory budget exhausted ("
                    f"{self._used_bytes} of {self.limit_bytes} bytes held)",
                    retry_after_s=self.retry_after_s,
                )
            if self._used_spans + n_spans > self.limit_spans:
                raise Overloaded(
                    f"span budget exhausted ({self._used_spans} of {self.limit_spans} spans held)",
                    retry_after_s=self.retry_after_s,
                )
            self._used_bytes += n_bytes
            self._used_spans += n_spans

    def force(self, n_bytes: int, n_spans: int) -> None:
        """Account for spans that must be held regardless (e.g. re-routed queue contents)."""
        with self._lock:
            self._used_bytes += n_bytes
            self._used_spans += n_spans

    def release(self, n_bytes: int, n_spans: int) -> None:
        """Give back what an earlier ``reserve`` or ``force`` took."""
        with self._lock:
            self._used_bytes = max(0, self._used_bytes - n_bytes)
            self._used_spans = max(0, self._used_spans - n_spans)
