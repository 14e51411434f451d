"""Overload at default settings: are many more senders than a gateway can serve answered promptly?

A ``podtrace collector`` gateway with its defaults (real analysis stage, SQLite in a temporary
directory) is flooded, one transport at a time, by ``SENDERS`` concurrent senders in
``PROCESSES`` processes, each sending 512-span requests back to back for ``LOAD_S`` seconds with
a 10 s client timeout.  A refused sender waits what the answer asks (``Retry-After`` /
``RetryInfo``, as OpenTelemetry SDKs do), at most 1 s.  Printed per transport: answers by kind,
how many refusals carried a retry delay, requests with no answer within 10 s, and the latency of
all answers (p50, p99, max).

Run: ``.venv/bin/python -m bench bench_overload`` (about 45 s).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

from bench.bench_ingest import _trace_id_offsets, make_body

SENDERS = 96
PROCESSES = 4
LOAD_S = 12.0
TIMEOUT_S = 10.0

Result = tuple[str, float, bool]  # (answer kind, seconds, carried a retry delay)


def _sender_process(kind: str, port: int, stop_at: float, worker: int, out: Any) -> None:
    """``SENDERS // PROCESSES`` threads sending until ``stop_at``; results go to ``out``."""
    body = bytearray(make_body())
    offsets = _trace_id_offsets(bytes(body))
    counter = [worker << 40]
    lock = threading.Lock()
    results: list[Result] = []

    def next_body() -> bytes:
        with lock:
            counter[0] += 1
            stamp = counter[0].to_bytes(6, "big")
            for at in offsets:
                body[at : at + 6] = stamp
            return bytes(body)

    send = _grpc_sender(port) if kind == "grpc" else _http_sender(port)

    def loop() -> None:
        while time.time() < stop_at:
            t0 = time.monotonic()
            answer, delay = send(next_body())
            elapsed = time.monotonic() - t0
            with lock:
                results.append((answer, elapsed, delay is not None))
            if delay is not None:
                time.sleep(min(delay, 1.0))

    threads = [threading.Thread(target=loop) for _ in range(SENDERS // PROCESSES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.send(results)


def _http_sender(port: int) -> Any:
    import httpx

    client = httpx.Client(timeout=TIMEOUT_S, limits=httpx.Limits(max_connections=SENDERS))
    url = f"http://127.0.0.1:{port}/v1/traces"
    headers = {"Content-Type": "application/x-protobuf"}

    def send(body: bytes) -> tuple[str, float | None]:
        try:
            answer = client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return "timeout", None
        except httpx.HTTPError as exc:
            return f"error ({type(exc).__name__})", None
        retry = answer.headers.get("retry-after")
        return str(answer.status_code), float(retry) if retry else None

    return send


def _grpc_sender(port: int) -> Any:
    import grpc
    from google.rpc import error_details_pb2, status_pb2

    local = threading.local()

    def send(body: bytes) -> tuple[str, float | None]:
        if not hasattr(local, "export"):  # one channel per sender, as separate clients have
            local.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            local.export = local.channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            )
        try:
            local.export(body, timeout=TIMEOUT_S)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return "timeout", None
            details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
            retry = error_details_pb2.RetryInfo()
            delay = None
            if details and any(
                d.Unpack(retry) for d in status_pb2.Status.FromString(details).details
            ):
                delay = retry.retry_delay.ToNanoseconds() / 1e9
            return error.code().name, delay
        return "OK", None

    return send


def _start_gateway(directory: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    command = [
        sys.executable, "-m", "podtrace._cli", "collector", "--grpc-port", "0", "--http-port",
        "0", "--api-port", "0", "--store", f"sqlite:///{directory}/podtrace.db",
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert process.stderr is not None
    for raw in process.stderr:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if entry.get("event") == "collector started":
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep it drained
            return process, entry
    raise RuntimeError("the collector did not start")


def _flood(kind: str, port: int) -> list[Result]:
    ctx = mp.get_context("spawn")
    stop_at = time.time() + 2.0 + LOAD_S  # spawned senders need a moment to start
    pipes = [ctx.Pipe() for _ in range(PROCESSES)]
    offset = 0 if kind == "grpc" else PROCESSES
    procs = [
        ctx.Process(target=_sender_process, args=(kind, port, stop_at, offset + i, child))
        for i, (_, child) in enumerate(pipes)
    ]
    for p in procs:
        p.start()
    results = [r for parent, _ in pipes for r in parent.recv()]
    for p in procs:
        p.join(30)
    return results


def _report(kind: str, results: list[Result]) -> None:
    answers = Counter(answer for answer, _, _ in results)
    refused = [r for r in results if r[0] in ("429", "503", "RESOURCE_EXHAUSTED", "UNAVAILABLE")]
    with_delay = sum(1 for r in refused if r[2])
    times = sorted(elapsed for answer, elapsed, _ in results if answer != "timeout")
    p50 = statistics.median(times) if times else 0.0
    p99 = times[int(0.99 * (len(times) - 1))] if times else 0.0
    kinds = ", ".join(f"{k} {v}" for k, v in answers.most_common())
    print(f"OTLP/{kind:<4} {len(results)} requests from {SENDERS} senders: {kinds}")
    print(
        f"  refusals with a retry delay: {with_delay}/{len(refused)}; no answer within"
        f" {TIMEOUT_S:.0f} s: {answers['timeout']}; latency p50 {p50 * 1000:.0f} ms,"
        f" p99 {p99 * 1000:.0f} ms, max {times[-1] * 1000 if times else 0:.0f} ms"
    )


def main() -> None:
    """Flood a default gateway over gRPC, then over HTTP, and print how it answered."""
    with tempfile.TemporaryDirectory() as directory:
        process, started = _start_gateway(directory)
        try:
            print(
                f"gateway defaults: {started['exports_admitted']} exports admitted at once,"
                f" {started['connections_per_port']} connections per port"
            )
            for kind in ("grpc", "http"):
                port = started["grpc_port" if kind == "grpc" else "http_port"]
                _report(kind, _flood(kind, port))
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
