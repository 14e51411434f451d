"""The Argo Rollouts gate of ``examples/k8s/argo-analysis-template.yaml`` against the real API.

The template's web metric is measured the way Argo measures it (``tests/examples/argo.py``: the
HTTP request, the expr conditions, the metric's counters and limits, the Rollout's reaction)
against the collector's real API app serving a real SQLite store, filled minute by minute with
traces of a payment canary analysed by the production Analyzer: a canary not seen yet, a young
one, a healthy one, a regressed one, and a gateway that cannot be reached.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.store.sqlite import SqliteStore

from tests.collector.analyse.tracebuilder import Trace, deployment
from tests.collector.api.served import Served, add, minute, serve
from tests.examples.argo import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    RUNNING,
    SUCCESSFUL,
    Measurement,
    MetricResult,
    assess,
    measure,
    rollout_action,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "k8s" / "argo-analysis-template.yaml"
DOCS = {d["kind"]: d for d in yaml.safe_load_all(TEMPLATE.read_text()) if d}
METRIC: dict[str, Any] = DOCS["AnalysisTemplate"]["spec"]["metrics"][0]
ROLLOUT: dict[str, Any] = DOCS["Rollout"]
STABLE, CANARY = "5c4b3a291", "7d9f8c6b5"
FRONTEND = deployment("shop", "frontend", "f1f1f1f1f", version="2.0.0")


def _payment(rev: str) -> Any:
    return deployment("shop", "payment", rev, version="1.4.0" if rev == CANARY else "1.3.0")


class Gateway:
    """The real API over a real store; ``minute_of_traffic`` moves the rollout one minute on."""

    def __init__(self, path: Path) -> None:
        self.store = SqliteStore(path)
        self.served: Served = serve(self.store)
        self.now_s = time.time()
        self.minutes = 0  # minutes of rollout written so far

    def traffic(self, minutes_ago: int, rev: str, n: int, *, failing: int = 0) -> None:
        buckets: dict[int, Aggregates] = {}
        for i in range(n):
            t = Trace(base_s=minute(self.now_s, minutes_ago))
            root = t.server(FRONTEND, "POST /checkout", method="POST", route="/checkout")
            t.call(root, _payment(rev), "POST /charge", dur_ms=8 + i % 7, error=i < failing)
            add(buckets, t)
        self.store.write(buckets)

    def url(self, **args: str) -> str:
        """The template's URL with its args resolved, aimed at this gateway."""
        template = METRIC["provider"]["web"]["url"]
        url = re.sub(r"\{\{args\.([\w-]+)\}\}", lambda m: args[m[1]], template)
        return re.sub(r"^http://[^/]+", self.served.url, url)

    def measure(self) -> Measurement:
        url = self.url(**{"workload": "shop/payment", "canary-hash": CANARY, "stable-hash": STABLE})
        return measure(METRIC, url)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """Payment's stable revision served 20 requests a minute for the 15 minutes before now."""
    gw = Gateway(tmp_path / "podtrace.db")
    for m in range(15, 0, -1):
        gw.traffic(m, STABLE, 20)
    yield gw
    gw.served.stop()
    gw.store.close()


def _dead_url() -> str:
    """A loopback port nothing listens on: the gateway is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1/gate?workload=shop/payment&revision={CANARY}"


def _run(measurements: list[Measurement]) -> list[str]:
    """The Rollout's action after each measurement, as Argo assesses the metric."""
    result = MetricResult()
    actions = []
    for m in measurements:
        result.add(m)
        actions.append(rollout_action(assess(METRIC, result)))
    return actions


def _rollout_minutes() -> int:
    """How long the Rollout's steps take, in minutes (its pauses)."""
    steps = ROLLOUT["spec"]["strategy"]["canary"]["steps"]
    total = 0
    for step in steps:
        if "pause" in step:
            match = re.fullmatch(r"(\d+)m", step["pause"]["duration"])
            assert match, step
            total += int(match[1])
    return total


class TestStates:
    """Each state the gate answers, measured as Argo measures it."""

    def test_not_seen_is_inconclusive(self, gateway: Gateway) -> None:
        """A canary podtrace has no span of yet: 200 not_seen, an Inconclusive measurement."""
        m = gateway.measure()
        assert '"state": "not_seen"' in m.value
        assert m.phase == INCONCLUSIVE

    def test_young_canary_is_inconclusive(self, gateway: Gateway) -> None:
        """Three requests in: insufficient_data, Inconclusive (neither passed nor failed)."""
        gateway.traffic(0, STABLE, 20)
        gateway.traffic(0, CANARY, 3, failing=3)
        m = gateway.measure()
        assert '"state": "insufficient_data"' in m.value
        assert m.phase == INCONCLUSIVE

    def test_healthy_canary_succeeds(self, gateway: Gateway) -> None:
        """A canary failing no more than stable: healthy, Successful."""
        for m in (2, 1, 0):
            gateway.traffic(m, STABLE, 20)
            gateway.traffic(m, CANARY, 20)
        m = gateway.measure()
        assert '"state": "healthy"' in m.value, m.value
        assert m.phase == SUCCESSFUL

    def test_regressed_canary_fails(self, gateway: Gateway) -> None:
        """A canary failing half its requests: regressed, Failed."""
        for m in (2, 1, 0):
            gateway.traffic(m, STABLE, 20)
            gateway.traffic(m, CANARY, 20, failing=10)
        m = gateway.measure()
        assert '"state": "regressed"' in m.value
        assert m.phase == FAILED

    def test_unreachable_gateway_is_an_error(self) -> None:
        """No gateway: the measurement is an Error (Argo retries it 10 s later)."""
        assert measure(METRIC, _dead_url()).phase == ERROR

    def test_a_bad_question_is_an_error(self, gateway: Gateway) -> None:
        """A misconfigured template (an empty hash) is an Error, not a quiet pass."""
        url = gateway.url(**{"workload": "shop/payment", "canary-hash": "", "stable-hash": STABLE})
        m = measure(METRIC, url)
        assert m.phase == ERROR and "400" in m.message


class TestRollouts:
    """Whole rollouts: the measurements of each minute and what the Rollout does."""

    def test_a_bad_canary_is_aborted_once_it_is_judged(self, gateway: Gateway) -> None:
        """Not seen, then young: the rollout goes on; the first regressed measurement aborts."""
        seen = [gateway.measure()]
        gateway.traffic(1, STABLE, 20)
        gateway.traffic(1, CANARY, 3, failing=2)
        seen.append(gateway.measure())
        gateway.traffic(0, STABLE, 20)
        gateway.traffic(0, CANARY, 30, failing=15)
        seen.append(gateway.measure())
        assert [m.phase for m in seen] == [INCONCLUSIVE, INCONCLUSIVE, FAILED]
        assert _run(seen) == ["continue", "continue", "abort"]

    def test_every_step_is_gated(self, gateway: Gateway) -> None:
        """The metric runs as long as the steps do (no count): a regression in the last
        minute of the last step still aborts, and until then nothing ends the analysis."""
        minutes = _rollout_minutes()
        assert minutes == 11
        assert "count" not in METRIC and METRIC["interval"] == "1m"
        healthy = Measurement(SUCCESSFUL)
        young = Measurement(INCONCLUSIVE)
        result = MetricResult()
        for m in [young, young, *[healthy] * (minutes * 3)]:  # three times the steps' length
            result.add(m)
            assert assess(METRIC, result) == RUNNING
        gateway.traffic(0, STABLE, 20)
        gateway.traffic(0, CANARY, 30, failing=15)
        result.add(gateway.measure())
        assert rollout_action(assess(METRIC, result)) == "abort"

    def test_a_quiet_canary_is_not_blocked(self) -> None:
        """A canary too quiet to judge for the whole rollout: Inconclusive every minute, and
        the rollout goes on (inconclusiveLimit exceeds its length); much longer, it pauses
        for a person, and is never aborted."""
        minutes = _rollout_minutes()
        quiet = [Measurement(INCONCLUSIVE)] * (minutes + 2)
        assert set(_run(quiet)) == {"continue"}
        limit = int(METRIC["inconclusiveLimit"])
        assert _run([Measurement(INCONCLUSIVE)] * (limit + 1))[-1] == "pause"

    def test_a_gateway_restart_is_ridden_out(self, gateway: Gateway) -> None:
        """Errors in a row up to consecutiveErrorLimit (retried every 10 s) do not stop the
        rollout; once the gateway answers again the count starts over."""
        limit = int(METRIC["consecutiveErrorLimit"])
        assert limit * 10 >= 60  # at least a minute of outage is ridden out
        down = [measure(METRIC, _dead_url())] * limit
        for m in (1, 0):
            gateway.traffic(m, STABLE, 20)
            gateway.traffic(m, CANARY, 20)
        back = gateway.measure()
        assert back.phase == SUCCESSFUL, back.value
        assert set(_run([*down, back, *down])) == {"continue"}

    def test_a_gateway_that_stays_down_aborts(self) -> None:
        """More errors in a row than the limit: Error, and the rollout is aborted (fail safe)."""
        limit = int(METRIC["consecutiveErrorLimit"])
        down = measure(METRIC, _dead_url())
        assert _run([down] * (limit + 1))[-1] == "abort"
