"""The rollout list: consecutive revisions of each workload, newest first, with verdicts."""

from __future__ import annotations

import json
from typing import Any

from podtrace_collector import query

from tests.collector.query.aggbuilder import (
    CART,
    MIN,
    NEW,
    NOW,
    OLD,
    ROLLOUT_S,
    SEARCH,
    T0,
    Buckets,
    shop,
)


def _rollouts(b: Buckets, **params: Any) -> dict[str, Any]:
    now_s = params.pop("now_s")
    return query.rollouts(b.read(lambda reg: query.plan_rollouts(reg, now_s=now_s, **params)))


def _three_rollouts() -> Buckets:
    """cart: OLD -> NEW at minute 60 -> FIX at minute 80; search: s1 -> s2 at minute 70."""
    b = shop(canary=False)
    for m in range(70, 90):
        b.requests(T0 + m * MIN + 5, SEARCH, "s2", 10, version="1.1.0")
    for m in range(80, 90):
        b.requests(T0 + m * MIN + 5, CART, "fix", 30, version="1.4.1")
    return b


def test_newest_first_with_consecutive_pairs() -> None:
    """Every consecutive pair of revisions is a rollout; the newest comes first."""
    b = _three_rollouts()
    got = _rollouts(b, now_s=NOW)["rollouts"]
    assert [(r["workload"], r["from_revision"], r["to_revision"]) for r in got] == [
        (CART, NEW, "fix"),
        (SEARCH, "s1", "s2"),
        (CART, OLD, NEW),
    ]
    assert [r["started_at"] for r in got] == [
        "2025-11-24T17:20:05Z",
        "2025-11-24T17:10:05Z",
        "2025-11-24T17:00:15Z",
    ]
    json.dumps(got, allow_nan=False)


def test_summary_matches_the_blast_radius_report() -> None:
    """A rollout carries the verdict and counts of the new revision's report."""
    b = shop(canary=False)
    (r,) = _rollouts(b, now_s=NOW)["rollouts"]
    assert (r["from_version"], r["to_version"], r["kind"], r["service"]) == (
        "1.3.0",
        "1.4.0",
        "Deployment",
        "cart",
    )
    assert (r["verdict"], r["requests"], r["errors"], r["origin_errors"]) == (
        "regressed",
        600,
        150,
        120,
    )
    assert r["p_value"] < 1e-12 and r["error_rate"] == 0.25
    assert (r["affected_services"], r["affected_entrypoints"]) == (3, 2)
    assert (r["max_hops"], r["affected_traces"], r["affected_users"]) == (2, 60, 7)
    assert r["baseline_requests"] == 300


def test_a_healthy_rollout() -> None:
    """A new revision as good as the old one is healthy."""
    b = _three_rollouts()
    got = {r["to_revision"]: r for r in _rollouts(b, now_s=NOW)["rollouts"]}
    assert got["s2"]["verdict"] == "healthy"
    assert got["fix"]["verdict"] == "healthy"  # no origin errors, faster self time


def test_limit_bounds_the_work() -> None:
    """Only the newest `limit` rollouts are computed, at most six windows each (four for
    transit)."""
    b = _three_rollouts()
    got = _rollouts(b, now_s=NOW, limit=2)["rollouts"]
    assert [r["to_revision"] for r in got] == ["fix", "s2"]
    assert len(b.reads) <= 12
    assert _rollouts(b, now_s=NOW, limit=0) == {"rollouts": []}


def test_since_and_until_select_by_start_time() -> None:
    """since/until keep the rollouts that started inside the window."""
    b = _three_rollouts()
    got = _rollouts(b, now_s=NOW, since_s=ROLLOUT_S, until_s=T0 + 80 * MIN)["rollouts"]
    assert [r["to_revision"] for r in got] == ["s2", NEW]


def test_single_revisions_are_not_rollouts() -> None:
    """A workload seen at one revision only has no rollout; an empty store has none."""
    b = Buckets()
    b.requests(T0, CART, OLD, 10)
    assert _rollouts(b, now_s=NOW) == {"rollouts": []}
    assert _rollouts(Buckets(), now_s=NOW) == {"rollouts": []}


def test_replaced_revision_is_judged_over_its_lifetime() -> None:
    """A revision no longer seen is judged from its first to its last span, not until now."""
    b = Buckets()
    for m in range(30):
        rev = OLD if m < 10 else NEW if m < 20 else "next"
        b.requests(T0 + m * MIN + 30, CART, rev, 10)
    got = {r["to_revision"]: r for r in _rollouts(b, now_s=T0 + 3600)["rollouts"]}
    # The whole minutes read: NEW's first span (16:10:30) to its last (16:19:30, +1 s margin).
    assert got[NEW]["window"] == {"start": "2025-11-24T16:10:00Z", "end": "2025-11-24T16:20:00Z"}
    # The baseline: an equal 541 s before NEW, which covers OLD's minutes 1 to 9.
    assert got[NEW]["requests"] == 100 and got[NEW]["baseline_requests"] == 90
    assert got["next"]["window"]["end"] == "2025-11-24T16:30:00Z"
