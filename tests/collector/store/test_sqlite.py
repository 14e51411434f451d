"""Tests for store.sqlite (and, through the shared cases, store.memory): per-minute aggregates."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from podtrace_collector.aggregate.stats import MAX_EXEMPLARS, Aggregates, EdgeStats, OriginStats
from podtrace_collector.errors import ConfigError
from podtrace_collector.store._lazy import LazyRevisionStats
from podtrace_collector.store.base import Store
from podtrace_collector.store.memory import MemoryStore
from podtrace_collector.store.sqlite import SqliteStore

from tests.collector.store.samples import T0, hist, merged, sample


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    st: Store = SqliteStore(tmp_path / "p.db") if request.param == "sqlite" else MemoryStore()
    yield st
    st.close()


def test_round_trip_every_field(store: Store) -> None:
    """A written minute reads back equal, field by field."""
    store.write({T0: sample(1)})
    assert store.read() == sample(1)


def test_repeated_writes_to_a_minute_merge(store: Store) -> None:
    """Writing the same minute three times equals merging the three in memory."""
    for i in range(3):
        store.write({T0: sample(i)})
    assert store.read() == merged(sample(0), sample(1), sample(2))


def test_window_merges_overlapping_minutes(store: Store) -> None:
    """A window merges exactly the minutes that overlap [start, end)."""
    store.write({T0 + 60 * k: sample(k, bucket_s=T0 + 60 * k) for k in range(4)})
    assert store.read(T0 + 60, T0 + 180) == merged(
        sample(1, bucket_s=T0 + 60), sample(2, bucket_s=T0 + 120)
    )
    # A bound inside a minute includes that minute; an end on a boundary excludes the next.
    assert store.read(T0 + 59.5, T0 + 60.5).traces == sample(0).traces + sample(1).traces
    assert store.read(None, T0 + 60).traces == sample(0).traces
    assert store.read(T0 + 180, None).traces == sample(3).traces


def test_empty_window_is_empty(store: Store) -> None:
    """A window with no minutes is an empty Aggregates, not an error."""
    store.write({T0: sample()})
    assert store.read(T0 + 3600, T0 + 7200) == Aggregates()
    assert store.read(T0, T0) == Aggregates()


def test_origin_read_keeps_only_that_origins_keys(store: Store) -> None:
    """read(origin=...) narrows the four origin-keyed maps to that origin; the rest is whole."""
    store.write({T0: merged(sample(0, revision="abc12"), sample(1, revision="def34"))})
    full = store.read(T0, T0 + 60)
    only = store.read(T0, T0 + 60, origin=("shop/cart", "def34"))
    expected = merged(full)
    for name in ("impacts", "entry_impacts", "absorbed", "origins"):
        kept = {k: v for k, v in getattr(expected, name).items() if k[:2] == ("shop/cart", "def34")}
        assert kept and len(kept) < len(getattr(full, name))
        setattr(expected, name, kept)
    assert only == expected
    assert only.revisions == full.revisions and only.edges == full.edges
    assert store.read(origin=("shop/nope", "x")).impacts == {}


def test_registry_tracks_revisions(store: Store) -> None:
    """revisions() merges first/last seen, pods, version and counts over every write."""
    store.write({T0: sample(0)})
    store.write({T0 + 60: sample(1, bucket_s=T0 + 60)})
    reg = store.revisions()
    cart = reg[("shop/cart", "abc12")]
    assert cart.first_seen_ns == sample(0).revisions[("shop/cart", "abc12")].first_seen_ns
    assert (
        cart.last_seen_ns
        == sample(1, bucket_s=T0 + 60).revisions[("shop/cart", "abc12")].last_seen_ns
    )
    assert cart.pods == {"cart-abc12-pod0", "cart-abc12-pod1"}
    assert (cart.kind, cart.service, cart.version) == ("Deployment", "cart", "1.4.0")
    assert (cart.requests, cart.errors, cart.origin_errors) == (201, 41, 31)
    assert cart.latency.total == 0  # the registry carries no histograms
    assert set(reg) == {("shop/cart", "abc12"), ("shop/frontend", "fe001")}


def test_prune_deletes_old_minutes_and_recounts(store: Store) -> None:
    """prune() drops minutes ending at or before the horizon and recounts the registry."""
    store.write({T0: sample(0, revision="old01")})
    store.write({T0 + 60: sample(1, bucket_s=T0 + 60)})
    assert store.prune(T0 + 59) == 0
    assert store.prune(T0 + 60) == 1
    assert store.read() == sample(1, bucket_s=T0 + 60)
    reg = store.revisions()
    assert ("shop/cart", "old01") not in reg
    assert reg[("shop/frontend", "fe001")].requests == 300
    assert store.prune(T0 + 10_000) == 1
    assert store.read() == Aggregates() and store.revisions() == {}


def test_exemplars_stay_capped_in_minute_order(store: Store) -> None:
    """Exemplars merge first-come in minute order, capped at MAX_EXEMPLARS."""
    minutes = {}
    for k in range(MAX_EXEMPLARS + 3):
        a = sample(k, bucket_s=T0 + 60 * k)
        a.origins[("shop/cart", "abc12")] = OriginStats(1, 1, set(), [f"t{k}", "dup"])
        minutes[T0 + 60 * k] = a
    store.write(minutes)
    got = store.read().origins[("shop/cart", "abc12")].exemplars
    assert got == ["t0", "dup", *(f"t{k}" for k in range(1, MAX_EXEMPLARS - 1))]


def test_unicode_names_round_trip(store: Store) -> None:
    """Workload, operation and user names with any characters are data, not SQL."""
    a = sample()
    odd = "ns/na'me\"; DROP TABLE revisions;--ü☃"
    a.entry_totals[(odd, "GET /ß?x='1'")] = 5
    a.revisions[(odd, "r\x00v")] = a.revisions[("shop/cart", "abc12")]
    store.write({T0: a})
    assert store.read() == a
    assert (odd, "r\x00v") in store.revisions()


def test_bad_bucket_key_is_rejected(store: Store) -> None:
    """A non-integer bucket key is a TypeError and writes nothing."""
    with pytest.raises(TypeError):
        store.write({1.5: sample()})  # type: ignore[dict-item]
    assert store.read() == Aggregates()


def test_window_fields_are_lazy(tmp_path: Path) -> None:
    """Histograms, sets and lists load on first use, merged over the window."""
    st = SqliteStore(tmp_path / "p.db")
    st.write({T0: sample(0), T0 + 60: sample(1, bucket_s=T0 + 60)})
    got = st.read()
    rev = got.revisions[("shop/cart", "abc12")]
    assert isinstance(rev, LazyRevisionStats)
    with pytest.raises(AttributeError):
        object.__getattribute__(rev, "latency")  # not loaded yet
    want = merged(sample(0), sample(1, bucket_s=T0 + 60))
    assert rev.latency.counts == want.revisions[("shop/cart", "abc12")].latency.counts
    assert rev.pods == {"cart-abc12-pod0", "cart-abc12-pod1"}
    assert got.origins[("shop/cart", "abc12")].exemplars == [f"{0:032x}", f"{1:032x}"]
    assert got == want and want == got  # equal to plain aggregates, either way round
    st.close()


def test_many_lazy_loads_switch_to_one_scan(tmp_path: Path) -> None:
    """Past a few keys, a column loads for every key in one scan, with the same values."""
    st, mem = SqliteStore(tmp_path / "p.db"), MemoryStore()
    batch = {}
    for m in range(3):
        a = Aggregates()
        for i in range(40):
            a.edges[(f"shop/a{i:02d}", "shop/db")] = EdgeStats(10 + i, i, hist(1 + i, 2 + m))
        batch[T0 + 60 * m] = a
    st.write(batch)
    mem.write(batch)
    queries: list[str] = []
    st._reader().set_trace_callback(queries.append)
    got, want = st.read(T0, T0 + 180), mem.read(T0, T0 + 180)
    assert [e.latency for _, e in sorted(got.edges.items())] == [
        e.latency for _, e in sorted(want.edges.items())
    ]
    assert sum("ORDER BY caller, callee, bucket" in q for q in queries) == 1
    assert len(queries) < 40
    st.close()


def test_survives_restart(tmp_path: Path) -> None:
    """Everything written is there after close and reopen of the file."""
    path = tmp_path / "p.db"
    st = SqliteStore(path)
    st.write({T0: sample(0), T0 + 60: sample(1, bucket_s=T0 + 60)})
    before, reg = merged(st.read()), st.revisions()  # merged(): load the lazy histograms
    st.close()
    again = SqliteStore(path)
    assert again.read() == before
    assert again.revisions() == reg
    again.write({T0: sample(2)})
    got, want = merged(again.read()), merged(sample(0), sample(1, bucket_s=T0 + 60), sample(2))
    # Exemplars are a sample: coarse tiers keep them in write order, not minute order.
    for a in (got, want):
        a.origins[("shop/cart", "abc12")].exemplars.sort()
    assert got == want
    again.close()


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    """The file is in WAL mode and records its schema version."""
    path = tmp_path / "p.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        SqliteStore(path)


def test_unopenable_file_is_a_config_error(tmp_path: Path) -> None:
    """A path in a missing directory gives ConfigError, not a sqlite3 traceback."""
    with pytest.raises(ConfigError, match="cannot open"):
        SqliteStore(tmp_path / "missing" / "p.db")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError):
        SqliteStore(tmp_path / "junk.db")


def test_reads_while_writing_in_a_thread(tmp_path: Path) -> None:
    """Readers in other threads see whole writes only: every counter of a read is the same
    whole number of batches, while a writer thread ingests."""
    st = SqliteStore(tmp_path / "p.db")
    batch = sample(3)
    done = threading.Event()
    errors: list[BaseException] = []
    seen: set[int] = set()
    read_lately = threading.Event()

    def writer() -> None:
        try:
            for k in range(60):
                st.write({T0 + 60 * (k % 5): batch})
                read_lately.wait(0.5)  # let the readers in between writes (on a busy machine)
                read_lately.clear()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            done.set()

    def batches(a: Aggregates) -> set[float]:
        counts = {a.traces / batch.traces, a.spans / batch.spans}
        for key, stats in batch.revisions.items():
            counts.add(a.revisions[key].requests / stats.requests if key in a.revisions else 0)
        return counts

    def reader() -> None:
        try:
            while not done.is_set():
                counts = batches(st.read())
                assert len(counts) == 1, counts  # one snapshot: every table at the same write
                n = counts.pop()
                assert n == int(n)
                seen.add(int(n))
                read_lately.set()
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=writer),
        *(threading.Thread(target=reader) for _ in range(2)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(seen) > 1  # the readers really overlapped the writes
    assert batches(st.read()) == {60}
    st.close()


def _normal(a: Aggregates) -> Aggregates:
    """Plain (materialised) aggregates with exemplars sorted (a sample, order not kept)."""
    out = merged(a)
    for o in out.origins.values():
        o.exemplars.sort()
    return out


def _three_hours(st: Store, mem: MemoryStore) -> None:
    rng = random.Random(5)
    start = T0 - T0 % 3600 - 3600  # an hour boundary
    minutes = sorted(rng.sample(range(180), 70))
    while minutes:  # batches of 1 to 15 minutes, as the writer drains them
        n = rng.randint(1, 15)
        batch = {
            start + 60 * m: sample(m, revision=rng.choice(["r1", "r2"]), bucket_s=start + 60 * m)
            for m in minutes[:n]
        }
        del minutes[:n]
        st.write(batch)
        mem.write(batch)


def test_tiered_windows_match_minute_by_minute(tmp_path: Path) -> None:
    """Any window read through minute/10-minute/hour rows equals merging its minutes."""
    st, mem = SqliteStore(tmp_path / "p.db"), MemoryStore()
    _three_hours(st, mem)
    rng = random.Random(9)
    start = T0 - T0 % 3600 - 3600
    windows: list[tuple[float | None, float | None]] = [(None, None), (start, start + 10_800)]
    for _ in range(40):
        a, b = sorted(rng.uniform(start - 600, start + 11_400) for _ in range(2))
        windows.append((a, b))
    windows += [(None, start + 3_630.5), (start + 1_234, None), (start + 600, start + 600)]
    for lo, hi in windows:
        assert _normal(st.read(lo, hi)) == _normal(mem.read(lo, hi)), (lo, hi)
        origin = ("shop/cart", "r2")  # and narrowed to one origin, through every tier
        assert _normal(st.read(lo, hi, origin=origin)) == _normal(mem.read(lo, hi, origin=origin))
    st.close()


def test_prune_rebuilds_straddling_rollups(tmp_path: Path) -> None:
    """After a prune in the middle of an hour, every tier still agrees with the minutes."""
    st, mem = SqliteStore(tmp_path / "p.db"), MemoryStore()
    _three_hours(st, mem)
    start = T0 - T0 % 3600 - 3600
    for horizon in (start + 1_830.0, start + 4_321.5, start + 7_200.0):
        assert st.prune(horizon) == mem.prune(horizon)
        for a, b in [(None, None), (start, None), (horizon - 3_600, horizon + 3_600)]:
            assert _normal(st.read(a, b)) == _normal(mem.read(a, b)), (horizon, a, b)
        assert st.revisions() == mem.revisions()
    st.close()
