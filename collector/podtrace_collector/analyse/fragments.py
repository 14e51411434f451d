"""Fragments held as spans until the rest of their trace comes, to be analysed with it as one.

A trace whose spans reach the gateway further apart than ``--trace-timeout`` is analysed in
fragments (``analyse.pairing`` says why).  Pairing mends the time samples of their open ends; two
kinds of fragment need more, and are held whole, as spans, keyed by trace id, for up to
``pair_wait_s`` (``Analyzer._record``):

* a **detached** fragment (only CLIENT or INTERNAL spans, every root naming a parent elsewhere: a
  pod's batch exported between the ends of its client spans and of its server span).  Its spans
  are not requests but the calls of a request in another fragment: it is analysed together with
  the fragment that brings a parent of its roots.
* a **failing** fragment: one whose failures the rest of its trace would attribute differently
  (SPEC §4), through an open end the rest can still come by (``waits_on_failure``): a CLIENT span
  without its child request that failed or whose request failed (the callee may be the origin,
  or its failure absorbed here), or, in a fragment with a failed request, a root span naming a
  parent elsewhere, a request or not, synchronous or not (the caller may have failed with it,
  absorbed it, or be the entry point), or a PRODUCER span without its consumer (that consumer
  is no entry point).  Every later fragment of its trace joins it, and the fragments are analysed
  as one trace once no such open end is left.  So origins, propagation, containment, entry
  points and everything else of a failing trace come out as if it had arrived whole, in any
  arrival order, when its fragments come within ``pair_wait_s`` of the first one held.

An open end is not waited on when the other side was analysed already (its open client or orphan
waits in ``Pairing``): that fragment was not held, and cannot join.  A held fragment whose rest
does not come in ``pair_wait_s`` is analysed as it is (``unpaired``).  At most ``max_spans``
spans are held; a fragment that would go past is analysed at once (``overflow``).  Only traces
with failures (and detached fragments) are held, so what is held scales with the failure rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from podtrace_collector.analyse.pairing import Pairing
from podtrace_collector.analyse.requests import TraceAnalysis
from podtrace_collector.model import KIND_PRODUCER, STATUS_ERROR, Span


class Held:
    """The spans of one trace held: ``failing`` (joined by any later fragment) or detached
    (joined by a fragment holding one of ``parents``); analysed alone at ``deadline``."""

    __slots__ = ("deadline", "failing", "parents", "spans")

    def __init__(
        self, deadline: float, spans: list[Span], parents: frozenset[bytes], failing: bool
    ) -> None:
        self.deadline = deadline
        self.spans = spans
        self.parents = parents
        self.failing = failing


def waits_on_failure(trace: TraceAnalysis, clients: list[int], pairing: Pairing) -> bool:
    """Whether the rest of the trace may change how the fragment's failures are attributed, and
    may still come (module docstring); ``clients``: its open clients (``pairing.open_ends``)."""
    spans, near, tid = trace.spans, trace.span_requests, trace.trace_id
    for i in clients:
        r = near[i]
        s = spans[i]
        if (s.status == STATUS_ERROR or (r is not None and r.failed)) and not pairing.has_orphan(
            (tid, s.span_id)
        ):
            return True
    if not trace.failed:
        return False
    parents = trace.parents
    # A root naming a parent elsewhere (an orphan request, or a span above the fragment's
    # requests): its caller may have failed with it, absorbed it, or be the entry point.
    if any(
        p < 0 and (parent_id := spans[i].parent_id) and not pairing.has_client((tid, parent_id))
        for i, p in enumerate(parents)
    ):
        return True
    # A message sent and its consumer elsewhere: that consumer is no entry point.
    producers = [i for i, s in enumerate(spans) if s.kind == KIND_PRODUCER]
    return bool(producers) and not set(producers) <= set(parents)


class Fragments:
    """The fragments held, by trace id (not thread-safe: the caller locks).

    Counters: ``joined`` (held fragments analysed with a later fragment of their trace),
    ``unpaired`` (analysed alone after ``pair_wait_s`` or at a flush), ``overflow`` (not held: the
    bound was reached); ``held_spans`` is how many spans are held now.
    """

    def __init__(
        self, *, pair_wait_s: float, max_spans: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.pair_wait_s = pair_wait_s
        self.max_spans = max(0, max_spans)
        self._clock = clock
        self._held: dict[bytes, Held] = {}
        self.held_spans = 0
        self.joined = 0
        self.unpaired = 0
        self.overflow = 0

    def take(self, trace_id: bytes, spans: list[Span]) -> Held | None:
        """What is held for this trace, when ``spans`` join it (it is then no longer held)."""
        held = self._held.get(trace_id)
        if held is None or not (held.failing or any(s.span_id in held.parents for s in spans)):
            return None
        del self._held[trace_id]
        self.held_spans -= len(held.spans)
        self.joined += 1
        return held

    def hold(
        self, trace: TraceAnalysis, spans: list[Span], *, failing: bool, since: Held | None
    ) -> bool:
        """Hold the fragment ``trace`` of ``spans`` (``since``: what it was joined with, whose
        deadline it keeps); ``False`` when the bound does not allow it."""
        if self.held_spans + len(spans) > self.max_spans:
            self.overflow += 1
            return False
        deadline = since.deadline if since is not None else self._clock() + self.pair_wait_s
        parents = frozenset(r.span.parent_id for r in trace.requests if r.parent is None)
        other = self._held.pop(trace.trace_id, None)
        if other is not None:  # held and not joined (detached, its parents not in ``spans``)
            self.held_spans -= len(other.spans)
            spans = [*other.spans, *spans]
            deadline = min(deadline, other.deadline)
            parents |= other.parents
            failing |= other.failing
        self._held[trace.trace_id] = Held(deadline, spans, parents, failing)
        self.held_spans += len(spans)
        return True

    def expire(self, *, everything: bool = False) -> list[list[Span]]:
        """The fragments held ``pair_wait_s`` (or all of them), to analyse as they are."""
        now = self._clock()
        gone = [t for t, held in self._held.items() if everything or held.deadline <= now]
        out = []
        for trace_id in gone:
            held = self._held.pop(trace_id)
            self.held_spans -= len(held.spans)
            self.unpaired += 1
            out.append(held.spans)
        return out
