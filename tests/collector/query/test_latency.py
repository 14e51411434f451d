"""The latency blast radius in the report (SPEC §5): slowed services and entry points."""

from __future__ import annotations

from typing import Any

import pytest
from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.query.latency import latency_impact
from podtrace_collector.query.verdict import HEALTHY, REGRESSED
from podtrace_collector.store.memory import MemoryStore

from tests.collector.analyse.tracebuilder import BASE_S, Trace, deployment, summarize
from tests.collector.query.aggbuilder import (
    CART,
    CHECKOUT,
    FRONTEND,
    MIN,
    NEW,
    OLD,
    SEARCH,
    T0,
    Buckets,
    blast,
    rollouts_of,
)
from tests.collector.query.test_blast import _starved

ROLLOUT_M = 30  # NEW appears at minute 30 of 60
NOW = T0 + 60 * MIN
CHECKOUT_OP, SEARCH_OP = "POST /checkout", "GET /search"


def _spread(center: float, n: int) -> list[float]:
    """``n`` values spread +-20 % around ``center`` (real shares are never all equal)."""
    return [center * (0.8 + 0.4 * i / max(n - 1, 1)) for i in range(n)]


def _shop(
    *,
    canary: bool = True,
    added_ms: float = 80.0,
    slow_self: bool | None = None,
    errors: int = 0,
    users: bool = True,
    baseline_exposed: bool = True,
) -> Buckets:
    """60 minutes of frontend -> checkout -> cart and frontend -> search; cart's NEW appears at
    minute 30 (+15 s), alongside OLD when ``canary``, and spends ``added_ms`` more per request.

    Per minute: cart 10 requests a revision (self time 4 ms, +``added_ms`` when ``slow_self``,
    which defaults to ``added_ms > 0``); checkout 30 requests, 10 of them calling cart (2 hops
    below the entry ``POST /checkout``); search 10, never calling cart.  Cart's shares: about
    5 ms in checkout's and frontend's requests, ``5 + added_ms`` for NEW.
    """
    slow_self = added_ms > 0 if slow_self is None else slow_self
    b = Buckets()
    for m in range(60):
        t = T0 + m * MIN + (15 if m == ROLLOUT_M else 30)
        b.requests(t, FRONTEND, "f1", 40, latency_ms=60.0)
        b.requests(t, CHECKOUT, "c1", 30, latency_ms=40.0)
        b.requests(t, SEARCH, "s1", 10)
        b.entry_total(t, FRONTEND, CHECKOUT_OP, 30, with_user=30 if users else 0)
        b.entry_total(t, FRONTEND, SEARCH_OP, 10)
        revs = [(OLD, 5.0)] if m < ROLLOUT_M or canary else []
        if m >= ROLLOUT_M:
            revs.append((NEW, 5.0 + added_ms))
        for rev, share in revs:
            new = rev == NEW
            if not new or baseline_exposed or m >= ROLLOUT_M:
                self_ms = 4.0 + (added_ms if new and slow_self else 0.0)
                b.requests(t, CART, rev, 10, self_ms=self_ms, errors=errors * new,
                           origin_errors=errors * new)  # fmt: skip
            if not new and not baseline_exposed:
                continue
            shares = _spread(share, 10)
            b.latency(t, (CART, rev), CHECKOUT, shares, hops=1, latency_ms=share + 30)
            b.latency(t, (CART, rev), FRONTEND, shares, hops=2, latency_ms=share + 50)
            b.latency(t, (CART, rev), FRONTEND, shares, hops=2, latency_ms=share + 50,
                      op=CHECKOUT_OP, users=[f"u{m % 7}"] if users else [])  # fmt: skip
    return b


def _report(b: Buckets, **params: Any) -> dict[str, Any]:
    return blast(b, workload=CART, now_s=NOW, **params)


class TestSlowed:
    def test_a_slow_canary_names_its_entry_point_and_the_services_on_the_way(self) -> None:
        """+80 ms in cart: POST /checkout (2 hops) and checkout (1 hop) slowed by ~80 ms;
        search, which never calls cart, is not listed."""
        rep = _report(_shop())
        assert rep["verdict"] == REGRESSED
        li = rep["latency_impact"]
        (entry,) = li["entrypoints"]
        assert (entry["workload"], entry["service"], entry["operation"]) == (
            FRONTEND,
            "frontend",
            CHECKOUT_OP,
        )
        assert entry["hops"] == 2
        assert entry["added_ms"]["p50"] == pytest.approx(80, rel=0.05)
        assert entry["exposed_requests"] == 300 and entry["requests"] == 900
        assert entry["share_ms"]["p50"] == pytest.approx(85, rel=0.05)
        assert entry["baseline_share_ms"]["p50"] == pytest.approx(5, rel=0.05)
        assert entry["latency_ms"]["p50"] == pytest.approx(135, rel=0.05)
        assert entry["p_value"] < 0.01
        assert entry["affected_users"] == 7
        by_workload = {s["workload"]: s for s in li["services"]}
        assert set(by_workload) == {CHECKOUT, FRONTEND}
        assert by_workload[CHECKOUT]["hops"] == 1 and by_workload[FRONTEND]["hops"] == 2
        assert by_workload[CHECKOUT]["requests"] == 30 * 30  # the window: from minute 30
        assert rep["max_hops"] == 2

    def test_fields_are_the_specs(self) -> None:
        """Every SPEC §5 field, in the SPEC's shape."""
        li = _report(_shop())["latency_impact"]
        fields = {"workload", "service", "hops", "exposed_requests", "requests", "share_ms",
                  "baseline_share_ms", "added_ms", "latency_ms", "p_value"}  # fmt: skip
        assert set(li) == {"entrypoints", "services"}
        assert set(li["services"][0]) == fields
        assert set(li["entrypoints"][0]) == fields | {"operation", "affected_users"}
        for key in ("share_ms", "baseline_share_ms", "added_ms", "latency_ms"):
            assert set(li["services"][0][key]) == {"p50", "p95"}

    def test_biggest_added_time_first(self) -> None:
        """Services are ordered by added p50, biggest first."""
        b = _shop()
        for m in range(ROLLOUT_M, 60):  # checkout's requests wait on cart twice as long
            t = T0 + m * MIN + 30
            b.latency(t, (CART, NEW), CHECKOUT, _spread(170.0, 10), hops=1)
        services = _report(b)["latency_impact"]["services"]
        assert [s["workload"] for s in services] == [CHECKOUT, FRONTEND]
        assert services[0]["added_ms"]["p50"] > services[1]["added_ms"]["p50"]

    def test_before_revision_baseline(self) -> None:
        """A replaced baseline is measured over the window before the revision, shares too."""
        rep = _report(_shop(canary=False))
        assert rep["baseline_window"]["mode"] == "before_revision"
        (entry,) = rep["latency_impact"]["entrypoints"]
        assert entry["added_ms"]["p50"] == pytest.approx(80, rel=0.05)
        assert entry["baseline_share_ms"]["p50"] == pytest.approx(5, rel=0.05)

    def test_unknown_users_are_null(self) -> None:
        """No enduser.id on the operation's requests: affected_users is unknown, not 0."""
        (entry,) = _report(_shop(users=False))["latency_impact"]["entrypoints"]
        assert entry["affected_users"] is None

    def test_a_revision_that_fails_and_slows_shows_both(self) -> None:
        """Origin errors and slower shares: the error and the latency blast radius together."""
        b = _shop(errors=3)
        for m in range(ROLLOUT_M, 60):
            t = T0 + m * MIN + 30
            b.impact(t, (CART, NEW), CHECKOUT, 2, 1)
            b.entry(t, (CART, NEW), FRONTEND, CHECKOUT_OP, 2, 2)
        rep = _report(b)
        assert rep["verdict"] == REGRESSED
        assert [a["workload"] for a in rep["affected_services"]] == [CHECKOUT]
        assert rep["entrypoints"] and rep["latency_impact"]["entrypoints"]
        assert len(rep["reasons"]) == 2

    def test_rollouts_count_slowed(self) -> None:
        """The rollout summary counts slowed services and entry points."""
        (row,) = rollouts_of(_shop(), now_s=NOW)
        assert (row["slowed_services"], row["slowed_entrypoints"]) == (2, 1)


class TestNotSlowed:
    def test_an_unchanged_revision_slows_nothing(self) -> None:
        """Same shares, same self time: healthy, empty lists."""
        rep = _report(_shop(added_ms=0.0))
        assert rep["verdict"] == HEALTHY
        assert rep["latency_impact"] == {"entrypoints": [], "services": []}
        assert rep["max_hops"] == 0

    def test_listed_only_when_the_verdict_found_a_latency_regression(self) -> None:
        """Slower shares but an unchanged self time (the time is not the revision's own):
        nothing listed, as SPEC §5's last rule says."""
        rep = _report(_shop(slow_self=False))
        assert rep["verdict"] == HEALTHY
        assert rep["latency_impact"] == {"entrypoints": [], "services": []}

    def test_an_error_regression_alone_lists_no_latency_impact(self) -> None:
        """Regressed by origin errors, self time unchanged: no latency impact even though
        the shares grew."""
        rep = _report(_shop(slow_self=False, errors=5))
        assert rep["verdict"] == REGRESSED
        assert all(r.startswith("origin error rate") for r in rep["reasons"][:1])
        assert rep["latency_impact"] == {"entrypoints": [], "services": []}

    @pytest.mark.parametrize("added_ms", [0.5, 0.7])
    def test_less_than_a_millisecond_more(self, added_ms: float) -> None:
        """Three times the share but less than 1 ms more at p50 and p95: not slowed."""
        b = Buckets()
        for m in range(60):
            t = T0 + m * MIN + (15 if m == ROLLOUT_M else 30)
            b.requests(t, CHECKOUT, "c1", 30)
            for rev, share in [(OLD, 0.5)] + ([(NEW, 0.5 + added_ms)] if m >= ROLLOUT_M else []):
                b.requests(t, CART, rev, 10, self_ms=4.0 if rev == OLD else 40.0)
                b.latency(t, (CART, rev), CHECKOUT, _spread(share, 10), hops=1)
        rep = _report(b)
        assert rep["verdict"] == REGRESSED
        assert rep["latency_impact"]["services"] == []

    def test_less_than_a_fifth_more(self) -> None:
        """10 % more (5 ms on 50 ms) is above 1 ms but below 1.2x: not slowed."""
        b = Buckets()
        for m in range(60):
            t = T0 + m * MIN + (15 if m == ROLLOUT_M else 30)
            b.requests(t, CHECKOUT, "c1", 30)
            for rev, share in [(OLD, 50.0)] + ([(NEW, 55.0)] if m >= ROLLOUT_M else []):
                b.requests(t, CART, rev, 10, self_ms=4.0 if rev == OLD else 40.0)
                b.latency(t, (CART, rev), CHECKOUT, [share] * 10, hops=1)
        assert _report(b)["latency_impact"]["services"] == []

    def test_a_workload_the_baseline_never_reached_is_not_compared(self) -> None:
        """Nothing to compare with (the baseline was never on its path): not listed."""
        rep = _report(_shop(baseline_exposed=False))
        assert rep["verdict"] == REGRESSED
        assert rep["latency_impact"] == {"entrypoints": [], "services": []}

    def test_first_revision(self) -> None:
        """No baseline: no latency impact."""
        b = Buckets()
        b.requests(T0 + 30, CART, NEW, 50)
        b.latency(T0 + 30, (CART, NEW), CHECKOUT, _spread(90.0, 50), hops=1)
        rep = _report(b)
        assert rep["baseline"] is None
        assert rep["latency_impact"] == {"entrypoints": [], "services": []}


class TestSmallSamples:
    def test_five_requests_a_side_are_judged_exactly(self) -> None:
        """Five exposed requests a side, ten times the share: slowed (exact p = 1/252)."""
        b = Buckets()
        b.requests(T0 + 30, CART, OLD, 40)
        b.requests(T0 + 90, CART, NEW, 40, self_ms=40.0)
        b.requests(T0 + 90, CART, OLD, 40)
        b.latency(T0 + 90, (CART, OLD), CHECKOUT, _spread(5.0, 5), hops=1)
        b.latency(T0 + 90, (CART, NEW), CHECKOUT, _spread(50.0, 5), hops=1)
        (s,) = latency_impact(b.at(T0 + 90), b.at(T0 + 90), {}, CART, NEW, OLD)["services"]
        assert s["p_value"] == pytest.approx(1 / 252)
        assert s["service"] == "checkout"

    def test_four_requests_on_a_side_are_too_few(self) -> None:
        """Fewer than five exposed requests on a side: not judged."""
        b = Buckets()
        b.latency(T0, (CART, OLD), CHECKOUT, _spread(5.0, 4), hops=1)
        b.latency(T0, (CART, NEW), CHECKOUT, _spread(50.0, 40), hops=1)
        assert latency_impact(b.at(T0), b.at(T0), {}, CART, NEW, OLD)["services"] == []


def _worked_example() -> dict[str, Any]:
    """docs/blast-radius.md's latency example, analysed for real: a canary of cart whose new
    revision spends 80 ms more in its own code; 20 checkouts through each revision, 20 searches
    that never reach cart."""
    old, new = deployment("shop", "cart", OLD), deployment("shop", "cart", NEW)
    fe, chk = deployment("shop", "frontend", "f1"), deployment("shop", "checkout", "c1")
    search = deployment("shop", "search", "s1")
    agg = Aggregates()
    for i in range(40):
        cart_ms = (10.0 if i < 20 else 90.0) + i % 20 * 0.5  # cart's own work, spread a little
        t = Trace()
        root = t.server(fe, "POST /checkout", method="POST", route="/checkout",
                        user=f"u{i % 20}", dur_ms=cart_ms + 20)  # fmt: skip
        checkout = t.call(root, chk, "POST /orders", start_ms=2, dur_ms=cart_ms + 12, gap_ms=1)
        t.call(checkout, old if i < 20 else new, "GET /cart", start_ms=6, dur_ms=cart_ms)
        agg.merge(summarize(t.spans)[1])
        t = Trace()
        t.call(t.server(fe, "GET /search", method="GET", route="/search", dur_ms=30), search)
        agg.merge(summarize(t.spans)[1])
    store = MemoryStore()
    store.write({BASE_S: agg})
    return blast(store, workload=CART, now_s=BASE_S + 60)


def test_the_worked_example_of_the_docs() -> None:
    """The latency example in docs/blast-radius.md gives the numbers shown there."""
    rep = _worked_example()
    assert rep["verdict"] == REGRESSED and rep["reasons"][0].startswith("self time median 96.468")
    assert rep["baseline_window"]["mode"] == "same_window"
    (entry,) = rep["latency_impact"]["entrypoints"]
    checkout, frontend = rep["latency_impact"]["services"]
    assert (entry["operation"], entry["hops"], entry["exposed_requests"], entry["requests"]) == (
        "POST /checkout",
        2,
        20,
        40,
    )
    assert entry["share_ms"] == {"p50": 96.468, "p95": 100.327}
    assert entry["baseline_share_ms"] == {"p50": 16.515, "p95": 20.897}
    assert entry["added_ms"] == {"p50": 79.953, "p95": 79.43}
    assert entry["latency_ms"] == {"p50": 112.854, "p95": 117.368}
    assert entry["p_value"] == pytest.approx(7.25e-12, rel=0.01)
    assert entry["affected_users"] == 20
    assert (checkout["workload"], checkout["hops"], checkout["requests"]) == (CHECKOUT, 1, 40)
    assert checkout["latency_ms"] == {"p50": 108.514, "p95": 112.854}
    assert (frontend["workload"], frontend["hops"], frontend["requests"]) == (FRONTEND, 2, 80)
    assert checkout["added_ms"] == frontend["added_ms"] == entry["added_ms"]
    assert rep["max_hops"] == 2
    assert rep["affected_services"] == [] and rep["entrypoints"] == []


class TestCallerControl:
    @staticmethod
    def _starved(*, others_slow: bool) -> Buckets:
        """test_blast's starved-caller shop (search replaced at minute 60, the frontend slower
        to reach it from then on), with search's shares of the frontend's requests: 15 ms
        before, 60 ms after (the transit counts for the callee)."""
        b = _starved(canary=False, others_slow=others_slow)
        for m in range(90):
            t = T0 + m * MIN + (15 if m == 60 else 30)
            rev, share = (NEW, 60.0) if m >= 60 else (OLD, 15.0)
            b.latency(t, (SEARCH, rev), FRONTEND, _spread(share, 20), hops=1)
        return b

    def test_a_callee_slowed_only_by_its_starved_caller_slows_nothing(self) -> None:
        """The caller control excuses the revision: healthy, and no latency blast radius."""
        rep = blast(self._starved(others_slow=True), workload=SEARCH)
        assert rep["verdict"] == HEALTHY and rep["slowdown"]["where"] == "caller"
        assert rep["latency_impact"] == {"entrypoints": [], "services": []}

    def test_a_revision_slow_to_reach_slows_its_callers(self) -> None:
        """Slower to reach (its pods, not its callers): regressed in transit, and listed."""
        rep = blast(self._starved(others_slow=False), workload=SEARCH)
        assert rep["verdict"] == REGRESSED and rep["slowdown"]["where"] == "transit"
        (frontend,) = rep["latency_impact"]["services"]
        assert frontend["workload"] == FRONTEND
        assert frontend["added_ms"]["p50"] == pytest.approx(45, rel=0.05)
