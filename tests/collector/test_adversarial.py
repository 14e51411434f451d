"""Adversarial cases against a real gateway: poison spans, fuzzed bodies, floods of senders."""

from __future__ import annotations

import contextlib
import gzip
import json
import queue
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from podtrace_collector.receive.grpc import SERVICE
from podtrace_collector.store import open_store

from tests.collector.otlp_helpers import make_request, metric, running, test_config
from tests.collector.receive.test_decode import POISON
from tests.collector.store.samples import registry

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _now_request(n_spans: int, *, service: str, seed: int) -> ExportTraceServiceRequest:
    """A request of valid spans stamped now (retention would prune older minutes)."""
    resource = {"service.name": service, "k8s.namespace.name": "shop"}
    request = make_request(n_spans, resource=resource | {"k8s.deployment.name": service}, seed=seed)
    now = time.time_ns()
    for i, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        span.start_time_unix_nano = now + i
        span.end_time_unix_nano = now + i + 1_000_000
    return request


def test_poison_span_is_rejected_and_later_writes_persist(tmp_path: Path) -> None:
    """A span ending at 2**63 ns: 200 with partial success; what follows is stored."""
    db = tmp_path / "podtrace.db"
    config = test_config(store=f"sqlite:///{db}", trace_timeout_s=0.2)
    with running(config) as gateway:
        url = f"http://127.0.0.1:{gateway.http_port}/v1/traces"
        answer = httpx.post(url, content=POISON, headers=PROTOBUF)
        assert answer.status_code == 200
        partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
        assert partial.rejected_spans == 1
        assert "end_time_unix_nano 9223372036854775808" in partial.error_message
        good = _now_request(4, service="cart", seed=3).SerializeToString()
        assert httpx.post(url, content=good, headers=PROTOBUF).status_code == 200
        text = gateway.metrics.render().decode()
        assert metric(text, "podtrace_spans_rejected_total") == 1
        assert metric(text, "podtrace_spans_accepted_total") == 4
    # Stopping flushed everything: the good workload is stored, the poison one is not.
    store = open_store(f"sqlite:///{db}")
    try:
        workloads = {key[0] for key in registry(store)}
    finally:
        store.close()
    assert workloads == {"shop/cart"}


_JSON_POISON = {
    "resourceSpans": [
        {
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "01" * 16,
                            "spanId": "02" * 8,
                            "name": "x",
                            "startTimeUnixNano": "1",
                            "endTimeUnixNano": str(2**64 - 1),
                        }
                    ]
                }
            ]
        }
    ]
}


def _corpus() -> dict[str, tuple[bytes, dict[str, str]]]:
    """Hostile request bodies (and their headers), each of which once hurt a collector."""
    deep_json = b'{"resourceSpans": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    good = _now_request(3, service="cart", seed=9)
    far = ExportTraceServiceRequest()
    far.CopyFrom(good)
    for span in far.resource_spans[0].scope_spans[0].spans:
        span.start_time_unix_nano = span.end_time_unix_nano = 2**64 - 1
    body = good.SerializeToString()
    return {
        "poison span": (POISON, PROTOBUF),
        "spans in 2554": (far.SerializeToString(), PROTOBUF),
        "truncated": (body[: len(body) // 2], PROTOBUF),
        "garbage": (bytes(range(256)) * 8, PROTOBUF),
        "gzip bomb": (
            gzip.compress(bytes(50 * 1024 * 1024)),
            PROTOBUF | {"Content-Encoding": "gzip"},
        ),
        "corrupt gzip": (b"\x1f\x8b" + bytes(30), PROTOBUF | {"Content-Encoding": "gzip"}),
        "deep JSON": (deep_json, {"Content-Type": "application/json"}),
        "JSON poison": (json.dumps(_JSON_POISON).encode(), {"Content-Type": "application/json"}),
    }


def test_hostile_corpus_gets_clear_answers_and_the_gateway_keeps_storing(tmp_path: Path) -> None:
    """Every body of the corpus, over both transports: 200 (partial success), 400 or 413, never
    a 5xx; afterwards a good request is accepted and stored."""
    db = tmp_path / "podtrace.db"
    with running(test_config(store=f"sqlite:///{db}", trace_timeout_s=0.2)) as gateway:
        url = f"http://127.0.0.1:{gateway.http_port}/v1/traces"
        with grpc.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
            export = channel.unary_unary(f"/{SERVICE}/Export")
            for name, (body, headers) in _corpus().items():
                answer = httpx.post(url, content=body, headers=headers, timeout=30)
                assert answer.status_code in (200, 400, 413), name
                if headers.get("Content-Type") == PROTOBUF["Content-Type"] and not (
                    headers.get("Content-Encoding")
                ):
                    try:
                        export(body, timeout=30)
                    except grpc.RpcError as error:
                        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        good = _now_request(4, service="cart", seed=3).SerializeToString()
        assert httpx.post(url, content=good, headers=PROTOBUF).status_code == 200
        text = gateway.metrics.render().decode()
        assert metric(text, "podtrace_otlp_requests_total", transport="http", outcome="error") == 0
        assert metric(text, "podtrace_otlp_requests_total", transport="grpc", outcome="error") == 0
    store = open_store(f"sqlite:///{db}")
    try:
        assert {key[0] for key in registry(store)} == {"shop/cart"}
    finally:
        store.close()


@contextmanager
def _collector_process(open_files: tuple[int, int]) -> Iterator[dict[str, Any]]:
    """``podtrace collector`` in a subprocess with the given open-file limit (soft, hard);
    yields its "collector started" log entry.  Its log is read on a thread, so that a chatty
    collector never blocks on a full pipe."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    command = [sys.executable, "-m", "podtrace._cli", "collector", *_PORTS, "--store", "memory"]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, preexec_fn=limit
    )
    started: queue.Queue[dict[str, Any]] = queue.Queue()

    def read_log() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == "collector started":
                started.put(entry | {"pid": process.pid})

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        yield started.get(timeout=30)
    finally:
        process.kill()
        process.wait(10)
        reader.join(5)
        assert process.stderr is not None
        process.stderr.close()


_PORTS = ["--grpc-port", "0", "--http-port", "0", "--api-port", "0"]


def _soft_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc")


@pytest.mark.slow
def test_collector_raises_its_open_file_limit_to_the_hard_limit() -> None:
    """`podtrace collector` lifts its soft open-file limit to the hard one at start."""
    with _collector_process((256, 512)) as started:
        assert _soft_open_files(started["pid"]) == 512
        assert started["open_files_limit"] == 512


def _slow_connections(port: int, n: int, head: bytes) -> list[socket.socket]:
    """``n`` connections that send ``head`` and then nothing (a slowloris)."""
    out = []
    for _ in range(n):
        conn = socket.socket()
        conn.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            conn.connect(("127.0.0.1", port))
        out.append(conn)
    time.sleep(0.2)
    for conn in out:
        with contextlib.suppress(OSError):
            conn.send(head)
    return out


def _within(seconds: float, attempt: Callable[[], bool]) -> float:
    """How long until ``attempt()`` succeeds (it is retried); fails after ``seconds``."""
    start = time.monotonic()
    while not attempt():
        assert time.monotonic() - start < seconds, "the port did not answer in time"
        time.sleep(0.1)
    return time.monotonic() - start


@pytest.mark.slow
def test_slow_clients_beyond_the_open_file_limit_do_not_take_the_ports_down() -> None:
    """With 256 descriptors and 600 slow connections across the three ports (headers never
    finished, HTTP/2 preface never sent), every port still serves a new client within seconds."""
    with _collector_process((256, 256)) as started:
        assert started["open_files_limit"] == 256
        http, api, grpc_port = started["http_port"], started["api_port"], started["grpc_port"]
        slow = _slow_connections(http, 200, b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        slow += _slow_connections(api, 200, b"GET /healthz HTTP/1.1\r\n")
        slow += _slow_connections(grpc_port, 200, b"")
        body = _now_request(2, service="cart", seed=5).SerializeToString()
        try:
            waited = {
                "http": _within(5, lambda: _post_ok(http, body)),
                "api": _within(5, lambda: _get_ok(api, "/healthz")),
                "grpc": _within(10, lambda: _export_ok(grpc_port, body)),
            }
            metrics = httpx.get(f"http://127.0.0.1:{api}/metrics", timeout=5).text
        finally:
            for conn in slow:
                conn.close()
    assert waited["http"] < 5 and waited["api"] < 5 and waited["grpc"] < 10
    evicted = metric(
        metrics, "podtrace_http_connections_closed_total", server="otlp-http", reason="evicted"
    )
    assert evicted > 0


def _post_ok(port: int, body: bytes) -> bool:
    try:
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/traces", content=body, headers=PROTOBUF, timeout=2
        )
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


def _get_ok(port: int, path: str) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _export_ok(port: int, body: bytes) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(f"/{SERVICE}/Export")
        try:
            export(body, timeout=2)
        except grpc.RpcError:
            return False
    return True
