"""The verdict scenario set: 18 faulty rollouts, each beside an unchanged one at the same moment.

Six services of the simulated shop (``shopsim.BOUTIQUE``: the frontend, checkout, cart, the
product catalog, and the low-traffic payment and email services, six requests a minute) each
get each fault (CPU contention, a CPU hog, network delay on the pods), rolled out as a new
revision at minute 10 of 20 that replaces the old one (no canary: the baseline is the window
before).  At the same moment another service rolls out an unchanged revision: for the frontend
and checkout one of their callees (the trap: a starved caller makes its callees look slow to
reach), for the others a neighbour.  Every trace goes through the production analysis
(``Analyzer``), a store and the blast-radius report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podtrace_collector.analyse.analyzer import Analyzer
from podtrace_collector.store.memory import MemoryStore

from tests.collector.query.aggbuilder import blast
from tests.collector.shopsim import BOUTIQUE, FAULTS, NAMESPACE, Fault, Rollout, simulate, spans

T0 = 1_764_000_000  # minute-aligned
MINUTES, ROLLOUT_MINUTE, PER_MINUTE = 20, 10, 40
# The faulty service -> the service rolling out unchanged beside it, one per fault.
PAIRS = {
    "frontend": ("currency", "productcatalog", "ad"),
    "checkout": ("shipping", "currency", "payment"),
    "cart": ("ad", "frontend", "checkout"),
    "productcatalog": ("recommendation", "currency", "shipping"),
    "payment": ("email", "shipping", "cart"),
    "email": ("payment", "ad", "shipping"),
}


@dataclass(frozen=True)
class Outcome:
    service: str
    fault: str
    faulty: str  # "regressed" is right
    unchanged_service: str
    unchanged: str  # anything but "regressed" is right
    faulty_report: dict[str, Any]
    unchanged_report: dict[str, Any]


def run(service: str, fault: Fault, beside: str, *, seed: int = 1) -> Outcome:
    """One scenario: ``service`` rolls out with ``fault``, ``beside`` unchanged, same moment."""
    rollouts = [
        Rollout(service, ROLLOUT_MINUTE, fault, "bad0000"),
        Rollout(beside, ROLLOUT_MINUTE, revision="same000"),
    ]
    calls = simulate(BOUTIQUE, rollouts, t0_s=T0, minutes=MINUTES, per_minute=PER_MINUTE, seed=seed)
    analyzer = Analyzer()
    for trace in spans(calls):
        analyzer.on_trace(trace, late=False)
    analyzer.release_waiting()
    store = MemoryStore()
    store.write(analyzer.drain())
    now_s = T0 + MINUTES * 60
    bad = blast(store, workload=f"{NAMESPACE}/{service}", now_s=now_s)
    same = blast(store, workload=f"{NAMESPACE}/{beside}", now_s=now_s)
    return Outcome(service, fault.name, bad["verdict"], beside, same["verdict"], bad, same)


def run_all() -> list[Outcome]:
    """All 18 scenarios."""
    return [
        run(service, fault, PAIRS[service][i], seed=7 * n + i)
        for n, service in enumerate(PAIRS)
        for i, fault in enumerate(FAULTS)
    ]


def table(outcomes: list[Outcome]) -> str:
    """The outcomes as a Markdown table, with where the time went and the p-values."""
    lines = [
        "| faulty revision | fault | verdict | where | unchanged beside it | verdict | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        slow = o.faulty_report.get("slowdown") or {}
        beside = o.unchanged_report
        why = (beside.get("slowdown") or {}).get("where") or "-"
        lines.append(
            f"| {o.service} | {o.fault} | {o.faulty} | {slow.get('where') or '-'} | "
            f"{o.unchanged_service} | {o.unchanged} | {why} |"
        )
    return "\n".join(lines)
