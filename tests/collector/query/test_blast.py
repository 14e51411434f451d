"""The blast-radius report of one workload revision."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podtrace_collector.aggregate.stats import MAX_USERS
from podtrace_collector.api.errors import status_of
from podtrace_collector.errors import QueryError
from podtrace_collector.query.blast import BEFORE_REVISION, SAME_WINDOW

from tests.collector.query.aggbuilder import (
    CART,
    CHECKOUT,
    FRONTEND,
    MIN,
    NEW,
    NOW,
    OLD,
    ROLLOUT_S,
    SEARCH,
    T0,
    Buckets,
    blast,
    shop,
)

SHOP = shop(canary=False)
CANARY = shop(canary=True)


def _report(b: Buckets, **kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"workload": CART, "now_s": NOW, **kwargs}
    return blast(b, **args)


class TestDefaults:
    def test_newest_revision_previous_baseline_window_until_now(self) -> None:
        """Defaults: the newest revision, from its first span until now, against the previous."""
        r = _report(SHOP)
        assert (r["workload"], r["kind"], r["service"]) == (CART, "Deployment", "cart")
        assert (r["revision"], r["version"]) == (NEW, "1.4.0")
        # The window read: whole minutes (aggregates are per minute), from NEW's first minute.
        assert r["window"] == {"start": "2025-11-24T17:00:00Z", "end": "2025-11-24T17:30:00Z"}
        assert r["first_seen"] == "2025-11-24T17:00:15Z"
        assert r["baseline"]["revision"] == OLD
        assert r["baseline"]["version"] == "1.3.0"

    def test_counts_of_the_revision(self) -> None:
        """requests, errors, origin errors and rates are NEW's over the window."""
        r = _report(SHOP)
        assert (r["requests"], r["errors"], r["origin_errors"]) == (600, 150, 120)
        assert r["error_rate"] == 0.25 and r["origin_error_rate"] == 0.2
        assert r["latency_ms"]["p50"] == pytest.approx(10.0, rel=0.03)
        assert r["self_time_ms"]["p50"] == pytest.approx(9.0, rel=0.03)

    def test_regressed_against_the_baseline(self) -> None:
        """20 % origin errors against none is regressed, with a tiny p-value and a reason."""
        r = _report(SHOP)
        assert r["verdict"] == "regressed"
        assert 0.0 <= r["p_value"] < 1e-12
        assert "origin error rate" in r["reasons"][0]

    def test_report_is_strict_json(self) -> None:
        """The report serialises without NaN or infinity."""
        json.dumps(_report(SHOP), allow_nan=False)


class TestBaselineWindow:
    def test_replaced_revision_is_measured_before_the_rollout(self) -> None:
        """With no OLD requests alongside NEW, the baseline is an equal window before NEW."""
        SHOP.reads.clear()
        r = _report(SHOP)
        assert r["baseline_window"] == {  # the whole minutes read, up to NEW's first span's
            "start": "2025-11-24T16:30:00Z",
            "end": "2025-11-24T17:01:00Z",
            "mode": BEFORE_REVISION,
        }
        assert r["baseline"]["requests"] == 300
        before = (ROLLOUT_S - (NOW - ROLLOUT_S), ROLLOUT_S)
        assert SHOP.reads == [(ROLLOUT_S, NOW), before] * 3  # transit is read on its own

    def test_canary_is_measured_in_the_same_window(self) -> None:
        """With both revisions live, the baseline is measured alongside, in the report's window."""
        CANARY.reads.clear()
        r = _report(CANARY)
        assert r["baseline_window"]["mode"] == SAME_WINDOW
        assert r["baseline_window"]["start"] == r["window"]["start"]
        assert r["baseline"]["requests"] == 300
        assert CANARY.reads[0] == (ROLLOUT_S, NOW)

    def test_baseline_gone_before_the_revision_in_the_same_minute(self) -> None:
        """Old requests in R's first minute but before R appeared are not a canary baseline."""
        b = Buckets()
        b.requests(ROLLOUT_S - 12 * MIN, CART, OLD, 100)
        b.requests(ROLLOUT_S - 5, CART, OLD, 100)  # same minute as NEW's first span, before it
        b.requests(ROLLOUT_S, CART, NEW, 100, errors=30, origin_errors=30)
        r = _report(b, now_s=ROLLOUT_S + 10 * MIN)
        assert r["baseline_window"]["mode"] == BEFORE_REVISION
        assert r["baseline"]["requests"] == 100  # the minutes of the 10 minutes before NEW

    def test_first_revision_has_a_null_baseline(self) -> None:
        """The first revision: baseline null, verdict insufficient_data, no p-value."""
        r = _report(SHOP, revision=OLD)
        assert r["baseline"] is None and r["baseline_window"] is None
        assert (r["verdict"], r["p_value"]) == ("insufficient_data", None)
        assert r["window"]["start"] == "2025-11-24T16:00:00Z"
        assert r["first_seen"] == "2025-11-24T16:00:30Z"

    def test_explicit_baseline(self) -> None:
        """baseline= picks any other revision, even a newer one."""
        r = _report(SHOP, revision=OLD, baseline=NEW)
        assert r["baseline"]["revision"] == NEW

    def test_few_requests_on_a_side_is_insufficient_data(self) -> None:
        """Under 5 requests on either side cannot decide."""
        r = _report(SHOP, since_s=ROLLOUT_S, until_s=ROLLOUT_S + 1)
        assert r["requests"] == 20 and r["baseline"]["requests"] == 0
        assert r["verdict"] == "insufficient_data"
        assert "baseline has 0 requests" in r["reasons"][0]
        b = Buckets()
        b.requests(T0, CART, OLD, 100)
        b.requests(T0 + 600, CART, NEW, 4, errors=4, origin_errors=4)
        r = blast(b, workload=CART, now_s=T0 + 900)
        assert r["verdict"] == "insufficient_data" and r["p_value"] is None


def _starved(*, canary: bool, others_slow: bool, own_slow: bool = False) -> Buckets:
    """``search`` rolls out NEW (unchanged code) at the rollout; from then on the frontend is slow
    to reach it (transit 5 -> 50 ms), and with ``others_slow`` to cart as well (a starved caller).
    """
    b = Buckets()
    cart, search_new, search_old = (CART, "c1"), (SEARCH, NEW), (SEARCH, OLD)
    for m in range(90):
        t = T0 + m * MIN + (15 if m == 60 else 30)
        after = m >= 60
        slow = 50.0 if after else 5.0
        b.requests(t, FRONTEND, "f1", 40, self_ms=20.0)
        b.requests(t, CART, "c1", 20, self_ms=10.0 + (slow if others_slow else 5.0), own_ms=10.0)
        b.transit(t, FRONTEND, cart, 20, slow if others_slow else 5.0)
        if not after or canary:
            b.requests(t, SEARCH, OLD, 20, self_ms=10.0 + (slow if canary else 5.0), own_ms=10.0)
            b.transit(t, FRONTEND, search_old, 20, slow if canary else 5.0)
        if after:
            own = 30.0 if own_slow else 10.0
            b.requests(t, SEARCH, NEW, 20, self_ms=own + slow, own_ms=own)
            b.transit(t, FRONTEND, search_new, 20, slow)
    return b


class TestCallerControl:
    def test_a_starved_caller_is_not_the_callee_rollout(self) -> None:
        """Replaced (no canary); the frontend got slower to reach everything: healthy."""
        r = blast(_starved(canary=False, others_slow=True), workload=SEARCH)
        assert r["baseline_window"]["mode"] == BEFORE_REVISION
        assert r["verdict"] == "healthy"
        assert "the callers' own slowness" in r["reasons"][0]
        assert r["slowdown"]["where"] == "caller"
        [caller] = r["slowdown"]["callers"]
        assert (caller["workload"], caller["service"]) == (FRONTEND, "frontend")
        assert caller["slower_everywhere"] is True
        assert caller["transit_ms"]["p50"] == pytest.approx(50.0, rel=0.1)
        assert caller["baseline_transit_ms"]["p50"] == pytest.approx(5.0, rel=0.1)
        assert caller["other_calls"]["transit_ms"]["p50"] == pytest.approx(50.0, rel=0.1)
        assert caller["p_value"] < 0.01 and caller["other_calls"]["p_value"] < 0.01

    def test_slow_to_reach_is_regressed_in_transit(self) -> None:
        """Only the new revision is slower to reach: regressed, in transit."""
        r = blast(_starved(canary=False, others_slow=False), workload=SEARCH)
        assert r["verdict"] == "regressed"
        assert "in transit (slower to reach)" in r["reasons"][0]
        assert r["slowdown"]["where"] == "transit"
        [caller] = r["slowdown"]["callers"]
        assert caller["slower_everywhere"] is False
        assert caller["other_calls"]["transit_ms"]["p50"] == pytest.approx(5.0, rel=0.1)

    def test_slower_in_its_own_code(self) -> None:
        """Own time tripled: regressed in its own code, the callers are not consulted."""
        r = blast(_starved(canary=False, others_slow=True, own_slow=True), workload=SEARCH)
        assert r["verdict"] == "regressed"
        assert "in its own code" in r["reasons"][0]
        assert r["slowdown"] == {"where": "own_code", "callers": []}

    def test_a_canary_keeps_the_plain_rule(self) -> None:
        """Both revisions live and equally slow to reach: no regression, no control needed."""
        r = blast(_starved(canary=True, others_slow=True), workload=SEARCH)
        assert r["baseline_window"]["mode"] == SAME_WINDOW
        assert r["verdict"] == "healthy" and r["slowdown"] is None

    def test_errors_and_own_code_both_said(self) -> None:
        """The shop's NEW fails more and is slower in its own code: both reasons are given."""
        r = _report(SHOP)
        assert r["reasons"][0].startswith("origin error rate")
        assert "in its own code" in r["reasons"][1]
        assert r["slowdown"]["where"] == "own_code"


class TestExplicitWindow:
    def test_since_and_until_bound_the_window(self) -> None:
        """since/until replace the defaults; counts follow the buckets they cover."""
        r = _report(SHOP, since_s=T0 + 70 * MIN, until_s=T0 + 80 * MIN)
        assert r["window"] == {"start": "2025-11-24T17:10:00Z", "end": "2025-11-24T17:20:00Z"}
        assert r["requests"] == 200

    def test_empty_window_is_zero_not_nan(self) -> None:
        """A window without requests reports zeros, 0.0 rates and null quantiles."""
        r = _report(SHOP, since_s=T0 - 3600, until_s=T0 - 1800)
        assert (r["requests"], r["error_rate"], r["max_hops"]) == (0, 0.0, 0)
        assert r["latency_ms"] == {"p50": None, "p95": None, "p99": None}
        assert r["affected_services"] == [] and r["exemplar_trace_ids"] == []
        json.dumps(r, allow_nan=False)

    def test_first_span_after_now_does_not_reverse_the_window(self) -> None:
        """Clock skew: a revision first seen after 'now' gets an empty window, not an error."""
        r = _report(SHOP, now_s=ROLLOUT_S - 100)
        assert r["window"]["start"] == r["window"]["end"]

    @settings(max_examples=30, deadline=None)
    @given(st.integers(55, 95), st.integers(0, 40))
    def test_counts_are_the_sum_of_covered_minutes(self, first: int, length: int) -> None:
        """requests equals NEW's requests in the minute buckets the window overlaps."""
        start, end = T0 + first * MIN + 7, T0 + (first + length) * MIN + 7
        r = _report(SHOP, since_s=start, until_s=end)
        covered = [m for m in range(60, 90) if T0 + (m + 1) * MIN > start and T0 + m * MIN < end]
        if start == end:
            covered = []  # an empty window reads nothing
        assert r["requests"] == 20 * len(covered)


class TestImpact:
    def test_affected_services_by_hops_then_affected_requests(self) -> None:
        """Other workloads affected by NEW's origins, nearest first, then most affected."""
        r = _report(SHOP)
        assert r["affected_services"] == [
            {"workload": CHECKOUT, "service": "checkout", "hops": 1, "affected_requests": 60,
             "requests": 900},
            {"workload": SEARCH, "service": "search", "hops": 1, "affected_requests": 30,
             "requests": 300},
            {"workload": FRONTEND, "service": "frontend", "hops": 2, "affected_requests": 90,
             "requests": 1500},
        ]  # fmt: skip

    def test_entrypoints_contained_by_and_reach(self) -> None:
        """Entry points with all requests of the operation; absorbers; traces, hops, users."""
        r = _report(SHOP)
        assert [(e["operation"], e["affected_requests"], e["requests"], e["hops"])
                for e in r["entrypoints"]] == [("GET /cart", 60, 600, 1),
                                               ("POST /checkout", 30, 900, 2)]  # fmt: skip
        assert r["entrypoints"][0]["workload"] == FRONTEND
        assert r["contained_by"] == [
            {"workload": CHECKOUT, "service": "checkout", "absorbed_requests": 60},
            {"workload": FRONTEND, "service": "frontend", "absorbed_requests": 30},
        ]
        assert (r["max_hops"], r["affected_traces"], r["affected_users"]) == (2, 60, 7)
        assert r["affected_users_capped"] is False
        assert r["exemplar_trace_ids"] == [f"{m:032x}" for m in range(60, 70)]

    def test_other_origins_are_not_attributed(self) -> None:
        """checkout's own failures do not appear in cart's blast radius, nor OLD's in NEW's."""
        r = _report(SHOP, revision=OLD)
        assert r["affected_services"] == [] and r["entrypoints"] == []
        assert (r["max_hops"], r["affected_traces"], r["affected_users"]) == (0, 0, 0)

    def test_user_cap_is_flagged(self) -> None:
        """When a user set is at its cap, affected_users is marked as a lower bound."""
        b = Buckets()
        b.requests(T0, CART, NEW, 50, errors=50, origin_errors=50)
        b.entry(T0, (CART, NEW), FRONTEND, "GET /", 50, 1, users=map(str, range(MAX_USERS)))
        r = blast(b, workload=CART, now_s=T0 + 60)
        assert (r["affected_users"], r["affected_users_capped"]) == (MAX_USERS, True)

    def test_reading_does_not_change_the_store(self) -> None:
        """Two identical queries give identical reports."""
        assert _report(SHOP) == _report(SHOP)


class TestErrors:
    @pytest.mark.parametrize(
        ("kwargs", "status", "code"),
        [
            ({"workload": "shop/nope"}, 404, "unknown_workload"),
            ({"revision": "0000000"}, 404, "unknown_revision"),
            ({"baseline": "0000000"}, 404, "unknown_revision"),
            ({"revision": ""}, 400, "bad_request"),
            ({"baseline": NEW}, 400, "bad_request"),
            ({"revision": OLD, "baseline": OLD}, 400, "bad_request"),
            ({"since_s": NOW, "until_s": NOW - 1}, 400, "bad_time"),
            ({"since_s": float("nan")}, 400, "bad_time"),
            ({"until_s": float("inf")}, 400, "bad_time"),
        ],
    )
    def test_bad_queries(self, kwargs: dict[str, object], status: int, code: str) -> None:
        """Unknown names are 404s, contradictions and bad windows 400s, with a code."""
        with pytest.raises(QueryError) as info:
            _report(SHOP, **kwargs)
        assert (status_of(info.value), info.value.code) == (status, code)

    @pytest.mark.parametrize(
        "workload",
        ["cart", "/cart", "shop/", "", " shop/cart", "shop/cart ", "shop/ca\nrt", "a/" + "x" * 400],
    )
    def test_malformed_workload_is_400(self, workload: str) -> None:
        """A workload that is not NAMESPACE/NAME is a bad request, not a 404."""
        with pytest.raises(QueryError) as info:
            _report(SHOP, workload=workload)
        assert (status_of(info.value), info.value.code) == (400, "bad_request")
        assert "NAMESPACE/NAME" in str(info.value)
