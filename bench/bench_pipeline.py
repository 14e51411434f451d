"""Collector throughput with assembly and analysis on, next to the raw OTLP decode rate.

Builds realistic traces (10-50 spans across 12 services, HTTP attributes, a few failures), encodes
them as OTLP protobuf export requests the way SDK batch exporters send them (one service's batch
per request, so a trace's spans arrive spread over several requests), then measures in one run:

* raw decode: ``ExportTraceServiceRequest.FromString`` + walking every span's fields;
* podtrace decode: ``parse_protobuf`` + ``extract`` (the collector's lean extraction);
* assemble + analyse: ``Assembler`` -> ``Analyzer`` over already decoded spans;
* pipeline: decode -> assemble -> analyse, end to end on one thread;
* memory per buffered span (tracemalloc), decoded spans and the assembler's own share;
* how many requests of fragmented traces were paired, and the memory of a waiting request.

Rates are spans per second of CPU time of this (single-threaded) process, best of five rounds in
which the stages alternate: the benchmark machine is shared, and wall-clock time would measure
the neighbours.
``PODTRACE_BENCH_PROFILE=1`` also prints the pipeline's top functions (cProfile).
"""

from __future__ import annotations

import cProfile
import gc
import os
import pstats
import random
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status
from podtrace_collector.analyse.analyzer import Analyzer
from podtrace_collector.assemble import Assembler
from podtrace_collector.collector import tune_gc
from podtrace_collector.receive.decode import extract, parse_protobuf

SERVICES = [
    "frontend", "gateway", "checkout", "cart", "catalog", "pricing", "payment",
    "shipping", "users", "search", "recommend", "inventory",
]  # fmt: skip
TRACES = 3000
BATCH_SPANS = 512
_MS = 1_000_000


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _resource_attrs(name: str) -> list[KeyValue]:
    pod_hash = f"{zlib.crc32(name.encode()) % 10**9:09d}"  # the same in every run
    attrs = {
        "service.name": name,
        "service.version": "1.4.2",
        "service.instance.id": f"{name}-{pod_hash}-x2x9z",
        "k8s.namespace.name": "shop",
        "k8s.pod.name": f"{name}-{pod_hash}-x2x9z",
        "k8s.pod.uid": "4c7b5d0e-1f2a-4b3c-9d8e-7f6a5b4c3d2e",
        "k8s.node.name": "node-3",
        "k8s.container.name": name,
        "k8s.deployment.name": name,
        "k8s.replicaset.name": f"{name}-{pod_hash}",
        "container.image.name": f"registry.example.com/shop/{name}",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": "1.45.0",
    }
    return [_kv(k, v) for k, v in attrs.items()]


class _TraceGen:
    """Random call trees: a frontend request fanning out through the services."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.next_id = 1

    def _id(self) -> bytes:
        self.next_id += 1
        return self.next_id.to_bytes(8, "big")

    def trace(self, trace_id: bytes, start_ns: int) -> list[tuple[str, Span]]:
        target = self.rnd.randint(10, 50)
        out: list[tuple[str, Span]] = []
        root = self._span(trace_id, b"", "GET /api/checkout", Span.SPAN_KIND_SERVER, start_ns, 200)
        root.attributes.extend([_kv("http.request.method", "GET"), _kv("http.route", "/api/x")])
        out.append(("frontend", root))
        frontier = [("frontend", root)]
        while len(out) < target and frontier:
            service, parent = frontier.pop(self.rnd.randrange(len(frontier)))
            for _ in range(self.rnd.randint(1, 3)):
                if len(out) + 2 > target:
                    break
                callee = self.rnd.choice(SERVICES[1:])
                t0 = parent.start_time_unix_nano + self.rnd.randint(1, 5) * _MS
                client = self._span(trace_id, parent.span_id, f"GET {callee}", 3, t0, 40)
                server = self._span(trace_id, client.span_id, "GET /v1/items", 2, t0 + _MS, 38)
                server.attributes.extend(
                    [_kv("http.request.method", "GET"), _kv("http.route", "/v1/items")]
                )
                if self.rnd.random() < 0.03:
                    server.status.code = Status.STATUS_CODE_ERROR
                    client.status.code = Status.STATUS_CODE_ERROR
                out += [(service, client), (callee, server)]
                frontier.append((callee, server))
            if len(out) < target and self.rnd.random() < 0.5:
                db = self._span(
                    trace_id, parent.span_id, "SELECT items", 3, parent.start_time_unix_nano, 5
                )
                db.attributes.extend([_kv("db.system", "postgresql"), _kv("db.name", "shop")])
                out.append((service, db))
        return out

    def _span(
        self, trace_id: bytes, parent: bytes, name: str, kind: int, start: int, ms: int
    ) -> Span:
        s = Span(
            trace_id=trace_id, span_id=self._id(), parent_span_id=parent, name=name, kind=kind,
            start_time_unix_nano=start, end_time_unix_nano=start + ms * _MS,
        )  # fmt: skip
        s.attributes.extend(
            [_kv("http.response.status_code", 200), _kv("server.address", "cart.shop.svc"),
             _kv("user_agent.original", "python-requests/2.32"), _kv("url.scheme", "http")]
        )  # fmt: skip
        return s


def build_bodies(n_traces: int = TRACES, seed: int = 1) -> tuple[list[bytes], int]:
    """Serialized export requests (one service per request) and their total span count."""
    rnd = random.Random(seed)
    gen = _TraceGen(rnd)
    by_service: dict[str, list[Span]] = {name: [] for name in SERVICES}
    base = 1_764_000_000 * 10**9
    for i in range(n_traces):
        for service, span in gen.trace(rnd.randbytes(16), base + i * 10 * _MS):
            by_service[service].append(span)
    bodies: list[tuple[int, bytes]] = []
    total = 0
    for service, spans in by_service.items():
        attrs = _resource_attrs(service)
        for i in range(0, len(spans), BATCH_SPANS):
            chunk = spans[i : i + BATCH_SPANS]
            req = ExportTraceServiceRequest()
            rs: ResourceSpans = req.resource_spans.add()
            rs.resource.attributes.extend(attrs)
            rs.scope_spans.add().spans.extend(chunk)
            # Interleave services roughly in time order, as a gateway receives them.
            bodies.append((chunk[0].start_time_unix_nano, req.SerializeToString()))
            total += len(chunk)
    return [b for _, b in sorted(bodies)], total


def raw_decode(bodies: list[bytes]) -> int:
    """Full protobuf parse and a walk over every span's fields; returns spans seen."""
    n = 0
    for body in bodies:
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    _ = (s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind)
                    _ = (s.start_time_unix_nano, s.end_time_unix_nano, s.status.code)
                    for kv in s.attributes:
                        _ = (kv.key, kv.value.string_value)
                    n += 1
    return n


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pipeline(bodies: list[bytes], *, decoded: list[list[Any]] | None = None) -> Analyzer:
    """Decode (unless given decoded spans) -> assemble -> analyse, ticking as time passes."""
    analyzer, clock = Analyzer(), _Clock()
    asm = Assembler(analyzer, trace_timeout_s=1.0, max_spans=2_000_000, clock=clock)
    batches = decoded if decoded is not None else (extract(parse_protobuf(b)).spans for b in bodies)
    for i, spans in enumerate(batches):
        asm.submit(spans)
        clock.now += 0.01  # 100 requests per simulated second: traces complete as we go
        if i % 10 == 0:
            asm.tick()
    asm.close()
    analyzer.release_waiting()  # requests still waiting for the rest of their trace
    return analyzer


def _rates(
    stages: dict[str, Callable[[], object]], spans: int, rounds: int = 5
) -> dict[str, float]:
    """Spans per CPU second of each stage, best of ``rounds``; stages alternate within a round
    so that all of them meet the same machine conditions."""
    best = dict.fromkeys(stages, float("inf"))
    for _ in range(rounds):
        for name, fn in stages.items():
            gc.collect()
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    return {name: spans / seconds for name, seconds in best.items()}


def memory_per_span(bodies: list[bytes]) -> tuple[float, float, int]:
    """(bytes per buffered span in total, of which the assembler's own, spans buffered)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    decoded = [extract(parse_protobuf(b)).spans for b in bodies]
    n = sum(len(s) for s in decoded)
    mid = tracemalloc.get_traced_memory()[0]
    asm = Assembler(Analyzer(), trace_timeout_s=3600, max_spans=10**8, clock=_Clock())
    for spans in decoded:
        asm.submit(spans)
    del decoded  # the assembler now holds the only references to the spans
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert asm.buffered_spans == n
    return (after - before) / n, (after - mid) / n, n


def memory_per_waiting_request(decoded: list[list[Any]]) -> tuple[float, int]:
    """(bytes per request held by the pairing table, requests held): the spans of one callee
    service, each trace's analysed as a fragment of its own, so that every request in them waits
    for its caller's client span (and for its own calls' server spans)."""
    analyzer = Analyzer(pair_wait_s=3600, max_waiting=10**7)
    by_trace: dict[bytes, list[Any]] = {}
    for spans in decoded:
        for s in spans:
            if s.resource.attributes.get("service.name") == "cart":
                by_trace.setdefault(s.trace_id, []).append(s)
    fragments = list(by_trace.values())
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for fragment in fragments:
        analyzer.on_trace(fragment, late=False)
    analyzer.drain()  # the aggregates leave; what stays is the pairing table
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    waiting = analyzer.pairing.waiting
    return (after - before) / max(waiting, 1), waiting


def main() -> None:
    bodies, n = build_bodies()
    # The garbage-collector settings of a `podtrace collector` process; they apply to every row.
    tune_gc()
    print(f"{TRACES} traces, {n} spans in {len(bodies)} requests, {len(SERVICES)} services")
    decoded = [extract(parse_protobuf(b)).spans for b in bodies]
    result = pipeline(bodies)
    assert result.spans == n, (result.spans, n)
    rates = _rates(
        {
            "raw decode (FromString + walk)": lambda: raw_decode(bodies),
            "podtrace decode (parse + extract)": lambda: [
                extract(parse_protobuf(b)) for b in bodies
            ],
            "assemble + analyse (pre-decoded)": lambda: pipeline(bodies, decoded=decoded),
            "decode -> assemble -> analyse": lambda: pipeline(bodies),
        },
        n,
    )
    raw = rates["raw decode (FromString + walk)"]
    for label, rate in rates.items():
        print(f"{label:<36}{rate:>10,.0f} spans/s   {rate / raw:.2f}x raw decode")
    total, own, buffered = memory_per_span(bodies)
    print(f"memory per buffered span: {total:.0f} B, of which the assembler's own: {own:.0f} B")
    print(f"({buffered} spans buffered; decoded Span objects with their ids, names, attributes)")
    p = result.pairing
    print(
        f"traces analysed in fragments: {result.late_traces} late fragments; requests paired "
        f"{p.paired}, unpaired {p.unpaired}, overflow {p.overflow}"
    )
    per_request, waiting = memory_per_waiting_request(decoded)
    print(f"memory per request waiting for the rest of its trace: {per_request:.0f} B "
          f"({waiting} waiting)")  # fmt: skip
    if os.environ.get("PODTRACE_BENCH_PROFILE"):
        prof = cProfile.Profile()
        prof.runcall(pipeline, bodies)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
