"""OTLP ingest throughput of one collector process, next to its raw decode rate; queue memory.

A collector process (gateway mode, counting sink) first measures how fast it decodes and extracts
a pre-encoded 512-span request in a tight loop, then serves.  Load generators in other processes
send pre-encoded 512-span requests at maximum rate, over gRPC and then over HTTP, each keeping
several requests in flight; trace ids are patched per request (a counter written into the
encoded bytes) so that the collector's duplicate filter does not discard them.  Printed: accepted
spans/s per transport (from the collector's own counter), the raw decode rate, their ratio, and
the memory held per queued span (forward queue) and per decoded span (what a trace buffer holds).

Run: ``.venv/bin/python -m bench bench_ingest`` (about 40 s).
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import random
import threading
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

SPANS = 512
SPANS_PER_TRACE = 8
LOAD_S = 8.0
GENERATORS = 2
IN_FLIGHT = 6


def make_body(seed: int = 7) -> bytes:
    """A realistic 512-span request: one resource, HTTP server/client spans, 7 attributes each."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def kv(key: str, value: str | int) -> KeyValue:
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    rnd = random.Random(seed)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    resource = {
        "service.name": "cart",
        "service.version": "1.4.0",
        "k8s.namespace.name": "shop",
        "k8s.pod.name": "cart-7d9f8c6b5-x2k4q",
        "k8s.deployment.name": "cart",
        "telemetry.sdk.language": "python",
    }
    rs.resource.attributes.extend(kv(k, v) for k, v in resource.items())
    scope = rs.scope_spans.add()
    scope.scope.name = "opentelemetry.instrumentation.fastapi"
    trace_id, parent = b"", b""
    for i in range(SPANS):
        if i % SPANS_PER_TRACE == 0:
            trace_id, parent = rnd.randbytes(16), b""
        span = scope.spans.add(trace_id=trace_id, span_id=rnd.randbytes(8), parent_span_id=parent)
        parent = span.span_id
        span.name = "GET /api/items/{id}"
        span.kind = 2 if i % 2 == 0 else 3
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + i * 1000
        span.end_time_unix_nano = span.start_time_unix_nano + 5_000_000
        span.status.code = 2 if i % 50 == 0 else 0
        attributes = {
            "http.request.method": "GET",
            "http.route": "/api/items/{id}",
            "url.path": f"/api/items/{i}",
            "server.address": "cart.shop.svc",
            "http.response.status_code": 200,
            "user_agent.original": "python-requests/2.32",
            "network.peer.address": "10.0.0.7",
        }
        span.attributes.extend(kv(k, v) for k, v in attributes.items())
    return request.SerializeToString()


def _trace_id_offsets(body: bytes) -> list[int]:
    """Where each span's trace id sits in the encoded request (tag 0x0a, length 16)."""
    from podtrace_collector.receive.decode import parse_protobuf

    lean = parse_protobuf(body)
    offsets: list[int] = []
    start = 0
    for span in lean.resource_spans[0].scope_spans[0].spans:
        at = body.index(b"\x0a\x10" + span.trace_id, start) + 2
        offsets.append(at)
        start = at + 16
    return offsets


def _generator(kind: str, port: int, stop_at: float, worker: int) -> None:
    """Send patched copies of the request at maximum rate until ``stop_at`` (wall clock)."""
    body = bytearray(make_body())
    offsets = _trace_id_offsets(bytes(body))
    counter = [worker << 40]
    lock = threading.Lock()

    def next_body() -> bytes:
        with lock:
            counter[0] += 1
            stamp = counter[0].to_bytes(6, "big")
            for at in offsets:
                body[at : at + 6] = stamp
            return bytes(body)

    def loop_grpc() -> None:
        import grpc

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            )
            while time.time() < stop_at:
                try:
                    call(next_body(), timeout=10)
                except grpc.RpcError:
                    time.sleep(0.01)

    def loop_http() -> None:
        import httpx

        headers = {"Content-Type": "application/x-protobuf"}
        with httpx.Client(timeout=10) as client:
            while time.time() < stop_at:
                try:
                    client.post(
                        f"http://127.0.0.1:{port}/v1/traces", content=next_body(), headers=headers
                    )
                except httpx.HTTPError:
                    time.sleep(0.01)

    threads = [
        threading.Thread(target=loop_grpc if kind == "grpc" else loop_http)
        for _ in range(IN_FLIGHT)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class _CountingSink:
    """Stands in for the analysis stage: what is measured here is receiving, not analysis."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def submit(self, spans: Sequence[Any]) -> None:
        with self._lock:
            self.count += len(spans)


def _collector(conn: Any) -> None:
    """The collector process: measure raw decode, then serve until told to stop."""
    from podtrace_collector.collector import Collector, tune_gc
    from podtrace_collector.config import CollectorConfig
    from podtrace_collector.ingest.dedupe import Deduplicator
    from podtrace_collector.receive.decode import decode_body, extract, parse_protobuf

    tune_gc()  # as `podtrace collector` does, for the raw loop and for serving alike
    body = make_body()
    runtime_rate = _rate(lambda: extract(parse_protobuf(body)))  # the protobuf runtime only
    decode_rate = _rate(lambda: decode_body(body))  # what ingest runs (the C scanner if built)
    dedupe = Deduplicator()
    with_dedupe = _rate(lambda: dedupe.filter(decode_body(body).spans))
    config = CollectorConfig(grpc_port=0, http_port=0, api_port=0, store="memory")
    collector = Collector(config, sink=_CountingSink())
    collector.start()
    conn.send((decode_rate, with_dedupe, runtime_rate, collector.grpc_port, collector.http_port))
    while (message := conn.recv()) != "stop":
        accepted = collector.metrics.spans_accepted._value.get()
        cpu = time.process_time()
        conn.send((accepted, cpu))
        _ = message
    collector.stop(2.0)


def _rate(func: Any, seconds: float = 1.5, rounds: int = 2) -> float:
    """Spans per CPU-second of ``func`` (one call handles one 512-span request), best of rounds.

    CPU time, not wall time: the machine may be shared, and the load phases are reported per
    CPU-second of the collector process too, so the two figures compare.
    """
    func()
    best = 0.0
    for _ in range(rounds):
        n, start = 0, time.process_time()
        while time.process_time() - start < seconds:
            func()
            n += SPANS
        best = max(best, n / (time.process_time() - start))
    return best


def _load(conn: Any, kind: str, port: int) -> tuple[float, float]:
    """Accepted spans/s and collector CPU seconds per wall second during one load phase."""
    ctx = mp.get_context("spawn")
    warmup = 1.0
    stop_at = time.time() + warmup + LOAD_S
    # Each generator (of each phase) stamps its own trace ids: no span is a duplicate.
    first = 0 if kind == "grpc" else GENERATORS
    procs = [
        ctx.Process(target=_generator, args=(kind, port, stop_at, first + i))
        for i in range(GENERATORS)
    ]
    for p in procs:
        p.start()
    time.sleep(warmup + 1.0)  # spawned generators import and connect
    conn.send("sample")
    before, cpu_before = conn.recv()
    t0 = time.perf_counter()
    time.sleep(LOAD_S - 1.5)
    conn.send("sample")
    after, cpu_after = conn.recv()
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(30)
    return (after - before) / elapsed, (cpu_after - cpu_before) / elapsed


def _memory_per_queued_span() -> tuple[float, float]:
    """Bytes held per span in a forward queue (encoded) and per decoded Span."""
    from podtrace_collector.budget import MemoryBudget
    from podtrace_collector.forward.forwarder import Forwarder
    from podtrace_collector.metrics import CollectorMetrics
    from podtrace_collector.receive.decode import extract, parse_protobuf

    body = make_body()
    requests = 100
    forwarder = Forwarder(
        ["127.0.0.1:9"],  # the discard port: nothing listens, so everything stays queued
        hashed=False,
        metrics=CollectorMetrics(),
        budget=MemoryBudget(1 << 40, 1 << 40),
        queue_spans=10**9,
        retry_initial_s=60.0,
    )
    forwarder.start()
    lean = [parse_protobuf(body) for _ in range(requests)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for message in lean:
        forwarder.forward(message, None, refuse=True)
    queued = (tracemalloc.get_traced_memory()[0] - base) / (requests * SPANS)
    tracemalloc.stop()
    forwarder.close(0.0)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = [extract(parse_protobuf(body)).spans for _ in range(20)]
    decoded = (tracemalloc.get_traced_memory()[0] - base) / (20 * SPANS)
    tracemalloc.stop()
    del kept
    return queued, decoded


def main() -> None:
    """Print ingest figures side by side."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    collector = ctx.Process(target=_collector, args=(child,))
    collector.start()
    decode_rate, with_dedupe, runtime_rate, grpc_port, http_port = parent.recv()
    size = len(make_body())
    print(
        f"request: {SPANS} spans, {size} bytes ({size / SPANS:.0f} B/span); cores: {os.cpu_count()}"
    )
    print("in the collector process, per CPU-second (best of 2):")
    print(f"  raw decode + extract:          {decode_rate:>10,.0f} spans/s")
    print(f"  raw decode + extract + dedupe: {with_dedupe:>10,.0f} spans/s")
    print(f"  (protobuf runtime, no scanner: {runtime_rate:>10,.0f} spans/s)")
    for kind, port in (("grpc", grpc_port), ("http", http_port)):
        accepted, cpu = _load(parent, kind, port)
        per_cpu = accepted / max(cpu, 0.01)
        print(
            f"OTLP/{kind:<4} accepted {accepted:>8,.0f} spans/s wall, collector at {cpu:.2f} cores"
            f" = {per_cpu:,.0f} spans per CPU-second = {per_cpu / decode_rate:.2f} x raw decode"
        )
    parent.send("stop")
    collector.join(30)
    queued, decoded = _memory_per_queued_span()
    print(f"memory per queued span (forward queue, encoded): {queued:,.0f} bytes")
    print(f"memory per decoded span (Span + attributes):     {decoded:,.0f} bytes")


if __name__ == "__main__":
    main()
