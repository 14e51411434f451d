"""OTLP/HTTP compliance matrix over real sockets, after the OTel Collector's receiver tests."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from podtrace_collector.collector import Collector

from tests.collector.otlp_helpers import (
    RecordingSink,
    SlowSink,
    make_request,
    metric,
    running,
    test_config,
    to_json,
)

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture(scope="module")
def gateway(sink: RecordingSink) -> Iterator[Collector]:
    with running(test_config(max_body_bytes=64 * 1024), sink=sink) as collector:
        yield collector


@pytest.fixture
def url(gateway: Collector) -> str:
    return f"http://127.0.0.1:{gateway.http_port}/v1/traces"


def _body(encoding: str, seed: int, n: int = 4) -> tuple[bytes, str]:
    request = make_request(n, seed=seed)
    if encoding == "json":
        return json.dumps(to_json(request)).encode(), "application/json"
    return request.SerializeToString(), "application/x-protobuf"


def _compress(body: bytes, compression: str) -> tuple[bytes, dict[str, str]]:
    if compression == "gzip":
        return gzip.compress(body), {"Content-Encoding": "gzip"}
    if compression == "deflate":
        return zlib.compress(body), {"Content-Encoding": "deflate"}
    return body, {}


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize("compression", ["none", "gzip", "deflate"])
def test_accepts_every_encoding_and_compression(
    url: str, sink: RecordingSink, encoding: str, compression: str
) -> None:
    """Both encodings, each compression: 200, empty partial success, spans handed on."""
    seed = hash((encoding, compression)) & 0xFFFF
    body, content_type = _body(encoding, seed)
    body, headers = _compress(body, compression)
    before = len(sink.spans)
    answer = httpx.post(url, content=body, headers={"Content-Type": content_type, **headers})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(content_type)
    if encoding == "json":
        assert answer.json() == {}
    else:
        response = ExportTraceServiceResponse.FromString(answer.content)
        assert not response.HasField("partial_success")
    assert len(sink.spans) == before + 4


@pytest.mark.parametrize(
    "content_type",
    ["Application/JSON; charset=utf-8", "application/json;charset=UTF-8", "APPLICATION/X-PROTOBUF"],
)
def test_media_type_case_and_parameters(url: str, content_type: str) -> None:
    """Media types match case-insensitively, with parameters."""
    body, _ = _body("json" if "json" in content_type.lower() else "protobuf", seed=77)
    answer = httpx.post(url, content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("content_type", "body", "status", "grpc_code"),
    [
        ("application/x-protobuf", b"\xff\xff\xff", 400, 3),
        ("application/json", b"{not json", 400, 3),
        ("application/json", b"[1, 2]", 400, 3),
        ("application/json", b'{"resourceSpans": 5}', 400, 3),
        ("text/plain", b"hello", 415, 3),
        ("", b"hello", 415, 3),
    ],
)
def test_bad_requests(
    url: str, content_type: str, body: bytes, status: int, grpc_code: int
) -> None:
    """Undecodable bodies are 400, unknown media types 415, with a google.rpc.Status body."""
    headers = {"Content-Type": content_type} if content_type else {}
    answer = httpx.post(url, content=body, headers=headers)
    assert answer.status_code == status
    if content_type == "application/json":
        assert answer.json()["code"] == grpc_code and answer.json()["message"]
    else:
        assert status_pb2.Status.FromString(answer.content).code == grpc_code


def test_wrong_method_and_path(url: str, gateway: Collector) -> None:
    """GET on /v1/traces is 405 with Allow; another path (a trailing slash too) is 404, never a
    redirect; both carry a Status."""
    wrong_method = httpx.get(url)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    for path in ("/v1/profiles", "/v1/traces/"):
        other = httpx.post(f"http://127.0.0.1:{gateway.http_port}{path}", content=b"")
        assert other.status_code == 404
        assert "POST on /v1/traces" in status_pb2.Status.FromString(other.content).message


def test_body_over_limit_is_413(url: str) -> None:
    """A body over --max-body-bytes is 413, declared or streamed (chunked)."""
    big = make_request(800, seed=5).SerializeToString()
    assert len(big) > 64 * 1024
    headers = {"Content-Type": "application/x-protobuf"}
    assert httpx.post(url, content=big, headers=headers).status_code == 413
    chunked = httpx.post(url, content=iter([big[:40000], big[40000:]]), headers=headers)
    assert chunked.status_code == 413


def test_client_gone_mid_body_is_counted_and_nothing_handed_on(
    gateway: Collector, sink: RecordingSink
) -> None:
    """A client that disconnects before its body arrives is counted; no span is handed on."""
    before_spans = len(sink.spans)
    text = gateway.metrics.render().decode()
    before = metric(text, "podtrace_otlp_requests_total", transport="http", outcome="client_gone")
    body = make_request(4, seed=9).SerializeToString()
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.http_port), timeout=5) as conn:
        conn.sendall(head + body[: len(body) // 2])
        time.sleep(0.2)  # the handler is now waiting for the rest
    deadline = time.monotonic() + 5
    got = before
    while time.monotonic() < deadline and got == before:
        time.sleep(0.02)
        text = gateway.metrics.render().decode()
        got = metric(text, "podtrace_otlp_requests_total", transport="http", outcome="client_gone")
    assert got == before + 1
    assert len(sink.spans) == before_spans


def test_gzip_bomb_is_413(url: str) -> None:
    """A small gzip body that inflates past the limit is refused while inflating."""
    bomb = gzip.compress(b"\x00" * (2 * 1024 * 1024))
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    assert httpx.post(url, content=bomb, headers=headers).status_code == 413


def test_corrupt_gzip_and_unknown_encoding(url: str) -> None:
    """Corrupt gzip is 400; an unsupported Content-Encoding is 415."""
    base = {"Content-Type": "application/x-protobuf"}
    corrupt = httpx.post(
        url, content=b"\x1f\x8bnot gzip", headers={**base, "Content-Encoding": "gzip"}
    )
    assert corrupt.status_code == 400
    unknown = httpx.post(url, content=b"x", headers={**base, "Content-Encoding": "br"})
    assert unknown.status_code == 415


def test_partial_success(url: str, sink: RecordingSink) -> None:
    """Invalid spans are rejected one by one; the rest are accepted."""
    request = make_request(4, seed=11)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x01" * 15
    spans[1].span_id = bytes(8)
    before = len(sink.spans)
    answer = httpx.post(
        url, content=request.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}
    )
    response = ExportTraceServiceResponse.FromString(answer.content)
    assert answer.status_code == 200
    assert response.partial_success.rejected_spans == 2
    assert "trace id" in response.partial_success.error_message
    assert len(sink.spans) == before + 2


def test_partial_success_json(url: str) -> None:
    """In JSON, a bad hex id rejects that span only; the answer is JSON."""
    data = to_json(make_request(2, seed=12))
    data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "zz" * 16
    answer = httpx.post(url, json=data)
    assert answer.status_code == 200
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "1"


def test_duplicates_counted_once(url: str, gateway: Collector, sink: RecordingSink) -> None:
    """A retried request's spans reach the sink once and are counted as deduplicated."""
    body = make_request(6, seed=13).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    before = len(sink.spans)
    dup_before = metric(gateway.metrics.render().decode(), "podtrace_spans_deduplicated_total")
    for _ in range(3):
        assert httpx.post(url, content=body, headers=headers).status_code == 200
    assert len(sink.spans) == before + 6
    text = gateway.metrics.render().decode()
    assert metric(text, "podtrace_spans_deduplicated_total") == dup_before + 12


def test_overload_is_429_with_retry_after(url: str, sink: RecordingSink) -> None:
    """When the sink is over budget: 429 + Retry-After, and a later retry is not a duplicate."""
    body, content_type = _body("protobuf", seed=14)
    sink.overloaded = True
    try:
        refused = httpx.post(url, content=body, headers={"Content-Type": content_type})
    finally:
        sink.overloaded = False
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    before = len(sink.spans)
    assert httpx.post(url, content=body, headers={"Content-Type": content_type}).status_code == 200
    assert len(sink.spans) == before + 4


def test_token_required_when_configured() -> None:
    """With --otlp-token: 401 without or with a wrong token, 200 with it."""
    with running(test_config(otlp_token="s3cret")) as collector:
        url = f"http://127.0.0.1:{collector.http_port}/v1/traces"
        body, content_type = _body("json", seed=15)
        headers = {"Content-Type": content_type}
        assert httpx.post(url, content=body, headers=headers).status_code == 401
        wrong = {**headers, "Authorization": "Bearer nope"}
        assert httpx.post(url, content=body, headers=wrong).status_code == 401
        right = {**headers, "Authorization": "Bearer s3cret"}
        assert httpx.post(url, content=body, headers=right).status_code == 200


def test_shutting_down_is_503() -> None:
    """While stopping, requests get a retryable 503 with Retry-After."""
    with running() as collector:
        collector.ingest.stopping = True
        body, content_type = _body("protobuf", seed=16)
        url = f"http://127.0.0.1:{collector.http_port}/v1/traces"
        answer = httpx.post(url, content=body, headers={"Content-Type": content_type})
        assert answer.status_code == 503
        assert answer.headers["retry-after"]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=4096), as_json=st.booleans(), gzipped=st.booleans())
def test_fuzz_over_the_socket(url: str, body: bytes, as_json: bool, gzipped: bool) -> None:
    """Arbitrary bodies get 200 or 400 from the real server: never a 500, never a hang."""
    headers = {"Content-Type": "application/json" if as_json else "application/x-protobuf"}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    answer = httpx.post(url, content=body, headers=headers, timeout=5)
    assert answer.status_code in (200, 400)


class _BrokenSink:
    def submit(self, spans: object) -> None:
        raise RuntimeError("analysis bug")


def test_a_failing_stage_is_a_500_status_and_the_retry_is_not_a_duplicate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug downstream gives a 500 google.rpc.Status (logged), and the spans are not remembered."""
    sink = _BrokenSink()
    with running(sink=sink) as collector:  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{collector.http_port}/v1/traces"
        body, content_type = _body("protobuf", seed=17)
        answer = httpx.post(url, content=body, headers={"Content-Type": content_type})
        assert answer.status_code == 500
        assert status_pb2.Status.FromString(answer.content).code == 13
        assert "analysis bug" not in answer.text
        recorder = RecordingSink()
        collector.ingest.sink = recorder
        assert (
            httpx.post(url, content=body, headers={"Content-Type": content_type}).status_code == 200
        )
        assert len(recorder.spans) == 4
    assert "export failed" in caplog.text


def test_request_larger_than_the_whole_budget_is_413_not_429() -> None:
    """A batch that could never fit the buffer budget is refused for good (413), not retried."""
    from tests.collector.otlp_helpers import make_request, metric, running, test_config

    with running(test_config(max_buffered_spans=20)) as c:
        url = f"http://127.0.0.1:{c.http_port}/v1/traces"
        body = make_request(50, spans_per_trace=5).SerializeToString()
        r = httpx.post(url, content=body, headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 413
        assert "Retry-After" not in r.headers
        small = make_request(10, spans_per_trace=5, seed=7).SerializeToString()
        ok = httpx.post(url, content=small, headers={"Content-Type": "application/x-protobuf"})
        assert ok.status_code == 200
        text = httpx.get(f"http://127.0.0.1:{c.api_port}/metrics").text
        assert metric(text, "podtrace_spans_refused_total") == 50


def test_overload_is_answered_promptly_with_200_or_429() -> None:
    """48 senders at once, 8 exports admitted: every answer comes promptly, 200 or 429 with
    Retry-After (counted); none waits behind the others until it times out."""
    config = test_config(max_body_bytes=64 * 1024, memory_limit_bytes=8 * 64 * 1024)
    sink = SlowSink(0.05)
    senders, rounds = 48, 4
    with running(config, sink=sink) as collector:
        url = f"http://127.0.0.1:{collector.http_port}/v1/traces"
        start = threading.Barrier(senders)

        def send(i: int) -> list[tuple[int, float, str | None]]:
            out = []
            with httpx.Client(timeout=10) as client:
                start.wait()
                for n in range(rounds):
                    body = make_request(2, seed=10_000 + i * rounds + n).SerializeToString()
                    t0 = time.monotonic()
                    answer = client.post(url, content=body, headers=PROTOBUF)
                    out.append(
                        (
                            answer.status_code,
                            time.monotonic() - t0,
                            answer.headers.get("retry-after"),
                        )
                    )
            return out

        with ThreadPoolExecutor(senders) as pool:
            results = [r for rs in pool.map(send, range(senders)) for r in rs]
        text = collector.metrics.render().decode()
    statuses = Counter(status for status, _, _ in results)
    assert set(statuses) == {200, 429}
    assert all(retry == "1" for status, _, retry in results if status == 429)
    # Admitted exports wait at most 8 x 50 ms on 2 workers; refusals do not wait at all.
    assert max(elapsed for _, elapsed, _ in results) < 3.0
    assert (
        metric(text, "podtrace_otlp_requests_total", transport="http", outcome="busy")
        == (statuses[429])
    )
    assert len(sink.spans) == 2 * statuses[200]


@pytest.mark.parametrize("mib", [20, 80])
def test_a_large_body_from_urllib_gets_a_readable_413(url: str, mib: int) -> None:
    """urllib sends its whole body before reading (and asks to close): it reads the 413 rather
    than a connection reset, because the collector reads and discards the body first."""
    request = urllib.request.Request(
        url, data=bytes(mib * 1024 * 1024), headers=PROTOBUF, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert "larger than" in status_pb2.Status.FromString(refused.value.read()).message
