"""Helpers for the collector's receiving-side tests: OTLP requests, sinks, running collectors."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from podtrace_collector.collector import Collector
from podtrace_collector.config import CollectorConfig
from podtrace_collector.errors import Overloaded
from podtrace_collector.model import Span

RESOURCE = {"service.name": "cart", "k8s.namespace.name": "shop", "k8s.deployment.name": "cart"}


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def make_request(
    n_spans: int = 4,
    *,
    spans_per_trace: int = 2,
    resource: Mapping[str, Any] | None = None,
    seed: int = 1,
) -> ExportTraceServiceRequest:
    """A request of ``n_spans`` valid spans, ``spans_per_trace`` per trace, chained parent-child."""
    rnd = random.Random(seed)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    for key, value in (RESOURCE if resource is None else resource).items():
        rs.resource.attributes.append(kv(key, value))
    ss = rs.scope_spans.add()
    ss.scope.name = "tests"
    trace_id, parent = b"", b""
    for i in range(n_spans):
        if i % spans_per_trace == 0:
            trace_id, parent = rnd.randbytes(16), b""
        span = ss.spans.add(trace_id=trace_id, span_id=rnd.randbytes(8), parent_span_id=parent)
        parent = span.span_id
        span.name = f"GET /items/{i}"
        span.kind = 2 if not span.parent_span_id else 3
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + i
        span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
        span.attributes.extend(
            [kv("http.request.method", "GET"), kv("http.route", "/items/{id}"), kv("x", i)]
        )
    return request


def to_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP/JSON of a request: lowerCamelCase, hex ids, enums as integers, int64 as strings."""
    out: dict[str, Any] = {"resourceSpans": []}
    for rs in request.resource_spans:
        spans = []
        for span in rs.scope_spans[0].spans:
            spans.append(
                {
                    "traceId": span.trace_id.hex(),
                    "spanId": span.span_id.hex(),
                    "parentSpanId": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": span.kind,
                    "startTimeUnixNano": str(span.start_time_unix_nano),
                    "endTimeUnixNano": str(span.end_time_unix_nano),
                    "attributes": [
                        {"key": a.key, "value": {"stringValue": a.value.string_value}}
                        for a in span.attributes
                        if a.value.HasField("string_value")
                    ],
                    "status": {"code": span.status.code},
                }
            )
        resource = [
            {"key": a.key, "value": {"stringValue": a.value.string_value}}
            for a in rs.resource.attributes
        ]
        out["resourceSpans"].append(
            {"resource": {"attributes": resource}, "scopeSpans": [{"spans": spans}]}
        )
    return out


class RecordingSink:
    """A ``SpanSink`` that keeps every span; ``overloaded = True`` makes it refuse."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.overloaded = False
        self.closed = False
        self._lock = threading.Lock()

    def submit(self, spans: Sequence[Span]) -> None:
        if self.overloaded:
            raise Overloaded("test sink full", retry_after_s=1.0)
        with self._lock:
            self.spans.extend(spans)

    def close(self, timeout_s: float) -> None:
        self.closed = True

    def ids(self) -> list[tuple[bytes, bytes]]:
        with self._lock:
            return [(s.trace_id, s.span_id) for s in self.spans]


class SlowSink(RecordingSink):
    """A ``RecordingSink`` taking ``delay_s`` per request, so that exports pile up."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def submit(self, spans: Sequence[Span]) -> None:
        time.sleep(self.delay_s)
        super().submit(spans)


def test_config(**overrides: Any) -> CollectorConfig:
    """A config with free ports and an in-memory store."""
    values: dict[str, Any] = {"grpc_port": 0, "http_port": 0, "api_port": 0, "store": "memory"}
    values.update(overrides)
    return CollectorConfig(**values)


test_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


@contextmanager
def running(config: CollectorConfig | None = None, **kwargs: Any) -> Iterator[Collector]:
    """A started ``Collector``, stopped on exit."""
    collector = Collector(config or test_config(), **kwargs)
    collector.start()
    try:
        yield collector
    finally:
        collector.stop(2.0)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        base, _, rest = sample.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if base == name and got == want:
            return float(value)
    return 0.0


# A collector on free ports with an in-memory store.
COLLECTOR_ARGS = ["--grpc-port", "0", "--http-port", "0", "--api-port", "0", "--store", "memory"]


@contextmanager
def collector_process(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """``podtrace collector`` in a subprocess, on free ports with a memory store unless ``args``
    say otherwise (a repeated flag takes the last value); yields the process and its "collector
    started" log entry, its log left to read; killed on exit if it still runs."""
    command = [sys.executable, "-m", "podtrace._cli", "collector", *COLLECTOR_ARGS, *args]
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stderr is not None
        for raw in process.stderr:
            entry = json_log_line(raw)
            if entry.get("event") == "collector started":
                yield process, entry
                return
        raise AssertionError("collector exited before starting")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def json_log_line(raw: bytes) -> dict[str, Any]:
    """A log line as JSON; lines from native libraries (grpc core) are not ours: skip them."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}
