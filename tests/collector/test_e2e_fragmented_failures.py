"""A failing trace that reaches the gateway in fragments gets the blast radius it gets whole, end
to end: real OpenTelemetry SDK pods exporting over OTLP into real collectors, answered by the API;
a healthy one, the graph and the entry points it gets whole.

Two pods, the frontend and the cart it calls.  A third of the checkouts fail in cart and the
frontend fails with them (the user sees the error), a third fail in cart and the frontend falls
back (absorbed), a third succeed.  One collector gets every trace whole; the other, with a 0.3 s
trace timeout, gets each pod's spans two seconds apart (the frontend's first for half the traces,
cart's first for the other half), so that every trace is analysed in two fragments.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from podtrace_collector.aggregate.window import Window
from podtrace_collector.collector import Collector
from podtrace_collector.stage import AnalysisStage
from podtrace_collector.store.base import read_windows

from tests.collector.otlp_helpers import metric, running, test_config
from tests.collector.sdkpods import pod_provider

TRACES = 24
SPANS = 3 * TRACES  # the frontend's request and call, cart's request
FIELDS = ("requests", "errors", "origin_errors", "affected_services", "entrypoints",
          "contained_by", "max_hops", "affected_traces", "affected_users")  # fmt: skip


def _checkout(fe: Tracer, cart: Tracer, i: int) -> None:
    """One checkout: cart fails for i % 3 in (0, 1); the frontend fails with it for 0."""
    cart_fails, fe_fails = i % 3 in (0, 1), i % 3 == 0
    attrs = {"http.request.method": "POST", "http.route": "/checkout", "enduser.id": f"u{i % 5}"}
    with fe.start_as_current_span("POST /checkout", kind=SpanKind.SERVER, attributes=attrs) as s:
        with fe.start_as_current_span("POST cart", kind=SpanKind.CLIENT) as call:
            with cart.start_as_current_span("POST /items", kind=SpanKind.SERVER) as served:
                if cart_fails:
                    served.set_status(Status(StatusCode.ERROR))
            if cart_fails:
                call.set_status(Status(StatusCode.ERROR))
        if fe_fails:
            s.set_status(Status(StatusCode.ERROR))


def _pods(collector: Collector) -> tuple[TracerProvider, TracerProvider]:
    """The two pods, exporting only when flushed (the batch processor's tick far away)."""
    batch: dict[str, Any] = {"schedule_delay_millis": 600_000, "max_queue_size": 10_000}
    assert collector.grpc_port and collector.http_port
    fe = pod_provider("frontend", "fe1", grpc_port=collector.grpc_port, **batch)
    cart = pod_provider("cart", "cart1", http_port=collector.http_port, **batch)
    return fe, cart


def _send(collector: Collector, *, gap_s: float) -> None:
    """Every checkout; each pod's spans flushed ``gap_s`` after the other's (0: together)."""
    fe, cart = _pods(collector)
    half = TRACES // 2
    for first, rounds in (((fe, cart), range(half)), ((cart, fe), range(half, TRACES))):
        for i in rounds:
            _checkout(fe.get_tracer("e2e"), cart.get_tracer("e2e"), i)
        first[0].force_flush()
        time.sleep(gap_s)
        first[1].force_flush()
    for p in (fe, cart):
        p.shutdown()


def _settle(collector: Collector) -> None:
    """Wait until every span is analysed and nothing waits for the rest of its trace."""
    api = f"http://127.0.0.1:{collector.api_port}/metrics"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = httpx.get(api).text
        if (
            metric(text, "podtrace_spans_analysed_total") >= SPANS
            and metric(text, "podtrace_fragments_held_spans") == 0
            and metric(text, "podtrace_requests_waiting_for_pair") == 0
        ):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(httpx.get(api).text)
    stage = collector.sink
    assert isinstance(stage, AnalysisStage)
    assert stage.writer.flush()


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Collector]]:
    """The whole collector (5 s trace timeout, pods flushed together) and the fragmented one
    (0.3 s trace timeout, pods flushed 2 s apart: far past it even on a busy machine)."""
    with (
        running(test_config(trace_timeout_s=5.0, pair_wait_s=10.0)) as whole,
        running(test_config(trace_timeout_s=0.3, pair_wait_s=10.0)) as fragmented,
    ):
        _send(whole, gap_s=0.0)
        _send(fragmented, gap_s=2.0)
        _settle(whole)
        _settle(fragmented)
        yield {"whole": whole, "fragmented": fragmented}


def _report(collector: Collector, workload: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{collector.api_port}/api/v1/blast-radius"
    r = httpx.get(url, params={"workload": workload})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return {k: body[k] for k in FIELDS}


def _metric(collector: Collector, name: str) -> float:
    return metric(httpx.get(f"http://127.0.0.1:{collector.api_port}/metrics").text, name)


@pytest.mark.slow
def test_fragments_give_the_blast_radius_of_whole_traces(runs: dict[str, Collector]) -> None:
    """Cart is the origin of every failure, the frontend of none; the failures reach the
    frontend and its users, or are absorbed there, as when the traces arrive whole."""
    whole, fragmented = runs["whole"], runs["fragmented"]
    assert _metric(whole, "podtrace_late_traces_total") == 0
    assert _metric(fragmented, "podtrace_late_traces_total") >= TRACES  # every trace was cut
    failing = TRACES * 2 // 3
    assert _metric(fragmented, "podtrace_fragments_joined_total") == failing
    assert _metric(fragmented, "podtrace_fragments_unpaired_total") == 0
    cart = _report(whole, "shop/cart")
    assert (cart["origin_errors"], cart["affected_traces"], cart["affected_users"]) == (16, 8, 5)
    assert [(s["workload"], s["affected_requests"]) for s in cart["affected_services"]] == [
        ("shop/frontend", 8)
    ]
    assert [c["absorbed_requests"] for c in cart["contained_by"]] == [8]
    assert _report(whole, "shop/frontend")["origin_errors"] == 0
    for workload in ("shop/cart", "shop/frontend"):
        assert _report(fragmented, workload) == _report(whole, workload), workload


@pytest.mark.slow
def test_fragments_give_the_graph_and_entry_points_of_whole_traces(
    runs: dict[str, Collector],
) -> None:
    """Cart's requests are calls from the frontend, not entry points, whichever pod came first,
    the healthy checkouts' too (not held as fragments, their cart request waited as an orphan
    or found the frontend's call waiting): the graph's edges and the stored entry totals and
    edges are those of whole traces."""
    whole, fragmented = runs["whole"], runs["fragmented"]
    assert _metric(fragmented, "podtrace_requests_unpaired_total") == 0
    graphs = [
        [
            (e["source"], e["target"], e["calls"], e["errors"])
            for e in httpx.get(f"http://127.0.0.1:{c.api_port}/api/v1/graph").json()["edges"]
        ]
        for c in (whole, fragmented)
    ]
    assert graphs[0] == [("shop/frontend", "shop/cart", TRACES, TRACES * 2 // 3)]
    assert graphs[1] == graphs[0]  # the two runs' spans differ only in their real durations
    (x,) = read_windows(whole.store, Window())
    (y,) = read_windows(fragmented.store, Window())
    assert list(x.entry_totals) == [("shop/frontend", "POST /checkout")]
    assert y.entry_totals == x.entry_totals
    assert {k: (e.calls, e.latency.total) for k, e in y.edges.items()} == {
        k: (e.calls, e.latency.total) for k, e in x.edges.items()
    }
