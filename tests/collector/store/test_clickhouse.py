"""Tests for store.clickhouse beyond the shared contract (test_contract.py), on the real engine.

Each test has a database of its own on the session's in-process engine (``chdb_engine``).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import OperationalError
from podtrace_collector.aggregate.stats import Aggregates, RevisionStats
from podtrace_collector.aggregate.window import Reads, Registry, Window
from podtrace_collector.errors import ConfigError, StoreError
from podtrace_collector.store import _chschema
from podtrace_collector.store.clickhouse import ClickHouseStore
from podtrace_collector.store.writer import StoreWriter

from tests.collector.chdb_engine import chdb_url
from tests.collector.store.samples import T0, merged, registry, sample, window
from tests.collector.store.test_writer import Source

DAY = 86_400


def _sql(st: ClickHouseStore, sql: str) -> list[Any]:
    """Rows of a query on the store's own database (``{db}`` in ``sql``)."""
    client = st._reader()
    return list(client.query(sql.replace("{db}", _chschema.q(st.target.database))).result_rows)


def _active_parts(st: ClickHouseStore) -> list[str]:
    return [
        r[0]
        for r in _sql(
            st,
            "SELECT name FROM system.parts WHERE database = "
            f"'{st.target.database}' AND table = 'aggregates' AND active",
        )
    ]


@pytest.fixture
def store() -> Any:
    st = ClickHouseStore(chdb_url())
    yield st
    st.close()


def test_a_write_is_one_part(store: ClickHouseStore) -> None:
    """A batch of minutes across hours and days becomes one part: visible all at once."""
    batch = {T0 + k * 1_800: sample(k, bucket_s=T0 + k * 1_800) for k in range(100)}
    store.write(batch)
    assert len(_active_parts(store)) == 1
    store.write({T0: sample(0)})
    assert len(_active_parts(store)) <= 2
    assert window(store) == merged(*batch.values(), sample(0))


def test_rows_per_tier(store: ClickHouseStore) -> None:
    """A minute is stored as a minute, an hour and a day row per key, merged by the engine."""
    store.write({T0: sample(0), T0 + 60: sample(1, bucket_s=T0 + 60)})
    rows = _sql(
        store,
        "SELECT tier, count(), sum(requests) FROM {db}.aggregates WHERE"
        " map = 'revisions' AND key1 = 'shop/cart' GROUP BY tier ORDER BY tier",
    )
    assert T0 // 600 == (T0 + 60) // 600  # one 10 minutes, one hour, one day
    assert rows == [(60, 2, 201), (600, 1, 201), (3600, 1, 201), (DAY, 1, 201)]


def test_a_merge_during_a_read_starts_it_over(store: ClickHouseStore) -> None:
    """When a merge folds a write made during a read into a part the read needs, the read
    starts over, and what it returns is still one snapshot (now with that write)."""
    store.write({T0: sample(0)})
    calls: list[Registry] = []

    def plan(reg: Registry) -> Reads:
        calls.append(reg)
        if len(calls) == 1:  # a write, then a merge of everything into one part
            store.write({T0: sample(5)})
            _sql(store, "OPTIMIZE TABLE {db}.aggregates FINAL")
        return Reads([Window(), Window(T0, T0 + 60)])

    snapshot = store.read(plan)
    assert len(calls) == 2 and calls[0][("shop/cart", "abc12")].requests == 100
    both = merged(sample(0), sample(5))
    assert snapshot.windows == [both, both]
    assert snapshot.registry[("shop/cart", "abc12")].requests == 205


class LosingStore(ClickHouseStore):
    """Each insert lands, and then the answer is lost (a connection reset) while ``losing``."""

    losing = 1

    def _insert(self, client: Any, columns: list[list[Any]], token: str) -> None:
        super()._insert(client, columns, token)
        if self.losing:
            self.losing -= 1
            raise OperationalError("connection reset by peer")


def test_a_batch_resent_after_a_lost_answer_is_counted_once() -> None:
    """The writer resends a batch whose answer was lost; the insert token makes the engine
    drop the second copy."""
    st = LosingStore(chdb_url())
    src = Source()
    w = StoreWriter(src, st, retention_s=0)
    src.add(T0, sample(0))
    assert not w.flush() and not w.healthy
    src.add(T0 + 60, sample(1, bucket_s=T0 + 60))
    assert w.flush() and w.healthy
    assert window(st) == merged(sample(0), sample(1, bucket_s=T0 + 60))
    st.write({T0: sample(0)})  # the same minutes written anew are a new write: counted
    assert window(st).traces == 2 * sample(0).traces + sample(1).traces
    st.close()


def test_missing_columns_and_ingest_tables_are_made_at_open() -> None:
    """A database from before a field was declared gets the column (and a new ingest table
    and view) when a store opens it; old rows read the field as its neutral value."""
    url = chdb_url()
    st = ClickHouseStore(url)
    st.write({T0: sample(0)})
    ingest = _chschema.ingest_name()
    _sql(st, f"DROP TABLE {{db}}.{ingest}_mv")
    _sql(st, f"DROP TABLE {{db}}.{ingest}")
    _sql(st, "ALTER TABLE {db}.aggregates DROP COLUMN with_user")
    st.close()
    again = ClickHouseStore(url)
    got = window(again)
    assert got.entry_totals[("shop/frontend", "POST /checkout")].with_user == 0
    again.write({T0: sample(1)})
    assert window(again).entry_totals[("shop/frontend", "POST /checkout")].with_user == 251
    tables = {r[0] for r in _sql(again, "SHOW TABLES FROM {db}")}
    assert tables == {"aggregates", "horizon", "schema_version", ingest, f"{ingest}_mv"}
    again.close()


def test_another_schema_version_is_refused() -> None:
    """A database written by an incompatible podtrace is a ConfigError at open."""
    url = chdb_url()
    st = ClickHouseStore(url)
    _sql(st, "INSERT INTO {db}.schema_version VALUES (99)")
    st.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        ClickHouseStore(url)


def test_reopening_keeps_everything(store: ClickHouseStore) -> None:
    """A second store on the same database reads what the first wrote."""
    store.write({T0: sample(0), T0 + 60: sample(1, bucket_s=T0 + 60)})
    other = ClickHouseStore(chdb_url(store.target.database))
    assert window(other) == window(store) and registry(other) == registry(store)
    other.close()


def test_retention_deletes_old_rows() -> None:
    """With a retention the TTL drops rows a day past it; recent minutes stay."""
    st = ClickHouseStore(chdb_url(), retention_s=3_600)
    now = int(__import__("time").time()) // 60 * 60
    st.write({T0: sample(0), now: sample(1, bucket_s=now)})  # T0 is days ago
    _sql(st, "OPTIMIZE TABLE {db}.aggregates FINAL")
    assert window(st) == sample(1, bucket_s=now)
    create = _sql(
        st,
        "SELECT create_table_query FROM system.tables WHERE database ="
        f" '{st.target.database}' AND name = 'aggregates'",
    )[0][0]
    assert f"toIntervalSecond({3_600 + DAY})" in create
    st.close()


def test_values_out_of_range_are_not_transient(store: ClickHouseStore) -> None:
    """An integer past Int64 is the data's fault: a StoreError that is not transient."""
    a = Aggregates()
    a.revisions[("shop/poison", "p1")] = RevisionStats(last_seen_ns=2**64, requests=1)
    with pytest.raises(StoreError) as caught:
        store.write({T0: a})
    assert not caught.value.transient
    assert window(store) == Aggregates()


def test_an_unreachable_server_is_transient(caplog: pytest.LogCaptureFixture) -> None:
    """A server that does not answer: the store opens, writes and reads fail transiently."""
    with caplog.at_level(logging.WARNING):
        st = ClickHouseStore("clickhouse://127.0.0.1:1/podtrace")
    assert "not ready" in caplog.text
    for attempt in (lambda: st.write({T0: sample()}), lambda: window(st)):
        with pytest.raises(StoreError) as caught:
            attempt()
        assert caught.value.transient and "127.0.0.1:1" in str(caught.value)
    st.close()


def test_bad_engine_directory_is_a_config_error(tmp_path: Any) -> None:
    """A chdb:// path that cannot be written is refused at open."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot write"):
        ClickHouseStore(f"chdb://{tmp_path}/file/sub")


def test_the_failed_batch_keeps_its_token(store: ClickHouseStore) -> None:
    """Only the very batch that failed is sent with the same token again."""
    a, b = {T0: sample(0)}, {T0: sample(1)}
    assert store._sequence(a) == 1
    store._unacknowledged = (a, 1)
    assert store._sequence(a) == 1 and store._sequence({T0: sample(0)}) == 1
    assert store._sequence(b) == 2
