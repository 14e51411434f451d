"""Retention prune of the SQLite store against the number of workload-revisions it holds.

The registry prune used to be quadratic (2k revisions 0.47 s, 10k 12.1 s, 40k over 150 s, all
under the store lock).  Here: stores of 2k, 10k and 40k revisions spread over old minutes, each
pruned of everything; the figure to read is the cost per revision, which stays flat when the
prune is linear.

Run: ``.venv/bin/python -m bench bench_prune``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from podtrace_collector.aggregate.stats import Aggregates, RevisionStats
from podtrace_collector.store.sqlite import SqliteStore

T0 = 1_700_000_000 - 1_700_000_000 % 3600
PER_MINUTE = 1000


def fill(store: SqliteStore, revisions: int) -> None:
    """``revisions`` workload-revisions, a thousand new ones a minute."""
    for m in range(revisions // PER_MINUTE):
        a = Aggregates()
        at_ns = (T0 + 60 * m) * 1_000_000_000
        for i in range(PER_MINUTE):
            k = m * PER_MINUTE + i
            a.revisions[(f"ns/w{k}", f"r{k % 7}")] = RevisionStats(
                kind="Deployment", service=f"w{k}", first_seen_ns=at_ns, last_seen_ns=at_ns,
                requests=3, errors=1,
            )  # fmt: skip
        a.count(PER_MINUTE, PER_MINUTE * 4)
        store.write({T0 + 60 * m: a})


def main() -> None:
    first = None
    for revisions in (2_000, 10_000, 40_000):
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteStore(Path(tmp) / "prune.db")
            fill(store, revisions)
            started = time.perf_counter()
            minutes = store.prune(T0 + 86_400)
            took = time.perf_counter() - started
            store.close()
        per = took / revisions * 1e6
        first = first or per
        print(f"prune of {revisions:>6,} revisions ({minutes} minutes): {took * 1000:8.1f} ms"
              f"   {per:6.1f} us per revision   {per / first:4.2f}x the 2k cost per"
              " revision")  # fmt: skip


if __name__ == "__main__":
    main()
