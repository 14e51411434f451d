"""The workload inventory: workloads, revisions newest first, counts over a window."""

from __future__ import annotations

import json
from typing import Any

from podtrace_collector import query

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
    shop,
)

SHOP = shop(canary=False)


def _workloads(
    b: Buckets, since_s: float | None = None, until_s: float | None = None
) -> dict[str, Any]:
    return query.workloads(b.read(lambda _: query.WorkloadsPlan(since_s, until_s)))


def test_everything_retained_by_default() -> None:
    """No window: every workload, sorted, each revision's counts over all that is retained."""
    got = _workloads(SHOP)["workloads"]
    assert [w["workload"] for w in got] == [CART, CHECKOUT, FRONTEND, SEARCH]
    cart = got[0]
    assert (cart["kind"], cart["service"], cart["requests"], cart["errors"]) == (
        "Deployment",
        "cart",
        1200,
        150,
    )
    assert cart["revisions"] == [
        {
            "revision": NEW,
            "version": "1.4.0",
            "first_seen": "2025-11-24T17:00:15Z",
            "last_seen": "2025-11-24T17:29:30Z",
            "pods": 1,
            "requests": 600,
            "errors": 150,
            "origin_errors": 120,
            "error_rate": 0.25,
        },
        {
            "revision": OLD,
            "version": "1.3.0",
            "first_seen": "2025-11-24T16:00:30Z",
            "last_seen": "2025-11-24T16:59:30Z",
            "pods": 1,
            "requests": 600,
            "errors": 0,
            "origin_errors": 0,
            "error_rate": 0.0,
        },
    ]
    json.dumps(got, allow_nan=False)


def test_window_keeps_active_revisions_and_counts_in_it() -> None:
    """A window lists revisions alive in it, with counts over it and lifetimes over all."""
    got = _workloads(SHOP, since_s=T0 + 70 * MIN, until_s=T0 + 80 * MIN)
    cart = got["workloads"][0]
    assert [r["revision"] for r in cart["revisions"]] == [NEW]
    assert cart["revisions"][0]["requests"] == 200
    assert cart["revisions"][0]["first_seen"] == "2025-11-24T17:00:15Z"


def test_revision_alive_without_requests_in_window_is_listed_with_zero() -> None:
    """A revision whose lifetime overlaps the window is listed even with no requests in it."""
    b = Buckets()
    b.requests(T0, CART, OLD, 5)
    b.requests(T0 + 10 * MIN, CART, OLD, 5)
    got = _workloads(b, since_s=T0 + 4 * MIN, until_s=T0 + 6 * MIN)
    (rev,) = got["workloads"][0]["revisions"]
    assert (rev["revision"], rev["requests"], rev["pods"], rev["error_rate"]) == (OLD, 0, 0, 0.0)


def test_pods_are_counted_over_the_window() -> None:
    """pods is the number of distinct pods that served the revision in the window."""
    b = Buckets()
    b.requests(T0, CART, NEW, 1, pods=["cart-1", "cart-2"])
    b.requests(T0 + MIN, CART, NEW, 1, pods=["cart-2", "cart-3"])
    (rev,) = _workloads(b)["workloads"][0]["revisions"]
    assert rev["pods"] == 3
    (rev,) = _workloads(b, since_s=T0 + MIN)["workloads"][0]["revisions"]
    assert rev["pods"] == 2


def test_empty_store() -> None:
    """No data: no workloads."""
    assert _workloads(Buckets()) == {"workloads": []}
