"""Tests for podtrace._query: the `podtrace blast-radius` CLI and its table renderer.

The CLI talks to the collector's real app under uvicorn on a free loopback port; a few runs go
through the installed `podtrace` script as a real subprocess, the rest call ``main`` in-process
(same HTTP, faster).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from podtrace_collector.store.memory import MemoryStore

import podtrace
from podtrace import _query
from podtrace._query import main, render_report, render_rollouts
from tests.collector.api.test_routes import NEW, OLD, Server, make_app, scenario

PODTRACE = Path(sys.executable).parent / "podtrace"

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
}  # fmt: skip


@pytest.fixture(scope="module")
def api() -> Iterator[Server]:
    """The collector's API over the scenario (cart rolled out a failing revision)."""
    srv = Server(make_app())
    srv.app.state.store = MemoryStore()
    srv.app.state.store.write(scenario(time.time()))
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODTRACE_API", raising=False)
    monkeypatch.delenv("PODTRACE_API_TOKEN", raising=False)


def _dead_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PODTRACE), "blast-radius", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


class TestRender:
    def test_spec_report_verdict_first(self) -> None:
        """The SPEC's example renders with the verdict first, then each section in order."""
        out = render_report(SPEC_REPORT)
        order = ["shop/cart", "VERDICT: REGRESSED", "p = 1e-12", "baseline 5c4b3a291",
                 "Affected services (max 2 hops)", "Entry points", "Contained by",
                 "affected users 42", "4bf92f3577b34da6a3ce929d0e0e4736"]  # fmt: skip
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
                  "affected_users_capped": True}  # fmt: skip
        out = render_report(report)
        assert "VERDICT: INSUFFICIENT DATA" in out and "p =" not in out
        assert "first revision" in out
        assert "none: no failure" in out and "none affected" in out and "nowhere" in out
        assert "affected users at least 42" in out

    @pytest.mark.parametrize(
        "report",
        [
            {},
            {"verdict": 3, "p_value": "x", "window": "soon", "baseline": [1]},
            {"affected_services": [1, "a", None, {"hops": "far"}], "reasons": [{"x": 1}]},
            {"latency_ms": {"p50": None, "p95": True}, "requests": 2**70},
            {"entrypoints": {"not": "a list"}, "exemplar_trace_ids": "abc"},
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


class TestSubprocess:
    def test_table(self, api: Server) -> None:
        """`podtrace blast-radius shop/cart` prints the table, verdict first, exit 0."""
        proc = _run("shop/cart", "--api", api.url)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0].startswith(f"shop/cart  revision {NEW}")
        assert "VERDICT: REGRESSED" in proc.stdout and "shop/frontend" in proc.stdout

    def test_json_from_env_api(self, api: Server) -> None:
        """--json prints the API's JSON; PODTRACE_API names the collector."""
        proc = _run("shop/cart", "--json", "--since", "1h", env={"PODTRACE_API": api.url})
        assert proc.returncode == 0, proc.stderr
        body = json.loads(proc.stdout)
        assert body["revision"] == NEW and body["baseline"]["revision"] == OLD

    def test_unreachable_collector(self) -> None:
        """No collector: one clear line on stderr, exit 3, no traceback."""
        url = _dead_url()
        proc = _run("shop/cart", "--api", url)
        assert proc.returncode == _query.EXIT_UNREACHABLE
        assert proc.stderr.count("\n") == 1 and "cannot reach the collector" in proc.stderr
        assert url in proc.stderr and "Traceback" not in proc.stderr

    def test_unknown_workload(self, api: Server) -> None:
        """A 404 shows the API's message and exits 1."""
        proc = _run("shop/nope", "--api", api.url)
        assert proc.returncode == _query.EXIT_API
        assert "unknown workload 'shop/nope'" in proc.stderr and "HTTP 404" in proc.stderr


    def test_a_closed_pipe_ends_quietly(self, api: Server) -> None:
        """Output into a closed pipe (`| head -1`): no traceback, the SIGPIPE exit status 141.

        (argparse's own --help swallows the error and exits 0: quiet as well.)
        """
        for args, code in ((["shop/cart", "--api", api.url], 141), (["--help"], 0)):
            read, write = os.pipe()
            os.close(read)  # the reader is gone before the first write: EPIPE every time
            try:
                proc = subprocess.run(
                    [str(PODTRACE), "blast-radius", *args],
                    stdout=write,
                    stderr=subprocess.PIPE,
                    text=True,
                    timeout=60,
                )
            finally:
                os.close(write)
            assert (proc.returncode, proc.stderr) == (code, ""), args

    def test_version_prints_podtrace_version(self) -> None:
        """`--version` (and -V) print podtrace's version, as in any tool, and exit 0."""
        for flag in ("--version", "-V"):
            proc = _run(flag)
            assert (proc.returncode, proc.stdout) == (0, f"podtrace {podtrace.__version__}\n")


class TestInProcess:
    def test_options_reach_the_api(self, api: Server, capsys: pytest.CaptureFixture[str]) -> None:
        """--revision, --baseline, --until and a bare service name become query parameters."""
        argv = ["cart", "--revision", NEW, "--baseline", OLD, "--since", "2h", "--until", "0s"]
        assert main([*argv, "--api", api.url, "--json"]) == 0
        body = json.loads(capsys.readouterr().out)
        assert (body["workload"], body["revision"], body["baseline"]["revision"]) == (
            "shop/cart",
            NEW,
            OLD,
        )

    def test_bad_time_is_a_400(self, api: Server, capsys: pytest.CaptureFixture[str]) -> None:
        """A malformed --since shows the API's bad_time message, exit 1."""
        assert main(["shop/cart", "--since", "yesterday", "--api", api.url]) == 1
        err = capsys.readouterr().err
        assert "bad_time" in err and "HTTP 400" in err and "yesterday" in err

    def test_list_rollouts(self, api: Server, capsys: pytest.CaptureFixture[str]) -> None:
        """--list prints the rollouts table."""
        assert main(["--list", "--api", api.url]) == 0
        out = capsys.readouterr().out
        assert "shop/cart" in out and "REGRESSED" in out

    @pytest.mark.parametrize(
        ("workload", "listed"),
        [("shop/cart", True), ("cart", True), ("shop/nope", False), ("art", False)],
    )
    def test_list_one_workload(
        self, api: Server, capsys: pytest.CaptureFixture[str], workload: str, listed: bool
    ) -> None:
        """--list WORKLOAD lists only that workload's rollouts, in the table and in --json."""
        assert main(["--list", workload, "--api", api.url]) == 0
        out = capsys.readouterr().out
        assert ("REGRESSED" in out) is listed
        if not listed:
            assert out.strip() == f"no rollouts of {workload} seen yet"
        assert main(["--list", workload, "--api", api.url, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["rollouts"]
        assert [r["workload"] for r in rows] == (["shop/cart"] if listed else [])

    def test_service_version(self, api: Server, capsys: pytest.CaptureFixture[str]) -> None:
        """--service-version V reaches the API as version=V; --version V still does, warned."""
        assert main(["cart", "--service-version", "9.9", "--api", api.url]) == _query.EXIT_API
        assert "unknown_revision" in capsys.readouterr().err
        assert main(["cart", "--service-version", "1.4.0", "--api", api.url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["revision"] == NEW
        assert main(["cart", "--version", "9.9", "--api", api.url]) == _query.EXIT_API
        err = capsys.readouterr().err
        assert "--version V is deprecated, use --service-version V" in err
        assert "unknown_revision" in err

    def test_token(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A collector with an API token: refused without it, answered with --token."""
        srv = Server(make_app(token="t0k"))
        try:
            srv.app.state.store = MemoryStore()
            srv.app.state.store.write(scenario(time.time()))
            assert main(["shop/cart", "--api", srv.url]) == 1
            assert "unauthorized" in capsys.readouterr().err
            assert main(["shop/cart", "--api", srv.url, "--token", "t0k"]) == 0
            assert "VERDICT" in capsys.readouterr().out
        finally:
            srv.stop()

    @pytest.mark.parametrize(
        "argv",
        [
            [],
            ["--revision", "x"],
            ["shop/cart", "--api", "ftp://x"],
            ["shop/cart", "--bogus"],
            ["--list", "shop/cart", "--revision", "x"],
            ["--list", "--service-version", "1.4.0"],
        ],
    )
    def test_usage_errors_exit_2(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """Missing workload, a non-HTTP --api, an unknown option or a report option with --list
        is a usage error."""
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
        assert code == _query.EXIT_USAGE
        assert capsys.readouterr().err

    def test_not_the_query_api(self, capsys: pytest.CaptureFixture[str], api: Server) -> None:
        """An HTTP server that is not the API (HTML, not JSON) is reported as such."""
        assert main(["shop/cart", "--api", api.url + "/static/style.css#"]) != 0
        assert "podtrace blast-radius:" in capsys.readouterr().err


class TestRenderWords:
    def test_unknown_users_say_why(self) -> None:
        """``affected_users: null`` reads as unknown with the reason, never as 0."""
        report = {**SPEC_REPORT, "affected_users": None,
                  "affected_users_reason": "no enduser.id on entry spans"}  # fmt: skip
        out = render_report(report)
        assert "affected users unknown (no enduser.id on entry spans)" in out
        assert "affected users 0" not in out

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
