"""Verdicts on the scenario set: 18 faulty rollouts, each beside an unchanged one.

Runs ``tests/collector/scenarios.py`` (simulated shop traffic through the production analysis,
a store and the blast-radius report) and prints the outcome of every scenario, the counts, and
the counts the same reports give without the caller control of SPEC §6 (every transit-only
slowdown kept on the revision), which is what the verdict did before it.

Run: ``.venv/bin/python -m bench bench_verdicts``.
"""

from __future__ import annotations

import time
from unittest import mock

from podtrace_collector.query import blast

from tests.collector import scenarios


def _counts(outcomes: list[scenarios.Outcome]) -> str:
    faulty = sum(o.faulty == "regressed" for o in outcomes)
    unchanged = sum(o.unchanged == "regressed" for o in outcomes)
    return f"faulty regressed {faulty} of {len(outcomes)}, unchanged regressed {unchanged}"


def main() -> None:
    t0 = time.perf_counter()
    outcomes = scenarios.run_all()
    elapsed = time.perf_counter() - t0
    print(scenarios.table(outcomes))
    print(f"{_counts(outcomes)}  ({elapsed:.1f} s)")
    with mock.patch.object(blast, "callers_of", lambda *args: []):
        plain = scenarios.run_all()
    print(f"without the caller control: {_counts(plain)}")


if __name__ == "__main__":
    main()
