"""A simulated shop's traffic for verdict scenarios, with faults injected on one revision's pods.

    from tests.collector.shopsim import BOUTIQUE, Fault, Rollout, simulate

A shop is a call graph (``Service``: its own work and the services it calls, each with a
probability).  ``simulate`` runs entry requests at a fixed rate over some minutes and returns
``Call`` trees with explicit times: every request's server span, and the caller's CLIENT span
around it.  Each service runs one revision at a time (``Rollout``: from a minute on, a new
revision, with a ``Fault`` or none), and a fault acts on that revision's pods as it would on a
real cluster:

* ``own`` — CPU contention or a CPU hog: its own work takes this many times longer (jitter grows
  with it), and a starved pod also notices its calls' answers late (``stretch_ms`` added to its
  CLIENT spans after the answer arrived);
* ``delay_ms`` — network delay on its pods: every packet in and out is late, so calls to it
  (between the caller's CLIENT span and its server span) and from it take longer.

``spans`` turns the trees into ``Span`` objects (for the analysis in-process); ``emit`` sends them
through real OpenTelemetry SDK tracers.  Times are deterministic for a seed.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from opentelemetry.trace import SpanKind, Tracer, set_span_in_context
from podtrace_collector.model import KIND_CLIENT, KIND_SERVER, STATUS_UNSET, Resource, Span

from tests.collector.analyse.tracebuilder import deployment

MS = 1_000_000
NAMESPACE = "shop"
_NET_MS = 0.3  # one-way network between two healthy pods
_DB_MS = 1.5


@dataclass(frozen=True)
class Service:
    own_ms: float
    calls: tuple[tuple[str, float], ...] = ()  # (callee, probability), called in this order
    db_calls: int = 0


@dataclass(frozen=True)
class Fault:
    name: str
    own: float = 1.0
    stretch_ms: float = 0.0
    delay_ms: float = 0.0


NONE = Fault("unchanged")
CPU_CONTENTION = Fault("cpu contention", own=2.5, stretch_ms=3.0)
CPU_HOG = Fault("cpu hog", own=6.0, stretch_ms=25.0)
NETWORK_DELAY = Fault("network delay", delay_ms=30.0)
FAULTS = (CPU_CONTENTION, CPU_HOG, NETWORK_DELAY)


@dataclass(frozen=True)
class Rollout:
    service: str
    minute: int
    fault: Fault = NONE
    revision: str = "new0000"


# The demo shop of the microservice benchmarks: a frontend fanning out, checkout calling the
# low-traffic services (payment, email) once per order.
BOUTIQUE = {
    "frontend": Service(
        4.0,
        (
            ("productcatalog", 1.0),
            ("currency", 1.0),
            ("cart", 1.0),
            ("recommendation", 0.5),
            ("ad", 0.5),
            ("checkout", 0.15),
        ),
    ),
    "recommendation": Service(3.0, (("productcatalog", 1.0),)),
    "checkout": Service(
        5.0,
        (
            ("cart", 1.0),
            ("currency", 1.0),
            ("shipping", 1.0),
            ("payment", 1.0),
            ("email", 1.0),
        ),
    ),
    "cart": Service(2.0, db_calls=1),
    "productcatalog": Service(3.0),
    "currency": Service(1.0),
    "shipping": Service(2.0),
    "payment": Service(4.0),
    "email": Service(6.0),
    "ad": Service(2.0),
}


@dataclass
class Call:
    """A request: its server span, the caller's CLIENT span around it, what it called."""

    service: str
    revision: str
    start_ns: int
    end_ns: int
    client: tuple[int, int] | None
    children: list[Call] = field(default_factory=list)
    db: list[tuple[int, int]] = field(default_factory=list)


class _Sim:
    def __init__(self, shop: dict[str, Service], rollouts: list[Rollout], t0_ns: int, seed: int):
        self.shop, self.t0_ns, self.rng = shop, t0_ns, random.Random(seed)
        self.rollouts = {r.service: r for r in rollouts}

    def pod(self, service: str, t_ns: int) -> tuple[str, Fault]:
        r = self.rollouts.get(service)
        if r is not None and t_ns >= self.t0_ns + r.minute * 60 * 10**9:
            return r.revision, r.fault
        return "old0000", NONE

    def jitter(self, sigma: float = 0.25) -> float:
        return math.exp(self.rng.gauss(0.0, sigma))

    def serve(self, service: str, start_ns: int, client: tuple[int, int] | None) -> Call:
        revision, fault = self.pod(service, start_ns)
        spec = self.shop[service]
        own_ns = int(spec.own_ms * fault.own * self.jitter(0.25 * math.sqrt(fault.own)) * MS)
        call = Call(service, revision, start_ns, 0, client)
        now = start_ns + own_ns // 2
        for callee, p in spec.calls:
            if self.rng.random() < p:
                now = self._call(call, fault, callee, now)
        for _ in range(spec.db_calls):
            end = now + int(_DB_MS * self.jitter() * MS)
            call.db.append((now, end))
            now = end
        call.end_ns = now + own_ns - own_ns // 2
        return call

    def _call(self, caller: Call, fault: Fault, callee: str, start_ns: int) -> int:
        _, callee_fault = self.pod(callee, start_ns)
        delay_ms = fault.delay_ms + callee_fault.delay_ms  # both pods' networks
        out_ns = int((_NET_MS * self.jitter() + delay_ms) * MS)
        child = self.serve(callee, start_ns + out_ns, None)
        back_ns = int((_NET_MS * self.jitter() + delay_ms + fault.stretch_ms * self.jitter()) * MS)
        child.client = (start_ns, child.end_ns + back_ns)
        caller.children.append(child)
        return child.client[1]


def simulate(
    shop: dict[str, Service],
    rollouts: list[Rollout],
    *,
    t0_s: int,
    minutes: int,
    per_minute: int,
    entry: str = "frontend",
    seed: int = 1,
) -> list[Call]:
    """``per_minute`` entry requests a minute for ``minutes`` from ``t0_s`` (Unix seconds)."""
    sim = _Sim(shop, rollouts, t0_s * 10**9, seed)
    step_ns = 60 * 10**9 // per_minute
    return [
        sim.serve(entry, t0_s * 10**9 + i * step_ns + sim.rng.randrange(step_ns // 2), None)
        for i in range(minutes * per_minute)
    ]


def walk(call: Call) -> Iterator[Call]:
    yield call
    for child in call.children:
        yield from walk(child)


_ids = itertools.count(1)


def spans(calls: list[Call]) -> list[list[Span]]:
    """Each tree as the ``Span`` objects of one trace (resources shared per revision)."""
    resources: dict[tuple[str, str], Resource] = {}

    def resource(service: str, revision: str) -> Resource:
        key = (service, revision)
        if key not in resources:
            resources[key] = deployment(NAMESPACE, service, revision)
        return resources[key]

    out = []
    for root in calls:
        trace_id = next(_ids).to_bytes(16, "big")
        trace: list[Span] = []
        _spans(root, trace_id, b"", "", "", trace, resource)
        out.append(trace)
    return out


def _spans(
    call: Call,
    trace_id: bytes,
    parent_id: bytes,
    caller: str,
    caller_rev: str,
    out: list[Span],
    resource: Callable[[str, str], Resource],
) -> None:
    if call.client is not None:
        client_id = next(_ids).to_bytes(8, "big")
        out.append(_span(trace_id, client_id, parent_id, f"call {call.service}", KIND_CLIENT,
                         call.client, resource(caller, caller_rev)))  # fmt: skip
        parent_id = client_id
    server_id = next(_ids).to_bytes(8, "big")
    here = resource(call.service, call.revision)
    out.append(_span(trace_id, server_id, parent_id, "GET /", KIND_SERVER,
                     (call.start_ns, call.end_ns), here))  # fmt: skip
    for interval in call.db:
        db = _span(trace_id, next(_ids).to_bytes(8, "big"), server_id, "GET cart", KIND_CLIENT,
                   interval, here)  # fmt: skip
        db.attributes = {"db.system": "redis"}
        out.append(db)
    for child in call.children:
        _spans(child, trace_id, server_id, call.service, call.revision, out, resource)


def _span(
    trace_id: bytes,
    span_id: bytes,
    parent_id: bytes,
    name: str,
    kind: int,
    interval: tuple[int, int],
    res: Resource,
) -> Span:
    return Span(trace_id, span_id, parent_id, name, kind, interval[0], interval[1],
                STATUS_UNSET, {}, res)  # fmt: skip


def emit(call: Call, tracers: Callable[[str, str], Tracer]) -> None:
    """Send one tree through real SDK tracers (``tracers(service, revision)``)."""
    _emit(call, None, "", "", tracers)


def _emit(
    call: Call,
    parent: object,
    caller: str,
    caller_rev: str,
    tracers: Callable[[str, str], Tracer],
) -> None:
    ctx = set_span_in_context(parent) if parent is not None else None  # type: ignore[arg-type]
    client = None
    if call.client is not None:
        client = tracers(caller, caller_rev).start_span(
            f"call {call.service}", context=ctx, kind=SpanKind.CLIENT, start_time=call.client[0]
        )
        ctx = set_span_in_context(client)
    server = tracers(call.service, call.revision).start_span(
        "GET /", context=ctx, kind=SpanKind.SERVER, start_time=call.start_ns
    )
    inner = set_span_in_context(server)
    for start, end in call.db:
        db = tracers(call.service, call.revision).start_span(
            "GET cart", context=inner, kind=SpanKind.CLIENT, start_time=start,
            attributes={"db.system": "redis"},
        )  # fmt: skip
        db.end(end_time=end)
    for child in call.children:
        _emit(child, server, call.service, call.revision, tracers)
    server.end(end_time=call.end_ns)
    if client is not None:
        client.end(end_time=call.client[1])  # type: ignore[index]
