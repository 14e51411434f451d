"""The example shop: its services run under ``podtrace run`` as simulated pods and emit real traces.

All seven services start as processes (one pod each, pod identity from downward-API variables and
a podinfo directory) and export OTLP/HTTP to a receiver in this test, which decodes the protobuf
the way any OTLP backend would.  recommendation is set to fail every call, so that the frontend's
fallback is always exercised.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from podtrace_collector.demo._cluster import Cluster
from podtrace_collector.demo._pods import Revision
from podtrace_collector.demo._procs import Supervisor

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SERVER, PRODUCER, CONSUMER = 2, 4, 5
STATUS_ERROR = 2
POD_NAME = re.compile(
    r"^([a-z]+)-([bcdfghjklmnpqrstvwxz2456789]{6,10})-[bcdfghjklmnpqrstvwxz2456789]{5}$"
)


@dataclass
class Span:
    """A received span, flattened."""

    resource: dict[str, Any]
    name: str
    kind: int
    status: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    links: list[str] = field(default_factory=list)

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name"))


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class Receiver:
    """An OTLP/HTTP protobuf endpoint collecting every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.add(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    span = Span(
                        resource=resource,
                        name=s.name,
                        kind=s.kind,
                        status=s.status.code,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        links=[link.span_id.hex() for link in s.links],
                    )
                    with self.lock:
                        self.spans.append(span)

    def wait_for(
        self, predicate: Callable[[list[Span]], bool], timeout_s: float = 15.0
    ) -> list[Span]:
        """Wait until *predicate* holds over the spans received so far; return them."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            time.sleep(0.2)
        raise AssertionError(f"condition not met after {timeout_s}s; got {len(spans)} spans")


@dataclass
class Shop:
    """The running shop: where its frontend listens and where its spans go."""

    frontend: str
    receiver: Receiver


async def _start(cluster: Cluster) -> None:
    revisions = [
        Revision(name, "1.0.0")
        for name in ("catalog", "cart", "payment", "shipping", "checkout", "frontend")
    ]
    revisions.append(Revision("recommendation", "1.0.0", {"SHOP_FAIL_RATE": "1"}))
    started = [cluster.start_pod(revision) for revision in revisions]
    await asyncio.gather(*(cluster.wait_ready(pod, process) for pod, process in started))
    for pod, process in started:
        cluster.add_endpoint(pod, process)
    await cluster.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """All seven services, one pod each, exporting to a test receiver."""
    workdir = tmp_path_factory.mktemp("shop")
    receiver = Receiver()
    supervisor = Supervisor(workdir / "logs")
    cluster = Cluster(
        supervisor,
        workdir,
        gateway_http=receiver.url,
        shop_path=EXAMPLES,
        rng=random.Random(7),
    )
    try:
        asyncio.run(_start(cluster))
        yield Shop(f"http://{cluster.pods('frontend')[0].address}", receiver)
    finally:
        supervisor.stop_all()
        receiver.server.shutdown()
        receiver.server.server_close()


def _servers(spans: list[Span], service: str) -> list[Span]:
    return [s for s in spans if s.kind == SERVER and s.service == service]


@pytest.mark.slow
def test_products_page_falls_back_when_recommendation_fails(shop: Shop) -> None:
    """A failing gRPC recommendation call is absorbed: the page answers 200 with best sellers."""
    response = httpx.get(f"{shop.frontend}/products", headers={"x-user-id": "user-0001"})
    assert response.status_code == 200
    assert response.json()["fallback"] is True

    def page_and_call(spans: list[Span]) -> tuple[Span, Span] | None:
        for call in _servers(spans, "recommendation"):
            for page in _servers(spans, "frontend"):
                if page.trace_id == call.trace_id:
                    return page, call
        return None

    spans = shop.receiver.wait_for(lambda s: page_and_call(s) is not None)
    page, call = page_and_call(spans) or pytest.fail("unreachable")
    assert call.status == STATUS_ERROR
    assert call.attributes.get("rpc.service") == "shop.Recommendation"
    assert page.status != STATUS_ERROR
    assert page.attributes.get("http.route") == "/products"


@pytest.mark.slow
def test_checkout_hands_the_order_to_shipping_through_the_queue(shop: Shop) -> None:
    """Checkout publishes a PRODUCER span; shipping's CONSUMER span is its child and links it."""
    user = {"x-user-id": "user-0002"}
    item = {"product_id": "sku-1002", "quantity": 2}
    assert httpx.post(f"{shop.frontend}/cart/items", json=item, headers=user).status_code == 200
    order = httpx.post(f"{shop.frontend}/checkout", headers=user, timeout=10)
    assert order.status_code == 200, order.text

    def handover(spans: list[Span]) -> tuple[Span, Span] | None:
        by_id = {s.span_id: s for s in spans}
        for consumer in (s for s in spans if s.kind == CONSUMER):
            if consumer.parent_id in by_id:
                return by_id[consumer.parent_id], consumer
        return None

    spans = shop.receiver.wait_for(lambda s: handover(s) is not None)
    producer, consumer = handover(spans) or pytest.fail("unreachable")
    assert producer.kind == PRODUCER
    assert (producer.service, consumer.service) == ("checkout", "shipping")
    assert consumer.links == [producer.span_id]
    assert consumer.attributes["messaging.destination.name"] == "orders"
    spans = shop.receiver.wait_for(
        lambda s: len({x.service for x in s if x.trace_id == consumer.trace_id}) == 6
    )
    trace = {s.service for s in spans if s.trace_id == consumer.trace_id and s.kind == SERVER}
    assert trace == {"frontend", "checkout", "cart", "catalog", "shipping", "payment"}


@pytest.mark.slow
def test_entry_requests_name_the_user(shop: Shop) -> None:
    """The frontend records the x-user-id header as enduser.id on its server spans."""
    httpx.get(f"{shop.frontend}/products", headers={"x-user-id": "user-0042"})
    spans = shop.receiver.wait_for(
        lambda s: any(x.attributes.get("enduser.id") == "user-0042" for x in s)
    )
    tagged = [s for s in spans if s.attributes.get("enduser.id") == "user-0042"]
    assert {(s.service, s.kind) for s in tagged} == {("frontend", SERVER)}


@pytest.mark.slow
def test_every_pod_carries_its_kubernetes_identity(shop: Shop) -> None:
    """Each service's spans name its pod, ReplicaSet and Deployment, derived as in a cluster."""
    spans = shop.receiver.wait_for(lambda s: len({x.service for x in s}) == 7)
    for span in spans:
        resource = span.resource
        match = POD_NAME.match(str(resource.get("k8s.pod.name")))
        assert match, resource
        deployment, template_hash = match.groups()
        assert resource["k8s.namespace.name"] == "shop"
        assert resource["k8s.deployment.name"] == deployment == resource["service.name"]
        assert resource["k8s.replicaset.name"] == f"{deployment}-{template_hash}"
        assert resource["service.version"] == "1.0.0"
        assert resource["k8s.container.name"] == deployment


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The shop's shared runtime module, imported from examples/."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("shop.runtime")


def test_endpoints_follow_the_service_file(runtime: ModuleType, tmp_path: Path) -> None:
    """Callers pick pods round-robin from the endpoints file and see it change (a rollout)."""
    (tmp_path / "payment").write_text("127.0.0.1:1\n127.0.0.1:2\n")
    endpoints = runtime.Endpoints("payment", environ={"SHOP_ENDPOINTS_DIR": str(tmp_path)})
    assert {endpoints.pick() for _ in range(4)} == {"127.0.0.1:1", "127.0.0.1:2"}
    (tmp_path / "payment").write_text("127.0.0.1:3\n")
    endpoints._read_at = 0.0
    assert endpoints.pick() == "127.0.0.1:3"
    (tmp_path / "payment").write_text("")
    endpoints._read_at = 0.0
    with pytest.raises(runtime.NoEndpointsError):
        endpoints.pick()


@pytest.mark.parametrize(("rate", "expected"), [("0", False), ("1", True), ("", False)])
def test_fault_injection_reads_the_pod_environment(
    runtime: ModuleType, rate: str, expected: bool
) -> None:
    """SHOP_FAIL_RATE decides whether a request fails; SHOP_EXTRA_LATENCY_MS slows it."""
    faults = runtime.Faults(environ={"SHOP_FAIL_RATE": rate, "SHOP_EXTRA_LATENCY_MS": "30"})
    started = time.monotonic()
    assert asyncio.run(faults.work(0.0)) is expected
    assert time.monotonic() - started >= 0.02


def test_broker_hands_each_message_out_once(
    runtime: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster's broker service queues messages in order and gives each to one taker."""
    orders = importlib.import_module("shop.orders")
    broker = importlib.import_module("shop.broker")
    monkeypatch.setattr(broker, "store", orders.SqliteBackend(tmp_path / "queue.db"))

    async def scenario() -> tuple[list[Any], list[Any]]:
        client = orders.BrokerBackend("http://broker")
        client.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=broker.app), base_url="http://broker"
        )
        async with client.http:
            for n in (1, 2, 3):
                await client.put("orders", {"n": n}, {"traceparent": f"t{n}"})
            return await client.take("orders", 2), await client.take("orders", 5)

    first, rest = asyncio.run(scenario())
    assert first == [({"n": 1}, {"traceparent": "t1"}), ({"n": 2}, {"traceparent": "t2"})]
    assert rest == [({"n": 3}, {"traceparent": "t3"})]


@pytest.mark.slow
def test_load_generator_shops_as_many_users(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """The users browse, fill carts and check out through the frontend, none of them failing."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    loadgen = importlib.import_module("shop.loadgen")
    frontend = shop.frontend.removeprefix("http://")
    users = loadgen.LoadGenerator(
        lambda: [frontend], users=50, sessions_per_s=20.0, rng=random.Random(1)
    )

    async def shop_for(seconds: float) -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await users.run(stop)

    asyncio.run(shop_for(1.5))
    counters = users.counters
    assert counters.checkouts > 0 and len(counters.users) > 5
    assert counters.errors == counters.failed_checkouts == 0
    assert counters.fallbacks > 0  # recommendation always fails in this shop
