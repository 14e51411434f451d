"""One request waiting for the rest of its trace (``analyse.pairing``): what its time samples
are computed from, and what it counts as (an entry point or a call) once its caller comes or not.

Kept small: up to 50,000 wait at once (``pairing.MAX_WAITING``), about 0.8 KB each with their
table entries (``bench/bench_pipeline.py``).
"""

from __future__ import annotations

import sys

from podtrace_collector.analyse.critical import Summary
from podtrace_collector.analyse.requests import Request, WorkloadRev, split_times

TableKey = tuple[bytes, bytes]  # (trace id, span id)


class Waiting:
    """One request whose time samples wait for the rest of its trace.

    Attributes:
        bucket, key: where its samples go: its fragment's minute and its workload-revision.
        start_ns, end_ns, caller_wait_ns, caller, waits: what its times are computed from
            (``waits`` is ``None`` once only its caller is missing: ``waited_ns`` then holds
            their union, which cannot change any more).
        deadline: when it is handed back as it is.
        open: open ends left; 0 once paired, expired or flushed.
        self_ms, own_ms, transit_ms: its times, set when it is handed back.
        operation, user, summary: for an orphan whose entry-or-call counts wait with it
            (``defer``): its entry operation, ``enduser.id`` and critical-path summary, to
            count it as an entry point if its caller never comes; ``operation`` is ``None``
            for every other request.
        edge_from: the workload of its parent request once its caller came ("" before): it
            is then counted as a call on that edge instead (a failed orphan is not deferred:
            its failures are attributed with its fragment, ``analyzer._add_request``).
    """

    __slots__ = (
        "bucket",
        "caller",
        "caller_revision",
        "caller_wait_ns",
        "deadline",
        "edge_from",
        "end_ns",
        "key",
        "keys",
        "open",
        "operation",
        "own_ms",
        "self_ms",
        "start_ns",
        "summary",
        "transit_ms",
        "user",
        "waited_ns",
        "waits",
    )

    def __init__(self, bucket: int, r: Request) -> None:
        self.bucket = bucket
        self.key: WorkloadRev = r.key
        self.start_ns = r.span.start_ns
        self.end_ns = r.span.end_ns
        self.caller_wait_ns = r.caller_wait_ns
        self.caller = r.caller_workload
        self.caller_revision = r.caller_revision
        self.waits: list[tuple[int, int]] | None = list(r.waits) if r.waits else []
        self.waited_ns = 0
        self.deadline = 0.0
        self.open = 0
        self.keys: list[TableKey] = []  # its entries in the tables, removed when it leaves
        self.self_ms = self.own_ms = self.transit_ms = 0.0
        self.operation: str | None = None
        self.user: str | None = None
        self.summary: Summary | None = None
        self.edge_from = ""

    def defer(self, operation: str, user: str | None, summary: Summary | None) -> None:
        """Count the orphan as an entry point, or as a call, when it is handed back."""
        own = (self.end_ns - self.start_ns, 0)
        if summary is not None and len(summary) == 1 and summary.get(self.key) == own:
            summary = None  # its own time, all of it: what ``None`` says, in no memory
        # One copy per name among the thousands waiting (freed with the last of them).
        self.operation = sys.intern(operation)
        self.user, self.summary = user, summary

    def finish(self) -> None:
        self.open = 0
        waits = self.waits if self.waits is not None else [(0, self.waited_ns)]
        self.self_ms, self.own_ms, self.transit_ms = split_times(
            self.start_ns, self.end_ns, self.caller_wait_ns, bool(self.caller), waits
        )
        self.waits = None  # it may stay queued until its deadline: keep it small
