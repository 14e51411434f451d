"""Retention prune at scale: a large store is pruned without holding up a shutdown."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from podtrace_collector.aggregate.stats import Aggregates, RevisionStats
from podtrace_collector.store.sqlite import SqliteStore

from tests.collector.otlp_helpers import collector_process
from tests.collector.store.samples import registry

T0 = 1_700_000_000 - 1_700_000_000 % 3600  # 2023: long before any retention horizon
REVISIONS = 40_000


def _old_store(path: Path) -> None:
    store = SqliteStore(path)
    for m in range(REVISIONS // 1000):
        a = Aggregates()
        at_ns = (T0 + 60 * m) * 1_000_000_000
        for i in range(1000):
            k = m * 1000 + i
            a.revisions[(f"ns/w{k}", "r1")] = RevisionStats(
                service=f"w{k}", first_seen_ns=at_ns, last_seen_ns=at_ns, requests=1
            )
        a.count(1000, 1000)
        store.write({T0 + 60 * m: a})
    store.close()


@pytest.mark.slow
def test_sigterm_while_pruning_40k_revisions_stops_promptly(tmp_path: Path) -> None:
    """A gateway starting on a store of 40,000 expired revisions prunes them at start; SIGTERM
    right then stops it within seconds, exit 0, and the store opens fine afterwards."""
    path = tmp_path / "podtrace.db"
    _old_store(path)
    store_args = ["--store", f"sqlite:///{path}", "--retention", "1h"]
    with collector_process(*store_args) as (process, _):
        os.kill(process.pid, signal.SIGTERM)
        stopped = time.monotonic()
        assert process.wait(30) == 0
    assert time.monotonic() - stopped < 15
    store = SqliteStore(path)  # checked at open (quick_check): not damaged
    left = registry(store)
    assert len(left) in (0, REVISIONS)  # the prune ran to its end, or stopped between steps
    store.prune(time.time() - 3600)
    assert registry(store) == {}
    store.close()
