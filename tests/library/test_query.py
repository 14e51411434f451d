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

import pytest
from podtrace_collector.store.memory import MemoryStore

import podtrace
from podtrace import _query
from podtrace._query import main
from tests.collector.api.test_routes import NEW, OLD, Server, make_app, scenario

PODTRACE = Path(sys.executable).parent / "podtrace"


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
