"""The cap on workload-revisions first seen per minute (``--max-new-revisions``).

Every workload-revision the analysis registers becomes a row of the store's registry, which
every query reads; one OTLP request can name thousands of made-up workloads.  ``RevisionCap``
remembers the workload-revisions already registered (seeded from the store at start) and admits
at most ``per_minute`` new ones in each minute of wall-clock time.  A trace is admitted whole or
not at all: the ``Analyzer`` counts a refused trace in the minute's totals and records nothing
else of it (see docs/collector.md).  A refused workload-revision is registered by a later trace
once the next minute's allowance opens, so a real burst of new revisions is only delayed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable

from podtrace_collector.aggregate.stats import WorkloadRev

logger = logging.getLogger(__name__)

WINDOW_S = 60.0
# A workload-revision with no span for this long is forgotten (and counts as new if it returns),
# so that the memory of known ones stays bounded by what was active lately.
FORGET_AFTER_S = 86_400.0
SWEEP_EVERY_S = 3_600.0


class RevisionCap:
    """Admits traces whose new workload-revisions fit this minute's allowance; not thread-safe.

    Args:
        per_minute: the most workload-revisions first seen per minute.
        known: workload-revisions already registered (the store's registry).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        per_minute: int,
        *,
        known: Iterable[WorkloadRev] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        now = clock()
        self._seen: dict[WorkloadRev, float] = dict.fromkeys(known, now)
        self._window_start = now
        self._swept_at = now
        self._admitted = 0  # new ones admitted in the current window
        self.registered = 0  # new workload-revisions admitted, in all
        self._warned = False

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, keys: Collection[WorkloadRev]) -> bool:
        """Whether a trace naming ``keys`` may be analysed; if so its new keys are registered."""
        now = self._clock()
        if now - self._window_start >= WINDOW_S:
            self._window_start, self._admitted, self._warned = now, 0, False
            if now - self._swept_at >= SWEEP_EVERY_S:
                self._sweep(now)
        seen = self._seen
        new = [key for key in keys if key not in seen]
        if self._admitted + len(new) > self.per_minute:
            self._warn(new)
            return False
        self._admitted += len(new)
        self.registered += len(new)
        for key in keys:
            seen[key] = now
        return True

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        stale = [key for key, at in self._seen.items() if now - at >= FORGET_AFTER_S]
        for key in stale:
            del self._seen[key]

    def _warn(self, new: list[WorkloadRev]) -> None:
        if self._warned:
            return
        self._warned = True  # once a minute: every refused trace is counted anyway
        logger.warning(
            "more new workload-revisions than --max-new-revisions allows this minute: traces "
            "naming further new ones are counted, not analysed",
            extra={"max_new_revisions": self.per_minute, "example": "@".join(new[0])},
        )
