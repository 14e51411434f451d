"""The store contract (``store.base.Store``), run against every store: what is written is read."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from podtrace_collector.aggregate.stats import (
    MAPS,
    MAX_EXEMPLARS,
    Aggregates,
    EntryTotal,
    OriginStats,
)
from podtrace_collector.aggregate.window import Reads, Registry, Window
from podtrace_collector.errors import StoreError
from podtrace_collector.store.base import Store, read_windows
from podtrace_collector.store.clickhouse import ClickHouseStore
from podtrace_collector.store.memory import MemoryStore
from podtrace_collector.store.sqlite import SqliteStore

from tests.collector.chdb_engine import chdb_url
from tests.collector.store.samples import T0, merged, registry, sample, window

STORES = ["memory", "sqlite", "clickhouse"]


def open_store(kind: str, tmp_path: Path) -> Store:
    if kind == "sqlite":
        return SqliteStore(tmp_path / "p.db")
    if kind == "clickhouse":
        return ClickHouseStore(chdb_url())  # the in-process engine, a database of its own
    return MemoryStore()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    st = open_store(request.param, tmp_path)
    yield st
    st.close()


class TestRoundTrip:
    def test_every_field(self, store: Store) -> None:
        """A written minute reads back equal, field by field, every declared map."""
        store.write({T0: sample(1)})
        got = window(store)
        assert got == sample(1)
        assert all(getattr(got, spec.name) for spec in MAPS)  # the sample fills every map

    def test_repeated_writes_to_a_minute_merge(self, store: Store) -> None:
        """Writing one minute three times is the merge of the three."""
        for i in range(3):
            store.write({T0: sample(i)})
        assert window(store) == merged(sample(0), sample(1), sample(2))

    def test_unicode_names(self, store: Store) -> None:
        """Workload, operation and user names with any characters are data, not SQL."""
        a = sample()
        odd = "ns/na'me\"; DROP TABLE revisions;--ü☃"
        a.entry_totals[(odd, "GET /ß?x='1'")] = EntryTotal(5, 1)
        a.revisions[(odd, "r\x00v")] = a.revisions[("shop/cart", "abc12")]
        store.write({T0: a})
        assert window(store) == a
        assert (odd, "r\x00v") in registry(store)

    def test_bad_bucket_key_is_rejected(self, store: Store) -> None:
        """A non-integer bucket key is a deterministic StoreError and writes nothing."""
        with pytest.raises(StoreError) as caught:
            store.write({1.5: sample()})  # type: ignore[dict-item]
        assert not caught.value.transient
        assert window(store) == Aggregates()

    def test_exemplars_keep_the_smallest_ids(self, store: Store) -> None:
        """Exemplars merge to the MAX_EXEMPLARS smallest distinct ids, whatever the order."""
        minutes = {}
        for k in range(MAX_EXEMPLARS + 3):
            a = sample(k, bucket_s=T0 + 60 * k)
            a.origins[("shop/cart", "abc12")] = OriginStats(1, 1, set(), [f"t{99 - k:02d}", "dup"])
            minutes[T0 + 60 * k] = a
        store.write(minutes)
        again = Aggregates()  # a later write of an early minute, with "t99" again
        again.origins[("shop/cart", "abc12")] = OriginStats(1, 1, set(), ["t99"])
        store.write({T0: again})
        got = window(store).origins[("shop/cart", "abc12")].exemplars
        assert MAX_EXEMPLARS == 10 and got == ["dup", *(f"t{n}" for n in range(87, 96))]


class TestWindows:
    def test_window_merges_overlapping_minutes(self, store: Store) -> None:
        """A window reads every minute it overlaps, merged."""
        store.write({T0 + 60 * k: sample(k, bucket_s=T0 + 60 * k) for k in range(4)})
        got = window(store, T0 + 60, T0 + 180)
        assert got == merged(sample(1, bucket_s=T0 + 60), sample(2, bucket_s=T0 + 120))
        assert window(store, T0 + 59.5, T0 + 60.5).traces == sample(0).traces + sample(1).traces
        assert window(store, None, T0 + 60).traces == sample(0).traces
        assert window(store, T0 + 180, None).traces == sample(3).traces

    def test_empty_windows(self, store: Store) -> None:
        """A window without minutes, or of no length, is empty."""
        store.write({T0: sample()})
        assert window(store, T0 + 3600, T0 + 7200) == Aggregates()
        assert window(store, T0 + 10, T0 + 10) == Aggregates()

    def test_origins_keep_only_those_origins_keys(self, store: Store) -> None:
        """``origins`` narrows the origin-keyed maps; the other maps are whole."""
        store.write({T0: merged(sample(0, revision="abc12"), sample(1, revision="def34"))})
        full = window(store, T0, T0 + 60)
        keep = frozenset({("shop/cart", "def34")})
        only = window(store, T0, T0 + 60, origins=keep)
        expected = merged(full)
        for spec in MAPS:
            if spec.origin:
                values = getattr(expected, spec.name)
                kept = {k: v for k, v in values.items() if k[:2] in keep}
                assert kept and len(kept) < len(values)
                setattr(expected, spec.name, kept)
        assert only == expected
        assert window(store, origins=frozenset()).impacts == {}

    def test_details_load_histograms_of_those_revisions_only(self, store: Store) -> None:
        """``details`` keeps every revision's counters but only the named ones' histograms."""
        store.write({T0: sample(0)})
        full = window(store)
        cart = ("shop/cart", "abc12")
        got = window(store, details=frozenset({cart}))
        assert got.revisions[cart] == full.revisions[cart]
        fe = got.revisions[("shop/frontend", "fe001")]
        full_fe = full.revisions[("shop/frontend", "fe001")]
        assert (fe.requests, fe.errors) == (full_fe.requests, full_fe.errors)
        assert fe.latency.total == 0 and not fe.pods and full_fe.latency.total > 0
        assert got.edges == full.edges  # not a detail map

    def test_maps_restricts_the_maps_read(self, store: Store) -> None:
        """``maps`` names the maps to read; the others stay empty."""
        store.write({T0: sample(0)})
        got = window(store, maps=frozenset({"revisions", "edges"}))
        assert got.revisions and got.edges
        assert not (got.impacts or got.origins or got.entry_totals or got.totals)

    def test_windows_of_one_read_each_get_what_they_ask(self, store: Store) -> None:
        """A read of several windows (a report's: maps, ranges, origins and details differing)
        answers each as a read of that window alone would."""
        store.write(
            {
                T0 + 60 * m: merged(
                    sample(m, revision="abc12", bucket_s=T0 + 60 * m),
                    sample(m + 5, revision="def34", bucket_s=T0 + 60 * m),
                )
                for m in range(12)
            }
        )
        cart, other = ("shop/cart", "abc12"), ("shop/cart", "def34")
        windows = [
            Window(
                T0 + 30,
                T0 + 660,
                maps=frozenset({"revisions", "impacts", "origins", "entry_latency_impacts"}),
                origins=frozenset({cart}),
                details=frozenset({cart}),
            ),
            Window(T0, T0 + 600, maps=frozenset({"transit"}), origins=frozenset({other})),
            Window(T0 + 120, None, maps=frozenset({"transit_out", "edges"})),
            Window(T0, T0 + 720, maps=frozenset({"origins", "totals"}), origins=frozenset()),
            Window(
                T0 - 600,
                T0 + 300,
                maps=frozenset({"revisions", "impacts"}),
                details=frozenset({other}),
            ),
            Window(maps=frozenset()),
        ]
        together = read_windows(store, *windows)
        assert together == [read_windows(store, w)[0] for w in windows]
        assert together[0].impacts and all(k[:2] == cart for k in together[0].impacts)
        assert together[1].transit and not together[0].transit
        assert together[4].impacts.keys() == {(*other, "shop/frontend"), (*cart, "shop/frontend")}
        assert together[4].revisions[other].latency.total and not together[4].revisions[cart].pods

    def test_tiers_agree_with_minute_by_minute(self, store: Store) -> None:
        """Any window (through minute, 10-minute and hour rows) equals merging its minutes."""
        mem = MemoryStore()
        _three_hours(store, mem)
        rng = random.Random(9)
        start = T0 - T0 % 3600 - 3600
        bounds: list[tuple[float | None, float | None]] = [(None, None), (start, start + 10_800)]
        for _ in range(30):
            a, b = sorted(rng.uniform(start - 600, start + 11_400) for _ in range(2))
            bounds.append((a, b))
        bounds += [(None, start + 3_630.5), (start + 1_234, None), (start + 600, start + 600)]
        origins = frozenset({("shop/cart", "r2")})
        for lo, hi in bounds:
            assert window(store, lo, hi) == window(mem, lo, hi), (lo, hi)
            narrow = {"origins": origins, "details": origins}
            assert window(store, lo, hi, **narrow) == window(mem, lo, hi, **narrow)


class TestRegistry:
    def test_tracks_revisions(self, store: Store) -> None:
        """The registry merges first/last seen, pods, version and counts over every write."""
        store.write({T0: sample(0)})
        store.write({T0 + 60: sample(1, bucket_s=T0 + 60)})
        reg = registry(store)
        cart = reg[("shop/cart", "abc12")]
        first = sample(0).revisions[("shop/cart", "abc12")]
        last = sample(1, bucket_s=T0 + 60).revisions[("shop/cart", "abc12")]
        assert (cart.first_seen_ns, cart.last_seen_ns) == (first.first_seen_ns, last.last_seen_ns)
        assert cart.pods == {"cart-abc12-pod0", "cart-abc12-pod1"}
        assert (cart.kind, cart.service, cart.version) == ("Deployment", "cart", "1.4.0")
        assert (cart.requests, cart.errors, cart.origin_errors) == (201, 41, 31)
        assert cart.latency.total == 0  # the registry carries no histograms
        assert set(reg) == {("shop/cart", "abc12"), ("shop/frontend", "fe001")}

    def test_the_plan_sees_the_registry(self, store: Store) -> None:
        """``read(plan)`` hands the plan the registry, and returns the plan and its windows."""
        store.write({T0: sample(0)})
        seen: list[Registry] = []

        def plan(reg: Registry) -> Reads:
            seen.append(reg)
            return Reads([Window(T0, T0 + 60), Window(maps=frozenset())])

        snapshot = store.read(plan)
        assert seen == [snapshot.registry] and isinstance(snapshot.plan, Reads)
        assert snapshot.windows == [sample(0), Aggregates()]

    def test_a_failing_plan_propagates(self, store: Store) -> None:
        """A plan that raises ends the read with its error, and the store reads on."""
        store.write({T0: sample(0)})

        def plan(reg: Registry) -> Reads:
            raise LookupError("no such workload")

        with pytest.raises(LookupError):
            store.read(plan)
        assert window(store) == sample(0)


class TestPrune:
    def test_deletes_old_minutes_and_recounts(self, store: Store) -> None:
        """prune() drops minutes ending at or before the horizon and recounts the registry."""
        store.write({T0: sample(0, revision="old01")})
        store.write({T0 + 60: sample(1, bucket_s=T0 + 60)})
        assert store.prune(T0 + 59) == 0
        assert store.prune(T0 + 60) == 1
        assert window(store) == sample(1, bucket_s=T0 + 60)
        reg = registry(store)
        assert ("shop/cart", "old01") not in reg
        assert reg[("shop/frontend", "fe001")].requests == 300
        assert store.prune(T0 + 10_000) == 1
        assert window(store) == Aggregates() and registry(store) == {}

    def test_rebuilds_straddling_rollups(self, store: Store) -> None:
        """After a prune in the middle of an hour, every tier still agrees with the minutes."""
        mem = MemoryStore()
        _three_hours(store, mem)
        start = T0 - T0 % 3600 - 3600
        for horizon in (start + 1_830.0, start + 4_321.5, start + 7_200.0):
            assert store.prune(horizon) == mem.prune(horizon)
            for a, b in [(None, None), (start, None), (horizon - 3_600, horizon + 3_600)]:
                assert window(store, a, b) == window(mem, a, b), (horizon, a, b)
            assert registry(store) == registry(mem)

    def test_stops_when_asked(self, store: Store) -> None:
        """A prune told to stop returns early and finishes at the next call."""
        store.write({T0 + 60 * k: sample(k, bucket_s=T0 + 60 * k) for k in range(5)})
        store.prune(T0 + 600, should_stop=lambda: True)
        assert store.prune(T0 + 600) in (0, 5)  # the memory store has nothing to stop
        assert window(store) == Aggregates()


class TestSnapshot:
    def test_a_write_during_a_read_is_not_seen_by_it(self, store: Store) -> None:
        """A write landing between the registry and the windows of one read is not in it."""
        store.write({T0: sample(0)})
        landed = threading.Event()

        def write_now() -> None:
            store.write({T0: sample(5)})
            landed.set()

        def plan(reg: Registry) -> Reads:
            writer = threading.Thread(target=write_now)
            writer.start()
            writer.join(1.0)  # the memory store's write waits for the read; sqlite's lands now
            return Reads([Window(), Window(T0, T0 + 60)])

        snapshot = store.read(plan)
        assert landed.wait(5)
        assert snapshot.windows == [sample(0), sample(0)]
        assert snapshot.registry[("shop/cart", "abc12")].requests == 100
        assert window(store) == merged(sample(0), sample(5))

    def test_readers_in_threads_see_whole_writes(self, store: Store) -> None:
        """While a writer thread ingests, every read is one whole number of writes in every
        table and window, the registry included."""
        batch = sample(3)
        done, read_lately = threading.Event(), threading.Event()
        errors: list[BaseException] = []
        seen: set[int] = set()

        def writer() -> None:
            try:
                for k in range(40):
                    store.write({T0 + 60 * (k % 5): batch})
                    read_lately.wait(0.5)  # let the readers in between writes (a busy machine)
                    read_lately.clear()
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)
            finally:
                done.set()

        def batches(a: Aggregates) -> set[float]:
            counts = {a.traces / batch.traces, a.spans / batch.spans}
            for key, stats in batch.revisions.items():
                got = a.revisions.get(key)
                counts.add(got.requests / stats.requests if got else 0)
                counts.add(got.latency.total / stats.latency.total if got else 0)
            return counts

        def reader() -> None:
            try:
                while not done.is_set():
                    snapshot = store.read(lambda _: Reads([Window(), Window(T0, T0 + 300)]))
                    counts = batches(snapshot.windows[0]) | batches(snapshot.windows[1])
                    cart = snapshot.registry.get(("shop/cart", "abc12"))
                    counts.add(cart.requests / 103 if cart else 0)
                    assert len(counts) == 1, counts  # one snapshot: every part at one write
                    n = counts.pop()
                    assert n == int(n)
                    seen.add(int(n))
                    read_lately.set()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        assert len(seen) > 1  # the reader really overlapped the writes
        assert batches(window(store)) == {40}


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


def test_read_windows_reads_without_a_plan(store: Store) -> None:
    """``read_windows`` is ``read`` with a fixed list of windows."""
    store.write({T0: sample(0)})
    full, narrow = read_windows(store, Window(), replace(Window(), maps=frozenset({"totals"})))
    assert full == sample(0) and narrow.traces == sample(0).traces and not narrow.revisions
