"""OTLP/gRPC compliance matrix over real sockets: status codes, gzip, limits, partial success."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from podtrace_collector.collector import Collector
from podtrace_collector.receive.grpc import SERVICE

from tests.collector.otlp_helpers import (
    RecordingSink,
    SlowSink,
    kv,
    make_request,
    metric,
    running,
    test_config,
)

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture(scope="module")
def gateway(sink: RecordingSink) -> Iterator[Collector]:
    with running(test_config(max_body_bytes=LIMIT), sink=sink) as collector:
        yield collector


@pytest.fixture
def stub(gateway: Collector) -> Iterator[trace_service_pb2_grpc.TraceServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield trace_service_pb2_grpc.TraceServiceStub(channel)


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_export_ok(
    stub: trace_service_pb2_grpc.TraceServiceStub,
    sink: RecordingSink,
    compression: grpc.Compression,
) -> None:
    """Plain and gzip requests are accepted with no partial success."""
    before = len(sink.spans)
    response = stub.Export(
        make_request(4, seed=int(compression) + 100), compression=compression, timeout=5
    )
    assert not response.HasField("partial_success")
    assert len(sink.spans) == before + 4


def test_partial_success(
    stub: trace_service_pb2_grpc.TraceServiceStub, sink: RecordingSink
) -> None:
    """Wrong-length and zero ids are rejected one by one; the rest are accepted."""
    request = make_request(5, seed=101)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].span_id = b"\x01" * 9
    spans[1].trace_id = bytes(16)
    spans[2].parent_span_id = b"\x02" * 3
    before = len(sink.spans)
    response = stub.Export(request, timeout=5)
    assert response.partial_success.rejected_spans == 3
    assert response.partial_success.error_message
    assert len(sink.spans) == before + 2


def test_undecodable_is_invalid_argument(gateway: Collector) -> None:
    """Bytes that are not an ExportTraceServiceRequest are INVALID_ARGUMENT."""
    with grpc.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as info:
            call(b"\x0a\xff\xff\xff\xff\x0f", timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_message_over_limit(stub: trace_service_pb2_grpc.TraceServiceStub) -> None:
    """A message over --max-body-bytes is refused with RESOURCE_EXHAUSTED by grpcio."""
    big = make_request(800, seed=102)
    assert big.ByteSize() > LIMIT
    with pytest.raises(grpc.RpcError) as info:
        stub.Export(big, timeout=5)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_limit_raised_above_grpc_default() -> None:
    """The 4 MiB grpcio default is raised to --max-body-bytes (16 MiB by default)."""
    with (
        running(test_config()) as collector,
        grpc.insecure_channel(
            f"127.0.0.1:{collector.grpc_port}", options=[("grpc.max_send_message_length", -1)]
        ) as channel,
    ):
        request = make_request(10, seed=103)
        request.resource_spans[0].resource.attributes.append(kv("big", "x" * 5_000_000))
        assert request.ByteSize() > 4 * 1024 * 1024
        response = trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=20)
    assert not response.HasField("partial_success")


def test_duplicates_counted_once(
    stub: trace_service_pb2_grpc.TraceServiceStub, gateway: Collector, sink: RecordingSink
) -> None:
    """The same request twice: spans handed on once, duplicates counted."""
    request = make_request(4, seed=104)
    before = len(sink.spans)
    stub.Export(request, timeout=5)
    stub.Export(request, timeout=5)
    assert len(sink.spans) == before + 4
    assert metric(gateway.metrics.render().decode(), "podtrace_spans_deduplicated_total") >= 4


def test_overload_is_resource_exhausted_with_retry_info(
    stub: trace_service_pb2_grpc.TraceServiceStub, sink: RecordingSink
) -> None:
    """An overloaded sink gives RESOURCE_EXHAUSTED with a RetryInfo detail."""
    sink.overloaded = True
    try:
        with pytest.raises(grpc.RpcError) as info:
            stub.Export(make_request(2, seed=105), timeout=5)
    finally:
        sink.overloaded = False
    error = info.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    retry = error_details_pb2.RetryInfo()
    assert status_pb2.Status.FromString(details).details[0].Unpack(retry)
    assert retry.retry_delay.seconds >= 1


def test_token(sink: RecordingSink) -> None:
    """With --otlp-token: UNAUTHENTICATED without the bearer token, OK with it."""
    with (
        running(test_config(otlp_token="tok")) as collector,
        grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel,
    ):
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Export(make_request(1, seed=106), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.Export(
            make_request(1, seed=106), timeout=5, metadata=(("authorization", "Bearer tok"),)
        )


def test_shutting_down_is_unavailable() -> None:
    """While stopping: UNAVAILABLE, which clients retry."""
    with (
        running() as collector,
        grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel,
    ):
        collector.ingest.stopping = True
        with pytest.raises(grpc.RpcError) as info:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                ExportTraceServiceRequest(), timeout=5
            )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_request_larger_than_the_whole_budget_is_not_retryable() -> None:
    """A batch that can never fit the budget: RESOURCE_EXHAUSTED without RetryInfo (final)."""
    with (
        running(test_config(max_buffered_spans=20)) as c,
        grpc.insecure_channel(f"127.0.0.1:{c.grpc_port}") as channel,
    ):
        with pytest.raises(grpc.RpcError) as info:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                make_request(50, spans_per_trace=5), timeout=5
            )
        error = info.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "grpc-status-details-bin" not in dict(error.trailing_metadata() or ())
        assert "whole buffer budget" in (error.details() or "")


class _BrokenSink:
    def submit(self, spans: object) -> None:
        raise RuntimeError("analysis bug")


def test_a_failing_stage_is_internal_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A bug downstream is INTERNAL without internals in the message, logged and counted."""
    with running(sink=_BrokenSink()) as collector:  # type: ignore[arg-type]
        with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Export(make_request(3, seed=5), timeout=5)
        text = collector.metrics.render().decode()
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "analysis bug" not in (info.value.details() or "")
    assert "export failed" in caplog.text
    assert metric(text, "podtrace_otlp_requests_total", transport="grpc", outcome="error") == 1


def _retry_delay_s(error: grpc.RpcError) -> float | None:
    """The RetryInfo delay an error carries, ``None`` without one."""
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if details is None:
        return None
    retry = error_details_pb2.RetryInfo()
    found = [d for d in status_pb2.Status.FromString(details).details if d.Unpack(retry)]
    return retry.retry_delay.ToNanoseconds() / 1e9 if found else None


def test_more_senders_than_admitted_get_retry_info_promptly_and_counted() -> None:
    """48 senders at once, 8 exports admitted: every refusal is RESOURCE_EXHAUSTED with
    RetryInfo, answered at once (not after the queued exports), and counted."""
    # 8 of the largest requests fill the budget: 8 exports in progress at most.
    config = test_config(max_body_bytes=64 * 1024, memory_limit_bytes=8 * 64 * 1024)
    sink = SlowSink(1.0)
    senders = 48
    with running(config, sink=sink) as collector:
        assert collector.admission.max_exports == 8
        channels = [
            grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") for _ in range(senders)
        ]
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=5)
        start = threading.Barrier(senders)

        def send(i: int) -> tuple[str, float, float | None]:
            stub = trace_service_pb2_grpc.TraceServiceStub(channels[i])
            start.wait()
            t0 = time.monotonic()
            try:
                stub.Export(make_request(2, seed=1000 + i), timeout=30)
            except grpc.RpcError as error:
                return error.code().name, time.monotonic() - t0, _retry_delay_s(error)
            return "OK", time.monotonic() - t0, None

        with ThreadPoolExecutor(senders) as pool:
            results = list(pool.map(send, range(senders)))
        for channel in channels:
            channel.close()
        text = collector.metrics.render().decode()
    refused = [r for r in results if r[0] != "OK"]
    accepted = [r for r in results if r[0] == "OK"]
    assert refused and accepted
    assert {code for code, _, _ in refused} == {"RESOURCE_EXHAUSTED"}
    assert all(delay is not None and delay >= 1 for _, _, delay in refused)
    # Admitted exports take 1 s each on 4 workers; a refusal never waits for them.
    assert max(elapsed for _, elapsed, _ in refused) < 0.9
    busy = metric(text, "podtrace_otlp_requests_total", transport="grpc", outcome="busy")
    assert busy == len(refused)
    assert metric(text, "podtrace_otlp_requests_total", transport="grpc", outcome="ok") == len(
        accepted
    )
    assert len(sink.spans) == 2 * len(accepted)


def test_clients_trickling_their_message_hold_no_worker() -> None:
    """Clients that open an Export and never send the message (a slow body) do not hold the
    export workers: other clients are served at once."""
    release = threading.Event()

    def never_sent() -> Iterator[bytes]:
        release.wait(30)
        return
        yield b""  # a generator that sends nothing until released

    with running() as collector:
        address = f"127.0.0.1:{collector.grpc_port}"
        channels = [grpc.insecure_channel(address) for _ in range(12)]
        stalled = [
            channel.stream_unary(f"/{SERVICE}/Export").future(never_sent(), timeout=30)
            for channel in channels
        ]
        try:
            time.sleep(0.5)  # every stalled call is open on the server
            with grpc.insecure_channel(address) as channel:
                start = time.monotonic()
                trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                    make_request(2, seed=77), timeout=5
                )
                assert time.monotonic() - start < 1.0
        finally:
            release.set()
            for call in stalled:
                call.cancel()
            for channel in channels:
                channel.close()
