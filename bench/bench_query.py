"""Query API latency: ``GET /api/v1/blast-radius`` over one hour of aggregates for 50 services.

The store is filled with synthesised per-minute ``Aggregates`` (not spans) standing for 10 million
spans in the hour: 50 workloads (5 of them mid-rollout, both revisions live, the new ones slower),
150 call edges, 20 entry operations, background failures everywhere so every impact table is
populated, latency histograms of realistic width, transit per caller and callee revision, and the
latency maps (each revision on the critical path of the 5 workloads above it and of every entry
operation), so that the report computes a non-empty ``latency_impact``.  The reported rollout
(service 0) is slower to reach rather than slower in its own code (its self time grows through
transit), so its report runs the caller control too.  Then, side by side in one run:

- the store read a report plans (``SqliteStore.read(plan_blast_radius …)``: one snapshot, the
  revision's and its baseline's histograms and impacts, every workload's counters);
- a read of the whole hour with every histogram merged (what a report would pay unplanned);
- ``GET /api/v1/blast-radius`` through the ASGI app (FastAPI ``TestClient``), 60 times;
- ``GET /api/v1/graph`` and ``/api/v1/workloads`` over the same hour, for context.

Run: ``.venv/bin/python -m bench bench_query``.
"""

from __future__ import annotations

import math
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from podtrace_collector import query
from podtrace_collector.aggregate.histogram import Histogram, bucket_of
from podtrace_collector.aggregate.stats import (
    Aggregates,
    Count,
    EdgeStats,
    EntryImpact,
    EntryLatencyImpact,
    EntryTotal,
    Impact,
    LatencyImpact,
    OriginStats,
    RevisionStats,
    TransitStats,
)
from podtrace_collector.aggregate.window import Registry, Window
from podtrace_collector.store.base import Store, read_windows
from podtrace_collector.store.sqlite import SqliteStore

SERVICES = 50
ROLLED = 5  # services with a second revision appearing half-way through the hour
MINUTES = 60
SPANS = 10_000_000
SPANS_PER_TRACE = 20
FANOUT = 3
ENTRY_SERVICES, OPS_PER_ENTRY = 5, 4
UPSTREAM = 5  # workloads with a revision on their critical path, per revision
SLOWER = 3.0  # the new revisions' own time and shares, against the old ones'
RUNS = 60
BATCH = 10  # minutes per store write while filling


def _hist(rng: random.Random, median_ms: float, n: int) -> Histogram:
    """A log-normal-shaped histogram of ``n`` values, built bin by bin (not value by value)."""
    centre, counts = bucket_of(median_ms), {}
    width = 25  # ~±2.5 sigma of a sigma=0.4 log-normal in 4 % bins
    weights = [math.exp(-0.5 * (k / 10) ** 2) for k in range(-width, width + 1)]
    total_w = sum(weights)
    for k, w in zip(range(-width, width + 1), weights, strict=True):
        c = int(n * w / total_w * rng.uniform(0.8, 1.2))
        if c:
            counts[centre + k] = c
    return Histogram(counts)


def _name(i: int) -> str:
    return f"shop/svc{i:02d}"


def _minute(rng: random.Random, minute: int, bucket_s: int, services: int = SERVICES) -> Aggregates:
    spans_per_service = SPANS // MINUTES // services
    requests = spans_per_service // 2  # about half the spans are SERVER/CONSUMER
    ns = bucket_s * 1_000_000_000
    a = Aggregates()
    a.count(SPANS // MINUTES // SPANS_PER_TRACE, SPANS // MINUTES)
    for i in range(services):
        revs = ["new00"] if i < ROLLED and minute >= MINUTES // 2 else []
        revs = ["old00", *revs]
        for rev in revs:
            n = requests // len(revs)
            errors = n // (10 if rev == "new00" else 200)
            slower = SLOWER if rev == "new00" else 1.0
            # The reported rollout (service 0) is slower to reach: its own time does not grow.
            own_slower = 1.0 if i == 0 else slower
            a.revisions[(_name(i), rev)] = RevisionStats(
                "Deployment", f"svc{i:02d}", "2.0" if rev == "new00" else "1.0",
                ns + 1, ns + 59_000_000_000, {f"svc{i:02d}-{rev}-p{k}" for k in range(3)},
                n, errors, errors // 2,
                _hist(rng, 20 + i, n), _hist(rng, (5 + i % 7) * slower, n),
                _hist(rng, (5 + i % 7) * own_slower, n),
            )  # fmt: skip
            _latency_maps(rng, a, i, rev, n, slower, services)
            a.origins[(_name(i), rev)] = OriginStats(
                errors // 3, 3, {f"user{rng.randrange(5000)}" for _ in range(10)},
                [f"{rng.getrandbits(128):032x}" for _ in range(2)],
            )  # fmt: skip
            for k in range(1, FANOUT + 1):
                a.impacts[(_name(i), rev, _name((i - k) % services))] = Impact(errors // (k + 1), k)
                a.absorbed[(_name(i), rev, _name((i - k) % services))] = Count(errors // 10)
            for e in range(ENTRY_SERVICES):
                users = {f"user{rng.randrange(5000)}" for _ in range(5)}
                a.entry_impacts[(_name(i), rev, _name(e), f"GET /op{e % OPS_PER_ENTRY}")] = (
                    EntryImpact(errors // 5, 2, users)
                )
        for k in range(1, FANOUT + 1):
            callee = (i + k) % services
            a.edges[(_name(i), _name(callee))] = EdgeStats(
                requests // FANOUT, requests // 300, _hist(rng, 15 + i, requests // FANOUT)
            )
            callee_revs = ["old00", "new00"] if callee < ROLLED and minute >= MINUTES // 2 else []
            for rev in callee_revs or ["old00"]:
                n = requests // FANOUT // max(len(callee_revs), 1)
                added = (SLOWER - 1) * (5 + callee % 7) if callee == 0 and rev == "new00" else 0.0
                ms = 1.0 + added + k / 10
                h = _hist(rng, ms, n)
                a.transit[(_name(callee), rev, _name(i))] = TransitStats(n, h)
                out = a.transit_out.setdefault((_name(i), "old00"), TransitStats())
                out.merge(TransitStats(n, h))
    for callee, _, caller in a.transit:
        for rev in ("old00", "new00"):
            if (callee, rev) in a.revisions:
                a.revisions[(callee, rev)].callers.add(caller)
    for e in range(ENTRY_SERVICES):
        for op in range(OPS_PER_ENTRY):
            n = requests // OPS_PER_ENTRY
            a.entry_totals[(_name(e), f"GET /op{op}")] = EntryTotal(n, n // 2)
    return a


def _latency_maps(
    rng: random.Random, a: Aggregates, i: int, rev: str, n: int, slower: float, services: int
) -> None:
    """Workload ``i`` at ``rev`` on the critical path of the ``UPSTREAM`` workloads above it and
    of every entry operation, with a share of about its own time."""
    share_ms = (5 + i % 7) * slower
    for k in range(1, UPSTREAM + 1):
        exposed = n // (k + 1)
        a.latency_impacts[(_name(i), rev, _name((i - k) % services))] = LatencyImpact(
            exposed, _hist(rng, share_ms, exposed), _hist(rng, 20 + k * 5, exposed), k + 1
        )
    for e in range(ENTRY_SERVICES):
        exposed = n // 10
        users = {f"user{rng.randrange(5000)}" for _ in range(5)}
        a.entry_latency_impacts[(_name(i), rev, _name(e), f"GET /op{e % OPS_PER_ENTRY}")] = (
            EntryLatencyImpact(
                exposed, _hist(rng, share_ms, exposed), _hist(rng, 60, exposed), 4, users
            )
        )


def fill(store: Store, end_s: int) -> float:
    """Write one hour of minutes ending at ``end_s``; returns the seconds it took."""
    rng = random.Random(7)
    start = end_s - MINUTES * 60
    t0 = time.perf_counter()
    for batch in range(0, MINUTES, BATCH):  # as the writer drains them after a pause
        store.write(
            {start + 60 * m: _minute(rng, m, start + 60 * m) for m in range(batch, batch + BATCH)}
        )
    return time.perf_counter() - t0


def _timed(fn: Callable[[], object], runs: int) -> list[tuple[float, float]]:
    """(wall ms, process CPU ms) per run: CPU time stays meaningful on a busy machine."""
    out = []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        out.append(((time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000))
    return out


def _stats(runs: list[tuple[float, float]]) -> str:
    wall = sorted(w for w, _ in runs)
    p95 = wall[min(len(wall) - 1, int(0.95 * len(wall)))]
    cpu = statistics.median(c for _, c in runs)
    return f"median {statistics.median(wall):7.2f} ms   p95 {p95:7.2f} ms   CPU {cpu:7.2f} ms"


def _plan(end_s: float) -> Callable[[Registry], query.BlastPlan]:
    return lambda registry: query.plan_blast_radius(
        registry, workload=_name(0), since_s=end_s - 3600, now_s=end_s
    )


def main() -> None:
    with warnings.catch_warnings():  # starlette's TestClient warns about its httpx backend
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from podtrace_collector.api.app import create_app  # the collector extra

    end_s = int(time.time()) // 60 * 60 + 60
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        fill_s = fill(store, end_s)
        size_mb = (Path(tmp) / "bench.db").stat().st_size / 1e6
        print(f"store: {MINUTES} minutes, {SERVICES} services, {SPANS:,} spans represented;"
              f" filled in {fill_s:.1f} s, {size_mb:.0f} MB (+WAL)")  # fmt: skip
        everything = _timed(lambda: read_windows(store, Window(end_s - 3600, end_s)), 5)
        with TestClient(create_app_for(create_app, store), base_url="http://localhost") as client:
            url = f"/api/v1/blast-radius?workload={_name(0)}&since=1h"
            first = client.get(url)
            assert first.status_code == 200, first.text
            raw, api = [], []
            for _ in range(RUNS):  # interleaved, so both see the same machine load
                now = time.time()
                raw += _timed(lambda: store.read(_plan(now)), 1)  # noqa: B023
                api += _timed(lambda: client.get(url), 1)
            graph = _timed(lambda: client.get("/api/v1/graph?since=1h"), 10)
            inventory = _timed(lambda: client.get("/api/v1/workloads?since=1h"), 10)
        report = first.json()
        slowed = report["latency_impact"]
        print(f"report: verdict {report['verdict']}, {report['requests']:,} requests,"
              f" {len(report['affected_services'])} affected services,"
              f" {len(slowed['services'])} slowed services,"
              f" {len(slowed['entrypoints'])} slowed entry points,"
              f" slowdown {(report['slowdown'] or {}).get('where')}")  # fmt: skip
        print(f"SQLite read of a report's plan        {_stats(raw)}")
        print(f"SQLite read of the whole hour         {_stats(everything)}")
        print(f"GET /api/v1/blast-radius (x{RUNS})      {_stats(api)}")
        print(f"GET /api/v1/graph                     {_stats(graph)}")
        print(f"GET /api/v1/workloads                 {_stats(inventory)}")
        ratio = statistics.median(w for w, _ in api) / statistics.median(w for w, _ in raw)
        print(f"blast-radius / its store read: {ratio:.1f}x   (target: median < 50 ms)")
        store.close()


def create_app_for(create_app: Callable[..., object], store: SqliteStore) -> object:
    """The collector's ASGI app serving ``store``."""
    from podtrace_collector.metrics import CollectorMetrics

    return create_app(metrics=CollectorMetrics(), store=store)


if __name__ == "__main__":
    main()
