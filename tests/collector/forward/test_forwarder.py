"""Forwarding: targets, trace-id routing, splitting, and a real app → sidecar → gateways chain."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from podtrace_collector.collector import Collector
from podtrace_collector.errors import ConfigError
from podtrace_collector.forward.upstream import Target, parse_target

from tests.collector.otlp_helpers import RecordingSink, make_request, metric, running, test_config

POD = {"k8s.pod.name": "cart-7d9f8c6b5-x2k4q", "k8s.namespace.name": "shop"}


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("gw:4317", Target("grpc", "gw", 4317)),
        ("grpc://10.0.0.1:4317", Target("grpc", "10.0.0.1", 4317)),
        ("grpcs://gw.example:443", Target("grpc", "gw.example", 443, tls=True)),
        ("http://gw:4318", Target("http", "gw", 4318)),
        (
            "https://tempo.example/otlp/v1/traces",
            Target("http", "tempo.example", 443, True, "/otlp/v1/traces"),
        ),
    ],
)
def test_parse_target(url: str, target: Target) -> None:
    """Forward URLs: bare host:port is gRPC; HTTP paths default to /v1/traces."""
    assert parse_target(url) == target


@pytest.mark.parametrize("url", ["ftp://x:1", "grpc://nohost", "http://:80", "gw:notaport"])
def test_parse_target_errors(url: str) -> None:
    """Bad forward URLs are configuration errors."""
    with pytest.raises(ConfigError):
        parse_target(url)


def _app(endpoint: str) -> tuple[TracerProvider, Callable[[int], list[tuple[bytes, bytes]]]]:
    """A real SDK app exporting OTLP/HTTP; ``emit(n)`` makes n traces of 4 spans."""
    provider = TracerProvider(resource=Resource.create({"service.name": "cart"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=50)
    )
    tracer = provider.get_tracer("app")

    def emit(n: int) -> list[tuple[bytes, bytes]]:
        ids = []
        for _ in range(n):
            with tracer.start_as_current_span("GET /cart") as root:
                for name in ("db", "cache", "pricing"):
                    with tracer.start_as_current_span(name) as child:
                        ids.append(_ids(child))
                ids.append(_ids(root))
        assert provider.force_flush(10_000)
        return ids

    return provider, emit


def _ids(span: object) -> tuple[bytes, bytes]:
    ctx = span.get_span_context()  # type: ignore[attr-defined]
    return ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big")


def _wait(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


@pytest.fixture
def chain() -> Iterator[tuple[Collector, list[Collector], list[RecordingSink]]]:
    sinks = [RecordingSink(), RecordingSink()]
    gateways = [Collector(test_config(), sink=s) for s in sinks]
    for g in gateways:
        g.start()
    forward = tuple(f"grpc://127.0.0.1:{g.grpc_port}" for g in gateways)
    sidecar = Collector(
        test_config(
            mode="sidecar", forward=forward, forward_queue_spans=400, forward_retry_max_s=0.2
        ),
        pod_attributes=POD,
    )
    sidecar.start()
    yield sidecar, gateways, sinks
    sidecar.stop(1.0)
    for g in gateways:
        g.stop(1.0)


def _queued(sidecar: Collector, gateway: Collector) -> int:
    """Spans the sidecar holds for one gateway."""
    assert sidecar.forwarder is not None
    url = f"grpc://127.0.0.1:{gateway.grpc_port}"
    return sum(lane.spans for lane in sidecar.forwarder.lanes if lane.target.url == url)


def _restart(gateway: Collector, sink: RecordingSink) -> Collector:
    again = Collector(test_config(grpc_port=gateway.grpc_port), sink=sink)
    again.start()
    return again


def test_chain_exactly_once_trace_affine_stamped(
    chain: tuple[Collector, list[Collector], list[RecordingSink]],
) -> None:
    """app → sidecar → two gateways: every span once, each trace on one gateway, pod stamped."""
    sidecar, _, sinks = chain
    provider, emit = _app(f"http://127.0.0.1:{sidecar.http_port}/v1/traces")
    sent = emit(40)
    _wait(
        lambda: (
            sum(len(s.spans) for s in sinks) >= len(sent) and sidecar.forwarder.queued_spans() == 0
        )
    )  # type: ignore[union-attr]
    provider.shutdown()
    received = sinks[0].ids() + sinks[1].ids()
    assert sorted(received) == sorted(sent)
    owner = {}
    for index, sink in enumerate(sinks):
        for span in sink.spans:
            assert owner.setdefault(span.trace_id, index) == index
            assert span.resource.attributes["k8s.pod.name"] == POD["k8s.pod.name"]
            assert span.resource.attributes["service.name"] == "cart"
    assert set(owner.values()) == {0, 1}


def test_gateway_down_queue_retries_and_counts_drops(
    chain: tuple[Collector, list[Collector], list[RecordingSink]],
) -> None:
    """A stopped gateway's traces wait and arrive after restart; past the bound they are counted."""
    sidecar, gateways, sinks = chain
    provider, emit = _app(f"http://127.0.0.1:{sidecar.http_port}/v1/traces")
    gateways[1].stop(1.0)
    sent = emit(40)  # about 80 spans for the stopped gateway: within the 400-span bound
    _wait(lambda: _queued(sidecar, gateways[1]) > 0)
    time.sleep(0.3)  # several failed attempts
    gateways[1] = _restart(gateways[1], sinks[1])
    _wait(
        lambda: (
            sidecar.forwarder.queued_spans() == 0 and sum(len(s.spans) for s in sinks) >= len(sent)
        )
    )  # type: ignore[union-attr]
    assert sorted(sinks[0].ids() + sinks[1].ids()) == sorted(sent)
    text = sidecar.metrics.render().decode()
    target = f"grpc://127.0.0.1:{gateways[1].grpc_port}"
    assert metric(text, "podtrace_forward_retries_total", target=target) > 0

    # Past the queue's bound the sidecar refuses (429): the app's SDK keeps the spans and
    # retries, and once the gateway is back every span arrives, none dropped.
    gateways[1].stop(1.0)
    with ThreadPoolExecutor(1) as pool:
        emitting = pool.submit(emit, 300)  # about 600 spans for the stopped gateway
        _wait(lambda: metric(sidecar.metrics.render().decode(), "podtrace_spans_refused_total") > 0)
        gateways[1] = _restart(gateways[1], sinks[1])
        more = emitting.result(timeout=60)
    _wait(
        lambda: (
            sidecar.forwarder.queued_spans() == 0
            and sum(len(s.spans) for s in sinks) >= len(sent) + len(more)
        )
    )  # type: ignore[union-attr]
    provider.shutdown()
    text = httpx.get(f"http://127.0.0.1:{sidecar.api_port}/metrics").text
    assert metric(text, "podtrace_spans_dropped_total", reason="forward_queue_full") == 0
    assert metric(text, "podtrace_otlp_requests_total", transport="http", outcome="overloaded") > 0
    assert sorted(sinks[0].ids() + sinks[1].ids()) == sorted(sent + more)


def test_sidecar_refuses_what_its_queue_cannot_take() -> None:
    """Gateway unreachable, 100-span queue: 60 spans are queued (200); 60 more do not fit now
    (429 + Retry-After / RESOURCE_EXHAUSTED + RetryInfo); 101 never fit (413 / no RetryInfo).
    Nothing accepted is dropped."""
    config = test_config(mode="sidecar", forward=("grpc://127.0.0.1:9",), forward_queue_spans=100)
    with (
        running(config, pod_attributes={}) as sidecar,
        grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel,
    ):
        url = f"http://127.0.0.1:{sidecar.http_port}/v1/traces"
        headers = {"Content-Type": "application/x-protobuf"}

        def post(n: int, seed: int) -> httpx.Response:
            body = make_request(n, seed=seed).SerializeToString()
            return httpx.post(url, content=body, headers=headers)

        assert post(60, seed=1).status_code == 200
        full = post(60, seed=2)
        assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1
        assert "forward queue" in status_pb2.Status.FromString(full.content).message
        too_large = post(101, seed=3)
        assert too_large.status_code == 413 and "retry-after" not in too_large.headers
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as busy:
            stub.Export(make_request(60, seed=4), timeout=5)
        assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "grpc-status-details-bin" in dict(busy.value.trailing_metadata() or ())
        with pytest.raises(grpc.RpcError) as never:
            stub.Export(make_request(101, seed=5), timeout=5)
        assert never.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "grpc-status-details-bin" not in dict(never.value.trailing_metadata() or ())
        text = sidecar.metrics.render().decode()
        assert sidecar.forwarder is not None and sidecar.forwarder.queued_spans() == 60
    assert metric(text, "podtrace_spans_refused_total") == 60 + 101 + 60 + 101
    assert metric(text, "podtrace_spans_dropped_total", reason="forward_queue_full") == 0


def test_retry_after_is_honoured_over_http() -> None:
    """An upstream answering 429 + Retry-After is retried no sooner than asked, then succeeds."""
    sink = RecordingSink()
    sink.overloaded = True
    with running(sink=sink) as gateway:
        url = f"http://127.0.0.1:{gateway.http_port}/v1/traces"
        with running(test_config(mode="sidecar", forward=(url,)), pod_attributes={}) as sidecar:
            started = time.monotonic()
            answer = httpx.post(
                f"http://127.0.0.1:{sidecar.http_port}/v1/traces",
                content=make_request(4).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert answer.status_code == 200
            time.sleep(0.3)
            sink.overloaded = False
            _wait(lambda: len(sink.spans) == 4)
            assert time.monotonic() - started >= 0.9  # Retry-After: 1
            text = sidecar.metrics.render().decode()
            assert (
                metric(
                    text, "podtrace_forward_requests_failed_total", target=url, reason="http_429"
                )
                >= 1
            )


def test_dns_name_expands_to_every_address() -> None:
    """A gateway DNS name resolving to two addresses is two endpoints, traces split between them."""
    sinks = [RecordingSink(), RecordingSink()]
    with running(test_config(bind="127.0.0.1"), sink=sinks[0]) as first:
        port = first.grpc_port
        with running(test_config(bind="127.0.0.2", grpc_port=port), sink=sinks[1]):
            config = test_config(mode="sidecar", forward=(f"grpc://gateways.test:{port}",))
            resolve = lambda host, p: ["127.0.0.1", "127.0.0.2"]  # noqa: E731
            with running(config, pod_attributes={}, resolve=resolve) as sidecar:
                body = make_request(200, spans_per_trace=2).SerializeToString()
                httpx.post(
                    f"http://127.0.0.1:{sidecar.http_port}/v1/traces",
                    content=body,
                    headers={"Content-Type": "application/x-protobuf"},
                )
                _wait(lambda: len(sinks[0].spans) + len(sinks[1].spans) == 200)
    assert sinks[0].spans and sinks[1].spans


def test_gateway_forwards_everything_to_every_backend() -> None:
    """A gateway's --forward backends each receive every accepted span, deduplicated."""
    backends = [RecordingSink(), RecordingSink()]
    with running(sink=backends[0]) as b0, running(sink=backends[1]) as b1:
        forward = (f"127.0.0.1:{b0.grpc_port}", f"http://127.0.0.1:{b1.http_port}/v1/traces")
        with running(test_config(forward=forward), sink=RecordingSink()) as gateway:
            body = make_request(10).SerializeToString()
            for _ in range(2):
                httpx.post(
                    f"http://127.0.0.1:{gateway.http_port}/v1/traces",
                    content=body,
                    headers={"Content-Type": "application/x-protobuf"},
                )
            _wait(lambda: len(backends[0].spans) == 10 and len(backends[1].spans) == 10)
            time.sleep(0.2)
    assert len(backends[0].spans) == len(backends[1].spans) == 10


def test_sidecar_over_budget_refuses_with_429() -> None:
    """A sidecar whose memory budget is full answers 429 + Retry-After and counts the refusal."""
    config = test_config(mode="sidecar", forward=("grpc://127.0.0.1:9",), memory_limit_bytes=20_000)
    with running(config, pod_attributes={}) as sidecar:
        statuses = []
        for seed in range(20):
            answer = httpx.post(
                f"http://127.0.0.1:{sidecar.http_port}/v1/traces",
                content=make_request(20, seed=seed).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert int(answer.headers["retry-after"]) >= 1
        assert statuses[0] == 200 and 429 in statuses
        text = sidecar.metrics.render().decode()
        assert metric(text, "podtrace_spans_refused_total") == 20 * statuses.count(429)
        assert sidecar.budget.used_bytes <= 20_000


def test_reresolution_reroutes_the_queue_of_a_vanished_address() -> None:
    """When an address leaves the DNS answer, its queued spans move to the remaining gateways."""
    sink = RecordingSink()
    answers = [["127.0.0.1", "127.0.0.2"]]  # nothing listens on 127.0.0.2
    with running(sink=sink) as gateway:
        config = test_config(
            mode="sidecar",
            forward=(f"grpc://gateways.test:{gateway.grpc_port}",),
            resolve_interval_s=0.1,
        )
        with running(config, pod_attributes={}, resolve=lambda host, port: answers[0]) as sidecar:
            assert sidecar.forwarder is not None
            httpx.post(
                f"http://127.0.0.1:{sidecar.http_port}/v1/traces",
                content=make_request(100, spans_per_trace=2).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert len(sidecar.forwarder.lanes) == 2
            _wait(lambda: len(sink.spans) > 0)
            assert len(sink.spans) < 100  # the other half waits for 127.0.0.2
            answers[0] = ["127.0.0.1"]
            _wait(lambda: len(sink.spans) == 100)
            assert [lane.target.host for lane in sidecar.forwarder.lanes] == ["127.0.0.1"]
    assert len(set(sink.ids())) == 100
