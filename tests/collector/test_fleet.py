"""A fleet of gateways on one ClickHouse answers as one gateway does, field for field.

One generated scenario (a shop whose cart rolls out a failing revision), its traces routed by
trace id with the sidecar's own function (``forward.route.rendezvous_pick``) over three real
analysis stages (assembler → analyser → store writer) writing concurrently to one database of the
in-process engine, and the same spans through one stage into another database.  Every API
endpoint's JSON must be equal.  Variants: a gateway whose insert answers get lost (its writer
resends, the engine drops the repeat), and a gateway stopped mid-run and started again.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import OperationalError
from podtrace_collector.api.app import create_app
from podtrace_collector.budget import MemoryBudget
from podtrace_collector.forward.route import rendezvous_pick
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.model import Span
from podtrace_collector.stage import AnalysisStage
from podtrace_collector.store.clickhouse import ClickHouseStore

from tests.collector.analyse.tracebuilder import Trace, deployment
from tests.collector.api.test_routes import Server
from tests.collector.chdb_engine import chdb_url

FRONTEND = deployment("shop", "frontend", "6f8b9c7d4", version="2.0.0")
CHECKOUT = deployment("shop", "checkout", "84c6d5f7b", version="3.1.0")
CART_OLD = deployment("shop", "cart", "5c4b3a291", version="1.3.0")
CART_NEW = deployment("shop", "cart", "7d9f8c6b5", version="1.4.0")
PAYMENT = deployment("shop", "payment", "59d7c8b6f", version="1.0.0")
MINUTES, PER_MINUTE = 16, 14
SEEDS = [b"gateway-0", b"gateway-1", b"gateway-2"]


def scenario(start_s: int) -> list[list[Span]]:
    """Traces of a shop over ``MINUTES``: cart's new revision from half-way, failing often;
    its failures reach checkout and the frontend, or checkout absorbs them."""
    rng = random.Random(11)
    traces = []
    for m in range(MINUTES):
        for k in range(PER_MINUTE):
            t = Trace(base_s=start_s + 60 * m)
            new = m >= MINUTES // 2 and k % 2 == 0
            fails = rng.random() < (0.4 if new else 0.03)
            absorbed = fails and rng.random() < 0.3
            user = f"user{rng.randrange(25)}"
            root_ms = k * 3_000 + rng.uniform(0, 500)
            if k % 3 == 0:  # GET /cart: the frontend calls cart directly
                root = t.server(FRONTEND, "GET /cart", method="GET", route="/cart", user=user,
                                start_ms=root_ms, dur_ms=40, error=fails)  # fmt: skip
                t.call(root, CART_NEW if new else CART_OLD, "GET /items",
                       start_ms=root_ms + 5, dur_ms=rng.uniform(3, 30), error=fails)  # fmt: skip
            else:
                propagated = fails and not absorbed
                root = t.server(FRONTEND, "POST /checkout", method="POST", route="/checkout",
                                user=user, start_ms=root_ms, dur_ms=90,
                                error=propagated)  # fmt: skip
                co = t.call(root, CHECKOUT, "POST /orders", start_ms=root_ms + 5, dur_ms=70,
                            error=propagated)  # fmt: skip
                t.call(co, CART_NEW if new else CART_OLD, "GET /items",
                       start_ms=root_ms + 10, dur_ms=rng.uniform(3, 30), error=fails)  # fmt: skip
                t.call(co, PAYMENT, "POST /pay", start_ms=root_ms + 45, dur_ms=rng.uniform(5, 15))
            traces.append(t.shuffled(seed=k))
    return traces


class Gateway:
    """One gateway's analysis stage over a ClickHouse store, fed from a thread."""

    def __init__(self, store: ClickHouseStore) -> None:
        self.store = store
        self.stage = AnalysisStage(
            store,
            MemoryBudget(1 << 30, 1_000_000),
            trace_timeout_s=0.2,
            retention_s=0,
            write_interval_s=0.05,
        )
        self.stage.start()

    def feed(self, traces: Sequence[list[Span]]) -> None:
        for i, spans in enumerate(traces):
            self.stage.submit(spans)
            if i % 5 == 4:
                time.sleep(0.05)  # spread over many writes

    def stop(self) -> None:
        self.stage.close(timeout_s=20)
        writer = self.stage.writer
        for _ in range(3):  # a last write whose answer was lost: sent again
            if writer.pending_buckets:
                writer.flush()
        assert writer.pending_buckets == 0 and writer.dropped_buckets == 0


class LosingStore(ClickHouseStore):
    """Every third insert lands and then its answer is lost (a connection reset)."""

    inserts = 0

    def _insert(self, client: Any, columns: list[list[Any]], token: str) -> None:
        super()._insert(client, columns, token)
        self.inserts += 1
        if self.inserts % 3 == 1:
            raise OperationalError("connection reset by peer")


def _run(traces: list[list[Span]], stores: list[ClickHouseStore], *, restart: bool) -> None:
    """Route ``traces`` over one gateway per store, all feeding at once; with ``restart`` the
    last gateway stops half-way through its share and a new one (a new store) takes over."""
    shares: list[list[list[Span]]] = [[] for _ in stores]
    for spans in traces:
        shares[rendezvous_pick(spans[0].trace_id, SEEDS[: len(stores)])].append(spans)
    gateways = [Gateway(st) for st in stores]

    def feed(i: int) -> None:
        share = shares[i]
        if restart and i == len(stores) - 1:
            half = len(share) // 2
            gateways[i].feed(share[:half])
            gateways[i].stop()
            gateways[i] = Gateway(ClickHouseStore(chdb_url(stores[i].target.database)))
            share = share[half:]
        gateways[i].feed(share)

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for g in gateways:
        g.stop()
        if g.store not in stores:
            g.store.close()


def _endpoints(start_s: int) -> list[str]:
    since, until = (_iso(start_s), _iso(start_s + 60 * MINUTES + 60))
    window = f"since={since}&until={until}"
    paths = [f"/api/v1/workloads?{window}", f"/api/v1/rollouts?{window}",
             f"/api/v1/graph?{window}"]  # fmt: skip
    for workload in ("shop/cart", "shop/checkout", "shop/frontend", "shop/payment"):
        paths.append(f"/api/v1/blast-radius?workload={workload}&{window}")
    paths.append(f"/api/v1/blast-radius?workload=shop/cart&revision=5c4b3a291&{window}")
    paths.append(f"/api/v1/blast-radius?workload=shop/cart&since={_iso(start_s + 540)}")
    return paths


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def served() -> Iterator[tuple[Server, Server, list[ClickHouseStore], ClickHouseStore]]:
    """Empty fleet and single-gateway databases, each served by the collector's API."""
    fleet_db, single_db = chdb_url(), chdb_url()
    fleet = [ClickHouseStore(fleet_db) for _ in SEEDS]
    single = ClickHouseStore(single_db)
    apis = (
        Server(create_app(metrics=CollectorMetrics(), store=fleet[0])),
        Server(create_app(metrics=CollectorMetrics(), store=single)),
    )
    yield apis[0], apis[1], fleet, single
    for api in apis:
        api.stop()
    for st in [*fleet, single]:
        st.close()


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["plain", "lost answers", "restart"])
def test_a_fleet_answers_as_one_gateway(served: Any, variant: str) -> None:
    """Every endpoint's JSON from three gateways (any of them) equals one gateway's."""
    fleet_api, single_api, fleet, single = served
    if variant == "lost answers":  # gateway 1 loses the answer to every third insert
        fleet[1].close()
        fleet[1] = LosingStore(chdb_url(fleet[0].target.database))
    start_s = int(time.time()) // 3600 * 3600 - 3 * 3600 - 30 * 60  # across an hour boundary
    traces = scenario(start_s)
    _run(traces, fleet, restart=variant == "restart")
    _run(traces, [single], restart=False)
    if variant == "lost answers":
        assert isinstance(fleet[1], LosingStore) and fleet[1].inserts >= 4  # two lost, or more
    compared = 0
    for path in _endpoints(start_s):
        mine, theirs = fleet_api.get(path), single_api.get(path)
        assert mine.status_code == theirs.status_code == 200, (path, mine.text)
        assert mine.json() == theirs.json(), path
        compared += 1
    cart = single_api.get(_endpoints(start_s)[3]).json()
    assert cart["verdict"] == "regressed" and cart["affected_services"] and cart["entrypoints"]
    assert cart["exemplar_trace_ids"] and cart["affected_users"] > 0 and compared == 9
    # any gateway answers: another fleet member's store reads the same
    other = Server(create_app(metrics=CollectorMetrics(), store=fleet[2]))
    try:
        for path in _endpoints(start_s)[:4]:
            assert other.get(path).json() == fleet_api.get(path).json()
    finally:
        other.stop()
