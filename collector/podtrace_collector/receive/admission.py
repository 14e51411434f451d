"""Admission control shared by both OTLP receivers: refuse early, retryably, and count it.

Two bounds, both derived from the memory budget, so that overload is answered at once instead of
queueing without end (latency) or growing the process (memory):

* **exports in progress** (decoding and handing on, or waiting for a receiver's worker thread):
  at most ``export_limit(memory_limit, max_body_bytes)``, as many of the largest requests as fit
  in the budget (between 8 and 1024).  Past it an export is refused with ``Busy`` before its body
  is decoded: HTTP ``429`` + ``Retry-After``, gRPC ``RESOURCE_EXHAUSTED`` + ``RetryInfo``.
* **OTLP/HTTP body bytes being received**: at most the memory budget; a body that would pass it
  is refused the same way (and the rest of it read and discarded, so the client reads the answer).

Refusals are counted by the receivers (``podtrace_otlp_requests_total{outcome="busy"}``).
"""

from __future__ import annotations

import threading

from podtrace_collector.errors import Busy

MIN_EXPORTS = 8
MAX_EXPORTS = 1024


def export_limit(memory_limit_bytes: int, max_body_bytes: int) -> int:
    """How many exports may be in progress at once: the budget over the largest request."""
    return max(MIN_EXPORTS, min(MAX_EXPORTS, memory_limit_bytes // max(1, max_body_bytes)))


class Admission:
    """Counts exports in progress and body bytes being received; thread-safe.

    Args:
        max_exports: exports in progress at once (``export_limit``).
        max_body_bytes: OTLP/HTTP body bytes held while being received, all requests together.
        retry_after_s: the delay refused clients are asked to wait.
    """

    def __init__(
        self, *, max_exports: int, max_body_bytes: int, retry_after_s: float = 1.0
    ) -> None:
        self.max_exports = max_exports
        self.max_body_bytes = max_body_bytes
        self.retry_after_s = retry_after_s
        self._exports = 0
        self._body_bytes = 0
        self._lock = threading.Lock()

    @property
    def exports(self) -> int:
        """Exports in progress now."""
        return self._exports

    @property
    def body_bytes(self) -> int:
        """Body bytes being received now."""
        return self._body_bytes

    def full(self) -> bool:
        """Whether a new export would be refused now."""
        return self._exports >= self.max_exports

    def try_enter(self) -> bool:
        """Admit one export (``leave`` when it is done); ``False``: refuse it with ``busy()``."""
        with self._lock:
            if self._exports >= self.max_exports:
                return False
            self._exports += 1
            return True

    def enter(self) -> None:
        """Count an export that is taken regardless (grpcio already queued it)."""
        with self._lock:
            self._exports += 1

    def leave(self) -> None:
        """An admitted export is done."""
        with self._lock:
            self._exports -= 1

    def hold_bytes(self, n: int) -> bool:
        """Hold ``n`` more body bytes; ``False`` (nothing held) past the bound."""
        with self._lock:
            if self._body_bytes + n > self.max_body_bytes:
                return False
            self._body_bytes += n
            return True

    def release_bytes(self, n: int) -> None:
        """Give back body bytes held with ``hold_bytes``."""
        with self._lock:
            self._body_bytes -= n

    def busy(self) -> Busy:
        """The refusal for an export that is not admitted."""
        return Busy(
            f"too many exports in progress ({self.max_exports}); retry later",
            retry_after_s=self.retry_after_s,
        )
