"""The stores side by side: SQLite (one gateway) and ClickHouse through chDB (a fleet).

In one run, on the same synthesised aggregates (``bench_query``'s shop):

- **writes**: one gateway's minute of aggregates for 500 services (about 15,000 keys), as the
  writer sends it every 2 s, 12 minutes in a row (so that a 10-minute bucket ends among them and
  SQLite builds its coarse rows); then three writers on one database at once, each sending such
  a minute every 2 s, to see that every write ends well within the interval;
- **reads**: the blast-radius store read of ``bench_query`` (one hour, 50 services, 10 million
  spans represented), and chDB's own cost of a query (``SELECT 1`` through the same client);
- **disk**: bytes per hour of aggregates (the 50-service hour), for SQLite the file, for
  ClickHouse the parts as written and after the background merges (``OPTIMIZE … FINAL``).

ClickHouse here is the in-process engine on this machine's 2 cores, sharing them with Python;
a server on its own cores answers faster.  Run: ``.venv/bin/python -m bench bench_store``.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from podtrace_collector.aggregate.stats import MAPS
from podtrace_collector.store.base import Store
from podtrace_collector.store.clickhouse import ClickHouseStore
from podtrace_collector.store.sqlite import SqliteStore

from bench.bench_query import _minute, _plan, _stats, _timed, fill

WRITE_SERVICES = 500
INTERVAL_S = 2.0
MINUTES = 12  # minutes written one after the other: a 10-minute bucket ends among them
ROUNDS = 12  # minutes written by each of the three concurrent writers


def _engine(tmp: str) -> Callable[[str], ClickHouseStore]:
    return lambda db: ClickHouseStore(f"chdb://{tmp}/engine?database={db}")


def _writes(name: str, make: Callable[[], Store], end_s: int) -> None:
    rng = random.Random(3)
    minutes = [_minute(rng, m, end_s + 60 * m, WRITE_SERVICES) for m in range(MINUTES + 1)]
    keys = sum(len(getattr(minutes[0], spec.name)) for spec in MAPS)
    store = make()
    store.write({end_s - 60: minutes[0]})  # warm: tables, caches
    runs = []
    for m, agg in enumerate(minutes[1:], 1):
        runs += _timed(lambda agg=agg, m=m: store.write({end_s + 60 * m: agg}), 1)  # type: ignore[misc]
    print(f"{name} write of a minute, {WRITE_SERVICES} services ({keys:,} keys)  {_stats(runs)}"
          f"  slowest {max(w for w, _ in runs):7.1f} ms")  # fmt: skip
    store.close()


def _concurrent(name: str, make: Callable[[], Store], end_s: int) -> None:
    """Three writers, each a minute of 500 services every INTERVAL_S: the slowest write."""
    rng = random.Random(4)
    minutes = [_minute(rng, m, end_s + 60 * m, WRITE_SERVICES) for m in range(ROUNDS)]
    stores = [make() for _ in range(3)]
    stores[0].write({end_s - 60: minutes[0]})
    times: list[float] = []

    def writer(st: Store) -> None:
        for m, agg in enumerate(minutes):
            t0 = time.perf_counter()
            st.write({end_s + 60 * m: agg})
            took = time.perf_counter() - t0
            times.append(took)
            time.sleep(max(0.0, INTERVAL_S - took))

    threads = [threading.Thread(target=writer, args=(st,)) for st in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for st in stores:
        st.close()
    print(f"{name} 3 writers x {ROUNDS} minutes at once: median"
          f" {statistics.median(times) * 1000:7.1f} ms, slowest {max(times) * 1000:7.1f} ms"
          f" (interval {INTERVAL_S * 1000:.0f} ms)")  # fmt: skip


def _clickhouse_bytes(st: ClickHouseStore) -> int:
    client = st._reader()
    db = st.target.database
    ((size,),) = client.query(
        "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} AND active",
        parameters={"db": db},
    ).result_rows
    return int(size)


def main() -> None:
    end_s = int(time.time()) // 60 * 60 + 60
    with tempfile.TemporaryDirectory() as tmp:
        engine = _engine(tmp)
        sqlite_path = Path(tmp) / "bench.db"
        sqlite = SqliteStore(sqlite_path)
        clickhouse = engine("read")
        for name, st in (("SQLite    ", sqlite), ("ClickHouse", clickhouse)):
            print(f"{name} filled one hour (50 services, 10M spans) in {fill(st, end_s):.1f} s")
        sqlite_mb = sqlite_path.stat().st_size / 1e6
        written_mb = _clickhouse_bytes(clickhouse) / 1e6
        clickhouse._reader().command("OPTIMIZE TABLE `read`.aggregates FINAL")
        merged_mb = _clickhouse_bytes(clickhouse) / 1e6
        print(f"disk per hour: SQLite {sqlite_mb:.1f} MB (3 tiers);  ClickHouse {written_mb:.1f}"
              f" MB as written, {merged_mb:.1f} MB merged (4 tiers, compressed)")  # fmt: skip
        reads = {"SQLite": [], "ClickHouse": []}  # type: dict[str, list[tuple[float, float]]]
        overhead = _timed(lambda: clickhouse._reader().query("SELECT 1"), 30)
        for _ in range(30):  # interleaved, so both see the same machine load
            now = time.time()
            reads["SQLite"] += _timed(lambda: sqlite.read(_plan(now)), 1)  # noqa: B023
            reads["ClickHouse"] += _timed(lambda: clickhouse.read(_plan(now)), 1)  # noqa: B023
        print(f"SQLite     blast-radius read          {_stats(reads['SQLite'])}")
        print(f"ClickHouse blast-radius read          {_stats(reads['ClickHouse'])}")
        print(f"chDB's own cost of a query (SELECT 1)  {_stats(overhead)}")
        sqlite.close()
        clickhouse.close()
        _writes("SQLite    ", lambda: SqliteStore(Path(tmp) / "writes.db"), end_s)
        _writes("ClickHouse", lambda: engine("writes"), end_s)
        shared = Path(tmp) / "shared.db"
        _concurrent("SQLite    ", lambda: SqliteStore(shared), end_s)
        _concurrent("ClickHouse", lambda: engine("fleet"), end_s)


if __name__ == "__main__":
    main()
