"""Tests for analyse.analyzer's latency maps (SPEC §5): critical-path shares into Aggregates."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from podtrace_collector.aggregate.histogram import Histogram, bucket_of
from podtrace_collector.aggregate.stats import Aggregates, EntryLatencyImpact, LatencyImpact
from podtrace_collector.analyse.analyzer import operation_of
from podtrace_collector.analyse.critical import critical_shares
from podtrace_collector.analyse.requests import analyse_trace
from podtrace_collector.model import Span

from tests.collector.analyse.critical_oracle import messy_trace
from tests.collector.analyse.tracebuilder import Trace, deployment, summarize

FE = deployment("shop", "frontend", "fe1")
CHK = deployment("shop", "checkout", "chk1")
CART = deployment("shop", "cart", "cart1")
CART2 = deployment("shop", "cart", "cart2")
PAY = deployment("shop", "payment", "pay1")
WORKER = deployment("shop", "worker", "wrk1")
FE_K, CHK_K, CART_K = ("shop/frontend", "fe1"), ("shop/checkout", "chk1"), ("shop/cart", "cart1")
OP = "POST /checkout"


def _hist(*values_ms: float) -> Histogram:
    h = Histogram()
    for v in values_ms:
        h.add(v)
    return h


def _impact(shares: list[float], latency_ms: float, hops: int) -> LatencyImpact:
    return LatencyImpact(len(shares), _hist(*shares), _hist(*[latency_ms] * len(shares)), hops + 1)


def _entry(
    shares: list[float], latency_ms: float, hops: int, users: set[str] | None = None
) -> EntryLatencyImpact:
    i = _impact(shares, latency_ms, hops)
    users = users if users is not None else {"alice"}
    return EntryLatencyImpact(i.exposed_requests, i.shares, i.latency, i.nearest, users)


def _chain(*, cart: tuple[str, str] = CART_K, cart_ms: float = 10.0) -> Trace:
    """frontend (30 ms + cart's extra) -> checkout (20) -> cart (``cart_ms``), 1 ms of network
    each way.  Critical path of the frontend request: frontend 8, checkout 10, cart
    ``cart_ms`` + 2 (its client span's network); of the checkout request: checkout 8, cart
    ``cart_ms`` + 2."""
    extra = cart_ms - 10.0
    t = Trace()
    fe = t.server(FE, "fe", method="POST", route="/checkout", user="alice", dur_ms=30 + extra)
    chk = t.call(fe, CHK, "chk", dur_ms=20 + extra)
    t.call(chk, CART if cart == CART_K else CART2, "cart", dur_ms=cart_ms)
    return t


class TestGolden:
    def test_chain(self) -> None:
        """Each workload's share of the requests above it, with their hops and durations;
        a workload's share of its own requests is not kept (it is its self time)."""
        _, agg = summarize(_chain().spans)
        assert agg.latency_impacts == {
            (*CART_K, "shop/checkout"): _impact([12.0], 20.0, 1),
            (*CART_K, "shop/frontend"): _impact([12.0], 30.0, 2),
            (*CHK_K, "shop/frontend"): _impact([10.0], 30.0, 1),
        }
        assert agg.entry_latency_impacts == {
            (*FE_K, "shop/frontend", OP): _entry([8.0], 30.0, 0),
            (*CHK_K, "shop/frontend", OP): _entry([10.0], 30.0, 1),
            (*CART_K, "shop/frontend", OP): _entry([12.0], 30.0, 2),
        }

    def test_slow_revision_two_hops_below(self) -> None:
        """+80 ms in cart's own code: its share in every request above grows by 80 ms, the
        others' shares do not move."""
        _, fast = summarize(_chain().spans)
        _, slow = summarize(_chain(cart_ms=90.0).spans)
        key = (*CART_K, "shop/frontend", OP)
        assert fast.entry_latency_impacts[key].shares == _hist(12.0)
        assert slow.entry_latency_impacts[key].shares == _hist(92.0)
        assert slow.entry_latency_impacts[key].latency == _hist(110.0)
        for k in ((*CHK_K, "shop/frontend", OP), (*FE_K, "shop/frontend", OP)):
            assert slow.entry_latency_impacts[k].shares == fast.entry_latency_impacts[k].shares

    def test_canary_revisions_stay_apart(self) -> None:
        """Two traces, one through each revision of cart: two keys, one request each."""
        agg = Aggregates()
        for t in (_chain(), _chain(cart=("shop/cart", "cart2"), cart_ms=50.0)):
            agg.merge(summarize(t.spans)[1])
        assert agg.latency_impacts[(*CART_K, "shop/checkout")].shares == _hist(12.0)
        assert agg.latency_impacts[("shop/cart", "cart2", "shop/checkout")].shares == _hist(52.0)

    def test_parallel_fan_out_keeps_only_the_critical_branch(self) -> None:
        """Two calls at once: the shorter one is on no critical path, so it has no key."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        t.call(x, CART, "cart", start_ms=10, dur_ms=30)
        t.call(x, PAY, "pay", start_ms=10, dur_ms=70)
        _, agg = summarize(t.spans)
        assert set(agg.latency_impacts) == {("shop/payment", "pay1", "shop/frontend")}
        assert {k[:2] for k in agg.entry_latency_impacts} == {FE_K, ("shop/payment", "pay1")}

    def test_async_consumer_is_on_no_producer_path(self) -> None:
        """A message consumer's time never counts in its producer's requests."""
        t = Trace()
        x = t.server(FE, "x", route="/checkout", method="POST", dur_ms=50)
        t.publish(x, WORKER, "process", dur_ms=500)
        _, agg = summarize(t.spans)
        assert not any(k[0] == "shop/worker" for k in agg.latency_impacts)
        assert not any(k[0] == "shop/worker" for k in agg.entry_latency_impacts)

    def test_database_time_stays_with_its_caller(self) -> None:
        """A client span without a request below it keeps its time in its own workload."""
        t = Trace()
        x = t.server(FE, "x", method="POST", route="/checkout", dur_ms=100)
        t.client(x, "SELECT", start_ms=10, dur_ms=80)
        _, agg = summarize(t.spans)
        assert agg.latency_impacts == {}
        assert agg.entry_latency_impacts == {
            (*FE_K, "shop/frontend", OP): _entry([100.0], 100.0, 0, users=set())
        }

    def test_clock_skew_never_gives_more_than_the_duration(self) -> None:
        """A callee whose clock runs late counts only for what fits in the caller's client
        span, and no share is more than the request's duration."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=100)
        client = t.client(x, "call", start_ms=50, dur_ms=40)  # 50-90
        t.server(CART, "cart", parent=client, start_ms=80, dur_ms=300)  # 80-380: skewed
        _, agg = summarize(t.spans)
        assert agg.latency_impacts == {(*CART_K, "shop/frontend"): _impact([40.0], 100.0, 1)}

    def test_zero_length_requests_leave_nothing(self) -> None:
        """A request lasting 0 has no critical time: no exposure anywhere."""
        t = Trace()
        x = t.server(FE, "x", dur_ms=0)
        t.call(x, CART, "cart", dur_ms=0, gap_ms=0)
        _, agg = summarize(t.spans)
        assert agg.latency_impacts == {} and agg.entry_latency_impacts == {}


def _expected(spans: list[Span]) -> tuple[dict[object, list[object]], dict[object, list[object]]]:
    """The latency maps counted straight from ``critical_shares``: per key, the exposed
    requests' (share bucket, duration bucket, hops, user)."""
    services: dict[object, list[object]] = defaultdict(list)
    entries: dict[object, list[object]] = defaultdict(list)
    for r, shares in critical_shares(analyse_trace(spans)):
        latency = bucket_of(r.latency_ms)
        user = r.span.attributes.get("enduser.id")
        for (w, rev), ms, hops in shares:
            row = (bucket_of(ms), latency, hops)
            if r.parent is None:
                entries[(w, rev, r.info.workload, operation_of(r.span))].append((*row, user))
            if w != r.info.workload:
                services[(w, rev, r.info.workload)].append(row)
    return services, entries


def _rows(imp: LatencyImpact) -> tuple[int, dict[int, int], dict[int, int], int]:
    return imp.exposed_requests, imp.shares.counts, imp.latency.counts, imp.hops


def _counted(rows: list[object]) -> tuple[int, dict[int, int], dict[int, int], int]:
    shares: dict[int, int] = defaultdict(int)
    latency: dict[int, int] = defaultdict(int)
    for row in rows:
        assert isinstance(row, tuple)
        shares[row[0]] += 1
        latency[row[1]] += 1
    return len(rows), dict(shares), dict(latency), min(row[2] for row in rows)  # type: ignore[index]


class TestProperties:
    @settings(max_examples=150, deadline=None)
    @given(messy_trace())
    def test_the_maps_count_every_positive_share(self, spans: list[Span]) -> None:
        """Any trace (skewed, overlapping, several roots): the maps hold exactly the positive
        shares of ``critical_shares``, counted per key, with the smallest hops and the users."""
        _, agg = summarize(spans)
        services, entries = _expected(spans)
        assert {k: _rows(v) for k, v in agg.latency_impacts.items()} == {
            k: _counted(v) for k, v in services.items()
        }
        assert {k: _rows(v) for k, v in agg.entry_latency_impacts.items()} == {
            k: _counted(v) for k, v in entries.items()
        }
        for k, entry in agg.entry_latency_impacts.items():
            assert entry.users == {str(row[3]) for row in entries[k] if row[3]}  # type: ignore[index]

    @settings(max_examples=150, deadline=None)
    @given(messy_trace())
    def test_exposure_never_exceeds_the_requests(self, spans: list[Span]) -> None:
        """Exposed requests of a workload (an operation) are at most its requests; a workload
        is never exposed to itself; hops are never negative."""
        _, agg = summarize(spans)
        requests = agg.requests_by_workload()
        for (w, _, x), imp in agg.latency_impacts.items():
            assert w != x
            assert 0 < imp.exposed_requests <= requests[x]
            assert imp.shares.total == imp.latency.total == imp.exposed_requests
            assert imp.nearest >= 1
        for (_, _, x, op), entry in agg.entry_latency_impacts.items():
            assert 0 < entry.exposed_requests <= agg.entry_totals[(x, op)].requests
            assert entry.nearest >= 1
