"""Tests for podtrace.report: the API's JSON rendered as text."""

from __future__ import annotations

from typing import Any

import pytest

from podtrace import report
from podtrace.report import render_report, render_rollouts

OLD, NEW = "5c4b3a291", "7d9f8c6b5"

SPEC_REPORT: dict[str, Any] = {
    "workload": "shop/cart", "kind": "Deployment", "service": "cart",
    "revision": "7d9f8c6b5", "version": "1.4.0",
    "window": {"start": "2026-11-24T10:00:00Z", "end": "2026-11-24T10:15:00Z"},
    "requests": 1200, "errors": 240, "origin_errors": 230, "error_rate": 0.2,
    "latency_ms": {"p50": 12.0, "p95": 80.0, "p99": 140.0},
    "self_time_ms": {"p50": 4.0, "p95": 50.0, "p99": 90.0},
    "baseline": {"revision": "5c4b3a291", "requests": 1000, "errors": 2, "origin_errors": 2,
                 "error_rate": 0.002, "latency_ms": {"p50": 11.0, "p95": 40.0, "p99": 60.0},
                 "self_time_ms": {"p50": 4.0, "p95": 12.0, "p99": 20.0}},
    "verdict": "regressed", "p_value": 1e-12,
    "affected_services": [{"workload": "shop/checkout", "service": "checkout", "hops": 1,
                           "affected_requests": 180, "requests": 900}],
    "entrypoints": [{"workload": "shop/frontend", "service": "frontend",
                     "operation": "POST /checkout", "affected_requests": 150, "requests": 3000}],
    "contained_by": [{"workload": "shop/frontend", "service": "frontend",
                      "absorbed_requests": 30}],
    "max_hops": 2, "affected_traces": 150, "affected_users": 42,
    "exemplar_trace_ids": ["4bf92f3577b34da6a3ce929d0e0e4736"],
    "latency_impact": {
        "entrypoints": [{"workload": "shop/frontend", "service": "frontend",
                         "operation": "POST /checkout", "hops": 2, "exposed_requests": 240,
                         "requests": 260, "share_ms": {"p50": 120.0, "p95": 410.0},
                         "baseline_share_ms": {"p50": 15.0, "p95": 30.0},
                         "added_ms": {"p50": 105.0, "p95": 380.0},
                         "latency_ms": {"p50": 310.0, "p95": 800.0},
                         "p_value": 1e-9, "affected_users": 40}],
        "services": [{"workload": "shop/checkout", "service": "checkout", "hops": 1,
                      "exposed_requests": 180, "requests": 900,
                      "share_ms": {"p50": 100.0, "p95": 300.0},
                      "baseline_share_ms": {"p50": 10.0, "p95": 20.0},
                      "added_ms": {"p50": 90.0, "p95": 280.0},
                      "latency_ms": {"p50": 150.0, "p95": 500.0}, "p_value": 1e-6}],
    },
}  # fmt: skip


def test_exported_members() -> None:
    """The public names of the rendering module are exactly these."""
    assert set(report.__all__) == {"render_report", "render_rollouts"}


class TestRender:
    def test_spec_report_verdict_first(self) -> None:
        """The SPEC's example renders with the verdict first, then each section in order."""
        out = render_report(SPEC_REPORT)
        order = ["shop/cart", "VERDICT: REGRESSED", "p = 1e-12", "baseline 5c4b3a291",
                 "Affected services (max 2 hops)", "Entry points", "Slowed (critical path)",
                 "Contained by", "Affected by failures: traces 150, users 42",
                 "4bf92f3577b34da6a3ce929d0e0e4736"]  # fmt: skip
        positions = [out.index(s) for s in order]
        assert positions == sorted(positions)
        assert "12 / 80 / 140 ms" in out and "11 / 40 / 60 ms" in out
        assert "230 (19.2%)" in out and "2 (0.2%)" in out  # rates derived when absent
        row = next(line for line in out.splitlines() if "shop/checkout" in line)
        assert row.split() == ["1", "shop/checkout", "checkout", "180", "900", "(20.0%)"]
        assert "POST /checkout" in out and "3,000 (5.0%)" in out

    def test_first_revision_and_nothing_affected(self) -> None:
        """No baseline and no impact read as such, not as empty tables."""
        report = {**SPEC_REPORT, "baseline": None, "verdict": "insufficient_data",
                  "p_value": None, "affected_services": [], "entrypoints": [],
                  "contained_by": [], "exemplar_trace_ids": [],
                  "affected_users_capped": True,
                  "latency_impact": {"entrypoints": [], "services": []}}  # fmt: skip
        out = render_report(report)
        assert "Slowed (critical path)\n  none: nothing waited" in out
        assert "VERDICT: INSUFFICIENT DATA" in out and "p =" not in out
        assert "first revision" in out
        assert "none: no failure" in out and "none affected" in out and "nowhere" in out
        assert "users at least 42" in out

    def test_where_a_slowdown_went(self) -> None:
        """slowdown: the verdict is followed by where the time went and the callers' numbers."""
        caller = {"workload": "shop/frontend", "transit_ms": {"p50": 50.0, "p95": 60.0},
                  "baseline_transit_ms": {"p50": 5.0, "p95": 6.0}, "p_value": 1e-9,
                  "other_calls": {"transit_ms": {"p50": 5.2}, "baseline_transit_ms": {"p50": 5.0},
                                  "p_value": 0.4},
                  "slower_everywhere": False}  # fmt: skip
        out = render_report({**SPEC_REPORT, "slowdown": {"where": "transit", "callers": [caller]}})
        assert (
            out.index("VERDICT")
            < out.index("Latency: slower to reach (transit")
            < out.index("baseline 5c4b3a291")
        )
        row = next(line for line in out.splitlines() if "shop/frontend" in line)
        assert row.split() == ["shop/frontend", "50", "vs", "5", "ms", "5.2", "vs", "5", "ms", "no"]
        own = render_report({**SPEC_REPORT, "slowdown": {"where": "own_code", "callers": []}})
        assert "Latency: slower in its own code" in own and "CALLER" not in own
        assert "Latency" not in render_report({**SPEC_REPORT, "slowdown": None})

    @pytest.mark.parametrize(
        "report",
        [
            {},
            {"slowdown": {"where": 3, "callers": [None, {"other_calls": "x"}]}},
            {"verdict": 3, "p_value": "x", "window": "soon", "baseline": [1]},
            {"affected_services": [1, "a", None, {"hops": "far"}], "reasons": [{"x": 1}]},
            {"latency_ms": {"p50": None, "p95": True}, "requests": 2**70},
            {"entrypoints": {"not": "a list"}, "exemplar_trace_ids": "abc"},
            {
                "latency_impact": {
                    "entrypoints": [
                        {"added_ms": "x", "share_ms": {"p50": "a"}},
                        {"share_ms": {"p50": 3}, "latency_ms": 0},
                    ],
                    "services": 3,
                }
            },
            {
                "latency_impact": {
                    "services": [{"share_ms": {"p50": 1.0}, "latency_ms": {"p50": 0}}]
                }
            },
            {"latency_impact": [1, 2]},
        ],
    )
    def test_partial_or_odd_reports_never_raise(self, report: dict[str, Any]) -> None:
        """Whatever the JSON holds, rendering gives text."""
        assert "VERDICT" in render_report(report)

    def test_rollouts_table(self) -> None:
        """Rollouts render one row each, or a sentence when there are none."""
        body = {"rollouts": [{"workload": "shop/cart", "from_revision": OLD, "to_revision": NEW,
                              "started_at": "2026-11-24T10:00:00Z", "verdict": "regressed",
                              "requests": 1200, "error_rate": 0.2, "affected_services": 3,
                              "affected_users": 42}]}  # fmt: skip
        out = render_rollouts(body)
        assert "REGRESSED" in out and f"{OLD} -> {NEW}" in out and "20.0%" in out
        assert render_rollouts({"rollouts": []}) == "no rollouts seen yet"


class TestSlowed:
    def test_slowed_rows_say_added_time_and_share_of_latency(self) -> None:
        """Entry points then services, with hops, exposure, added p50/p95, the share of their
        latency and users."""
        lines = render_report(SPEC_REPORT).split("Slowed (critical path)\n", 1)[1].splitlines()
        assert lines[0].split() == ["ENTRY", "POINT", "OPERATION", "HOPS", "EXPOSED", "OF",
                                    "REQUESTS", "ADDED", "P50", "ADDED", "P95", "SHARE",
                                    "USERS"]  # fmt: skip
        assert lines[1].split() == ["shop/frontend", "POST", "/checkout", "2", "240", "260",
                                    "(92.3%)", "+105", "ms", "+380", "ms", "120", "of", "310",
                                    "ms", "(39%)", "40"]  # fmt: skip
        assert lines[2].split()[0] == "SERVICE"
        assert lines[3].split() == ["shop/checkout", "1", "180", "900", "(20.0%)", "+90", "ms",
                                    "+280", "ms", "100", "of", "150", "ms", "(67%)"]  # fmt: skip

    def test_a_collector_without_latency_impact_prints_no_section(self) -> None:
        """An older collector's report (no latency_impact) renders without the section."""
        old = {k: v for k, v in SPEC_REPORT.items() if k != "latency_impact"}
        assert "Slowed" not in render_report(old)

    def test_rollouts_count_slowed_services(self) -> None:
        """The rollouts table has a SLOWED column."""
        body = {"rollouts": [{"workload": "shop/cart", "verdict": "regressed",
                              "slowed_services": 4, "affected_services": 0}]}  # fmt: skip
        head, row = render_rollouts(body).splitlines()
        assert head.split()[-2] == "SLOWED" and row.split()[-2] == "4"


class TestRenderWords:
    def test_unknown_users_say_why(self) -> None:
        """``affected_users: null`` reads as unknown with the reason, never as 0."""
        report = {**SPEC_REPORT, "affected_users": None,
                  "affected_users_reason": "no enduser.id on entry spans"}  # fmt: skip
        out = render_report(report)
        assert "users unknown (no enduser.id on entry spans)" in out
        assert "users 0" not in out

    def test_one_hop_and_one_first_revision_line(self) -> None:
        """'max 1 hop' in the singular; the first revision is said once, by the reasons."""
        one = {**SPEC_REPORT, "max_hops": 1}
        assert "Affected services (max 1 hop)" in render_report(one)
        first = {**SPEC_REPORT, "baseline": None,
                 "reasons": ["first revision: there is no baseline"]}  # fmt: skip
        assert render_report(first).count("baseline") == 1

    def test_the_window_says_it_is_whole_minutes(self) -> None:
        """The printed window is the minutes read, with the revision's first span beside it."""
        out = render_report({**SPEC_REPORT, "first_seen": "2026-11-24T10:00:49.541Z"})
        assert "whole minutes; first span of this revision 2026-11-24T10:00:49.541Z" in out
