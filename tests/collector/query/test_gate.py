"""The rollout gate: every well-formed question gets an explicit state."""

from __future__ import annotations

from typing import Any

import pytest
from podtrace_collector import query
from podtrace_collector.errors import BadRequest
from podtrace_collector.query.gate import STATES

from tests.collector.query.aggbuilder import CART, MIN, NEW, NOW, OLD, T0, Buckets, blast, shop

CANARY = shop(canary=True)


def gate(store: Buckets, **params: Any) -> dict[str, Any]:
    """``GET /api/v1/gate`` as the API runs it: plan, one snapshot, answer."""
    now_s = params.pop("now_s", NOW)
    params.setdefault("workload", CART)
    snapshot = store.read(lambda reg: query.plan_gate(reg, now_s=now_s, **params))
    return query.gate_answer(snapshot)


def _canary(*, failing: bool, minutes: int = 30, canary_per_minute: int = 20) -> Buckets:
    """cart OLD for an hour, then NEW alongside it for ``minutes`` minutes."""
    b = Buckets()
    for m in range(60 + minutes):
        t = T0 + m * MIN + 30
        b.requests(t, CART, OLD, 10)
        if m >= 60:
            errors = canary_per_minute // 4 if failing else 0
            b.requests(t, CART, NEW, canary_per_minute, errors=errors, origin_errors=errors)
    return b


class TestStates:
    def test_regressed_matches_the_report(self) -> None:
        """A failing canary is `regressed`, with the report's verdict, p-value and counts."""
        answer = gate(CANARY, revision=NEW, baseline=OLD)
        report = blast(CANARY, workload=CART, revision=NEW, baseline=OLD)
        assert answer["state"] == answer["verdict"] == report["verdict"] == "regressed"
        assert answer["p_value"] == report["p_value"]
        assert answer["reasons"] == report["reasons"]
        assert answer["reason"] == "; ".join(report["reasons"])
        assert (answer["requests"], answer["errors"]) == (report["requests"], report["errors"])
        assert answer["baseline"] == OLD
        assert answer["baseline_requests"] == report["baseline"]["requests"]
        assert answer["window"] == report["window"]
        assert answer["affected_services"] == len(report["affected_services"]) == 3
        assert answer["affected_entrypoints"] == len(report["entrypoints"]) == 2
        assert answer["max_hops"] == report["max_hops"] == 2
        assert answer["report"] == f"/api/v1/blast-radius?workload=shop%2Fcart&revision={NEW}" + (
            f"&baseline={OLD}"
        )

    def test_healthy(self) -> None:
        """A canary failing no more than its baseline is `healthy`."""
        answer = gate(_canary(failing=False), revision=NEW, baseline=OLD, now_s=T0 + 90 * MIN)
        assert answer["state"] == "healthy"
        assert answer["requests"] == 600 and answer["errors"] == 0

    def test_young_canary_is_insufficient_data(self) -> None:
        """A canary with 3 requests so far cannot be judged yet: `insufficient_data`, not 404."""
        b = _canary(failing=True, minutes=1, canary_per_minute=3)
        answer = gate(b, revision=NEW, baseline=OLD, now_s=T0 + 61 * MIN)
        assert answer["state"] == "insufficient_data"
        assert answer["requests"] == 3
        assert "at least 5 are needed" in answer["reason"]

    @pytest.mark.parametrize(
        ("params", "says"),
        [
            ({"revision": "9999999"}, "no span of revision 9999999 of shop/cart"),
            ({"workload": "shop/unborn", "revision": NEW}, "no span of shop/unborn"),
            ({"workload": None, "service": "nobody"}, "no span of nobody"),
            ({"version": "9.9.9"}, "no span of shop/cart at version 9.9.9"),
        ],
    )
    def test_not_seen(self, params: dict[str, Any], says: str) -> None:
        """A canary podtrace has no span of yet is `not_seen`, answered, with zero counts."""
        answer = gate(CANARY, baseline=OLD, **params)
        assert answer["state"] == "not_seen"
        assert answer["verdict"] is None and answer["p_value"] is None
        assert answer["requests"] == 0 and answer["window"] is None
        assert answer["report"] is None
        assert says in answer["reason"]

    def test_not_seen_in_an_empty_store(self) -> None:
        """Before any span at all, every workload is `not_seen`."""
        assert gate(Buckets(), revision=NEW)["state"] == "not_seen"

    def test_unknown_baseline_cannot_be_compared(self) -> None:
        """A stable revision podtrace never saw leaves nothing to compare: `insufficient_data`."""
        answer = gate(CANARY, revision=NEW, baseline="0000000")
        assert answer["state"] == "insufficient_data"
        assert answer["baseline"] is None
        assert "baseline 0000000" in answer["reason"]
        assert answer["requests"] == 600  # the revision itself is still reported

    def test_baseline_equal_to_the_revision(self) -> None:
        """Comparing a revision with itself is not an error for a gate: nothing to compare."""
        answer = gate(CANARY, revision=NEW, baseline=NEW)
        assert answer["state"] == "insufficient_data"
        assert "is the revision itself" in answer["reason"]

    def test_defaults_follow_the_report(self) -> None:
        """Without revision and baseline: the newest revision against the previous one."""
        answer = gate(CANARY)
        assert (answer["revision"], answer["baseline"], answer["state"]) == (NEW, OLD, "regressed")

    def test_states_are_the_verdicts_and_not_seen(self) -> None:
        """The gate's states are the verdict's three names plus `not_seen`."""
        from podtrace_collector.query.verdict import HEALTHY, INSUFFICIENT_DATA, REGRESSED

        assert set(STATES) == {REGRESSED, HEALTHY, INSUFFICIENT_DATA, "not_seen"}


class TestBadQuestions:
    @pytest.mark.parametrize(
        "params",
        [
            {"workload": "no-namespace"},
            {"workload": CART, "service": "cart"},
            {"workload": None},
            {"revision": ""},
        ],
    )
    def test_malformed_parameters_are_still_errors(self, params: dict[str, Any]) -> None:
        """A malformed question is a 400 (a misconfigured gate must be seen), not a state."""
        with pytest.raises(BadRequest):
            gate(CANARY, **params)
