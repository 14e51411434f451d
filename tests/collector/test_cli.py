"""``podtrace collector`` as a process: JSON logs, SIGTERM drains and exits 0, bad flags exit 2."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from podtrace_collector.cli import main

from tests.collector.otlp_helpers import (
    COLLECTOR_ARGS,
    RecordingSink,
    collector_process,
    json_log_line,
    make_request,
    running,
)


def _post(port: int, body: bytes) -> int:
    answer = httpx.post(
        f"http://127.0.0.1:{port}/v1/traces",
        content=body,
        headers={"Content-Type": "application/x-protobuf"},
    )
    return answer.status_code


def test_gateway_serves_then_exits_zero_on_sigterm() -> None:
    """A gateway logs JSON lines, serves OTLP and /metrics, and exits 0 on SIGTERM."""
    with collector_process("--log-level", "info") as (process, started):
        assert started["mode"] == "gateway" and started["grpc_port"] > 0
        assert _post(started["http_port"], make_request(3).SerializeToString()) == 200
        metrics = httpx.get(f"http://127.0.0.1:{started['api_port']}/metrics").text
        assert "podtrace_spans_accepted_total 3.0" in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stderr is not None
        events = [json_log_line(line).get("event") for line in process.stderr]
    assert "collector stopped" in events


def test_uvicorn_logs_json_lines_like_thecollector_process() -> None:
    """uvicorn's own warnings (here: a request that is not HTTP) are JSON lines too."""
    with collector_process() as (process, started):
        with socket.create_connection(("127.0.0.1", started["http_port"])) as conn:
            conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert conn.recv(4096).startswith(b"HTTP/1.1 400")
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stderr is not None
        lines = [line for line in process.stderr.read().splitlines() if line.strip()]
    entries = [json_log_line(line) for line in lines]
    ours = [e for e in entries if e]
    assert any(
        e["logger"] == "uvicorn.error"
        and e["event"] == "Invalid HTTP request received."
        and e["level"] == "warning"
        for e in ours
    )
    # Every line is JSON, but for grpc core's native lines (which do not come from Python).
    assert all(entry or b"grpc" in line.lower() for entry, line in zip(entries, lines, strict=True))


def test_sidecar_drains_its_queue_on_sigterm() -> None:
    """SIGTERM right after accepting spans: the sidecar forwards them before exiting 0."""
    sink = RecordingSink()
    with running(sink=sink) as gateway:
        forward = f"grpc://127.0.0.1:{gateway.grpc_port}"
        env = {"PODTRACE_FORWARD": forward, "PODTRACE_MODE": "sidecar"}
        with collector_process("--drain-timeout", "5s", env=env) as (process, started):
            assert started["mode"] == "sidecar" and started["forward"] == [forward]
            assert _post(started["http_port"], make_request(50).SerializeToString()) == 200
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
        assert len(sink.spans) == 50


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--mode", "proxy"], {}, "--mode"),
        (["--trace-timeout", "soon"], {}, "--trace-timeout"),
        ([], {"PODTRACE_GRPC_PORT": "abc"}, "--grpc-port"),
        (["--mode", "sidecar"], {}, "--forward"),
        (["--memory-limit", "lots"], {}, "--memory-limit"),
    ],
)
def test_bad_configuration_exits_2(
    argv: list[str],
    env: dict[str, str],
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bad flags or environment variables: a one-line message naming the flag, exit code 2."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists every flag and mentions the environment variables."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--otlp-token" in out and "PODTRACE_" in out


def test_port_in_use_exits_1() -> None:
    """A port already bound: a logged error and exit code 1, not a traceback."""
    with running() as other:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "podtrace._cli",
                "collector",
                *COLLECTOR_ARGS[:4],
                "--api-port",
                str(other.api_port),
                "--store",
                "memory",
            ],
            capture_output=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert b"failed to start" in done.stderr and b"Traceback" not in done.stderr


def _api_json(port: int, path: str) -> Any:
    answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _requests(port: int) -> int:
    workloads = _api_json(port, "/api/v1/workloads?since=2020-01-01T00:00:00Z")["workloads"]
    return sum(r["requests"] for w in workloads for r in w["revisions"])


@pytest.mark.slow
def test_a_chdb_gateway_killed_and_restarted_answers_as_before(tmp_path: Any) -> None:
    """A gateway on chdb:// has what it analysed in the store within a few seconds (the writer
    writes every 2 s); killed with SIGKILL and restarted on the same directory, it answers
    exactly as before."""
    store = [
        "--store",
        f"chdb://{tmp_path}/engine",
        "--trace-timeout",
        "0.2s",
        "--retention",
        "3650d",
    ]  # fmt: skip (the helper's spans are from 2023)
    paths = [
        "/api/v1/workloads?since=2020-01-01T00:00:00Z&until=2030-01-01T00:00:00Z",
        "/api/v1/rollouts",
        "/api/v1/blast-radius?workload=shop/cart&since=2023-11-14T22:00:00Z"
        "&until=2023-11-14T23:00:00Z",
        "/api/v1/graph?since=2023-11-14T22:00:00Z&until=2023-11-14T23:00:00Z",
    ]
    with collector_process(*store) as (process, started):
        port = started["api_port"]
        for n, seed in ((200, 1), (60, 2)):
            body = make_request(n, spans_per_trace=2, seed=seed).SerializeToString()
            assert _post(started["http_port"], body) == 200
        posted = time.monotonic()
        while _requests(port) < 130:  # every trace's one request, read back from the store
            assert time.monotonic() - posted < 10, "analysed spans took over 10 s to be stored"
            time.sleep(0.2)
        before = [_api_json(port, p) for p in paths]
        process.send_signal(signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
    with collector_process(*store) as (process, started):
        assert [_api_json(started["api_port"], p) for p in paths] == before
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0


def test_a_damaged_store_exits_1_with_one_line(tmp_path: Path) -> None:
    """Garbage in the store file: exit 1 and one log line naming it, not 200s that lose data."""
    path = tmp_path / "podtrace.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xa5" * 16_384)
    done = subprocess.run(
        [sys.executable, "-m", "podtrace", "collector", *COLLECTOR_ARGS[:6], "--store", f"sqlite:///{path}"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    lines = [json_log_line(line) for line in done.stderr.splitlines() if line.strip()]
    failures = [entry for entry in lines if entry.get("event") == "collector failed to start"]
    assert len(failures) == 1 and str(path) in failures[0]["error"], done.stderr
    assert b"Traceback" not in done.stderr
