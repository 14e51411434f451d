"""Test helpers for analyse.critical: a brute-force oracle and generators of traces.

``oracle_shares`` recomputes the critical path of every request on its own, straight from the
SPEC §5 wording: it builds each request's subtree from the spans' parent ids, clips it top-down
and walks it recursively.  No reuse between requests, no re-walk budget: slow, obviously right,
and fine for the small traces Hypothesis makes.

``messy_trace`` draws arbitrary small traces (any kinds, overlapping, skewed, negative and
zero-length spans, several roots); ``Program`` describes well-nested traces of sequential work
and parallel calls, built with one workload's time stretched by a factor.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st
from podtrace_collector.analyse.requests import WorkloadRev, analyse_trace
from podtrace_collector.analyse.workload import workload_of
from podtrace_collector.model import (
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_INTERNAL,
    KIND_PRODUCER,
    KIND_SERVER,
    Resource,
    Span,
)

from tests.collector.analyse.tracebuilder import Trace, deployment

# span id of a request -> {workload@revision: (critical ns, hops)}
SharesById = dict[bytes, dict[WorkloadRev, tuple[int, int]]]

RESOURCES = [
    deployment("shop", "frontend", "fe1"),
    deployment("shop", "cart", "cart1"),
    deployment("shop", "cart", "cart2"),
    deployment("shop", "payment", "pay1"),
]


def _key(span: Span) -> WorkloadRev:
    info = workload_of(span.resource)
    return (info.workload, info.revision)


def _end(span: Span) -> int:
    return max(span.end_ns, span.start_ns)


def oracle_shares(spans: list[Span]) -> SharesById:
    """Every request's shares, each request walked on its own (unique span ids assumed)."""
    by_id = {s.span_id: s for s in spans}
    depth = {r.span.span_id: r.depth for r in analyse_trace(spans).requests}
    children: dict[bytes, list[Span]] = defaultdict(list)
    for s in spans:
        if s.parent_id in by_id:
            children[s.parent_id].append(s)

    def nearest_depth(s: Span) -> int:
        while s.span_id not in depth:
            s = by_id[s.parent_id]
        return depth[s.span_id]

    def owner(s: Span) -> tuple[WorkloadRev, int]:
        if s.span_id in depth:
            return _key(s), depth[s.span_id]
        called = [c for c in children[s.span_id] if c.span_id in depth and c.kind != KIND_CONSUMER]
        if s.kind == KIND_CLIENT and called:
            callee = min(called, key=lambda c: (-_end(c), c.span_id))
            return _key(callee), depth[callee.span_id]
        return _key(s), nearest_depth(s)

    def walk(s: Span, lo: int, hi: int, out: dict[WorkloadRev, tuple[int, int]]) -> None:
        kids = []
        for c in children[s.span_id]:
            c_lo, c_hi = max(c.start_ns, lo), min(_end(c), hi)
            if c.kind != KIND_CONSUMER and c_hi > c_lo:
                kids.append((c_hi, c_lo, c))
        kids.sort(key=lambda k: (-k[0], k[2].start_ns, k[2].span_id))
        t, own = hi, 0
        for c_hi, c_lo, c in kids:
            if c_hi <= t:
                own += t - c_hi
                walk(c, c_lo, c_hi, out)
                t = c_lo
        own += t - lo
        if own or s.span_id in depth:
            key, d = owner(s)
            ns, best = out.get(key, (0, d))
            out[key] = (ns + own, min(best, d))

    result: SharesById = {}
    for sid, d in depth.items():
        s = by_id[sid]
        out: dict[WorkloadRev, tuple[int, int]] = {}
        walk(s, s.start_ns, _end(s), out)
        result[sid] = {k: (ns, hop - d) for k, (ns, hop) in out.items() if ns > 0}
    return result


@st.composite
def messy_trace(draw: st.DrawFn, max_spans: int = 24) -> list[Span]:
    """Any small trace: random parents, kinds, resources and times (in whole ms, so ties abound)."""
    t = Trace()
    n = draw(st.integers(1, max_spans))
    kinds = st.sampled_from(
        [KIND_SERVER, KIND_CLIENT, KIND_INTERNAL, KIND_CONSUMER, KIND_PRODUCER, KIND_CLIENT]
    )
    for i in range(n):
        parent_at = draw(st.integers(-1, i - 1)) if i else -1
        t.span(
            draw(st.sampled_from(RESOURCES)),
            f"s{i}",
            draw(kinds),
            parent=t.spans[parent_at] if parent_at >= 0 else None,
            start_ms=draw(st.integers(0, 30)),
            dur_ms=draw(st.integers(-3, 30)),
        )
    return t.spans


@dataclass
class Call:
    """A synchronous call: network before and after, the callee's program in between."""

    callee: int  # index into RESOURCES
    before_ms: int
    after_ms: int
    program: Program


@dataclass
class Program:
    """What a request does, step by step: ``("gap", ms)`` (own time, no span), ``("work", ms)``
    (an internal span), ``("db", ms)`` (a client span with no request below) or parallel calls."""

    steps: list[tuple[str, int] | list[Call]] = field(default_factory=list)


@st.composite
def programs(draw: st.DrawFn, depth: int = 0) -> Program:
    """Programs up to three calls deep."""
    prog = Program()
    for _ in range(draw(st.integers(1, 3))):
        choice = draw(
            st.sampled_from(["gap", "work", "db", "calls"] if depth < 3 else ["gap", "work", "db"])
        )
        if choice != "calls":
            prog.steps.append((choice, draw(st.integers(0, 12))))
            continue
        group = [
            Call(
                draw(st.integers(0, len(RESOURCES) - 1)),
                draw(st.integers(0, 3)),
                draw(st.integers(0, 3)),
                draw(programs(depth + 1)),
            )
            for _ in range(draw(st.integers(1, 3)))
        ]
        prog.steps.append(group)
    return prog


def build_program(program: Program, stretch: Callable[[Resource, int], int]) -> list[Span]:
    """The spans of ``program`` run as a request of ``RESOURCES[0]``, every duration passed
    through ``stretch(owner resource, ms)``; span ids depend only on the program's shape."""
    t = Trace(b"\x01" * 16)
    ids = itertools.count(1)

    def run(prog: Program, res: Resource, start: int, parent_id: bytes) -> int:
        now = start
        for step in prog.steps:
            if isinstance(step, tuple):
                what, ms = step
                ms = stretch(res, ms)
                if what == "gap":
                    now += ms
                    continue
                sid = next(ids).to_bytes(8, "big")
                kind = KIND_INTERNAL if what == "work" else KIND_CLIENT
                t.span(res, what, kind, parent_id=parent_id, span_id=sid, start_ms=now, dur_ms=ms)
                now += ms
                continue
            ends = []
            for call in step:
                client_id, server_id = (next(ids).to_bytes(8, "big") for _ in range(2))
                callee = RESOURCES[call.callee]
                server_start = now + stretch(callee, call.before_ms)
                server_end = run(call.program, callee, server_start, server_id)
                t.server(callee, "serve", parent_id=client_id, span_id=server_id,
                         start_ms=server_start, dur_ms=server_end - server_start)  # fmt: skip
                end = server_end + stretch(callee, call.after_ms)
                t.span(res, "call", KIND_CLIENT, parent_id=parent_id, span_id=client_id,
                       start_ms=now, dur_ms=end - now)  # fmt: skip
                ends.append(end)
            now = max(ends)
        return now

    root_id = next(ids).to_bytes(8, "big")
    end = run(program, RESOURCES[0], 0, root_id)
    t.server(RESOURCES[0], "entry", span_id=root_id, start_ms=0, dur_ms=end)
    return t.spans
