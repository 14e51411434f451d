"""Leaving the process: SIGTERM flushes then chains; exit is prompt with no collector."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from otlp_receiver import OtlpReceiver

CHILD = """
import os, signal, sys, time
import podtrace
from opentelemetry import trace

{before}
podtrace.init("sig", endpoint=sys.argv[1], instrument=False)
tracer = trace.get_tracer("child")
for i in range(3):
    with tracer.start_as_current_span(f"span-{{i}}"):
        pass
{after}
"""


def _run(
    child_env: dict[str, str], endpoint: str, before: str = "", after: str = ""
) -> tuple[subprocess.CompletedProcess[str], float]:
    code = textwrap.dedent(CHILD.format(before=before, after=after))
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code, endpoint],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc, time.monotonic() - start


def test_sigterm_flushes_then_dies_of_sigterm(
    receiver: OtlpReceiver, child_env: dict[str, str]
) -> None:
    """Buffered spans arrive after SIGTERM; the process still ends by SIGTERM."""
    proc, _ = _run(
        child_env,
        receiver.http_endpoint,
        after="os.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(10)\nprint('survived')",
    )
    assert proc.returncode == -15, proc.stderr
    assert "survived" not in proc.stdout
    spans = receiver.wait_for(lambda s: len(s) >= 3, timeout_s=2)
    assert sorted(s.name for s in spans) == ["span-0", "span-1", "span-2"]


def test_sigterm_chains_to_the_apps_handler(
    receiver: OtlpReceiver, child_env: dict[str, str]
) -> None:
    """An app's own SIGTERM handler still runs, after the flush."""
    before = (
        "def on_term(signum, frame):\n"
        "    print('app handler ran', flush=True)\n"
        "    sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
    )
    proc, _ = _run(
        child_env,
        receiver.http_endpoint,
        before=before,
        after="os.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(10)",
    )
    assert proc.returncode == 7, proc.stderr
    assert "app handler ran" in proc.stdout
    assert len(receiver.wait_for(lambda s: len(s) >= 3, timeout_s=2)) == 3


def test_exit_is_prompt_with_no_collector(child_env: dict[str, str], dead_port: int) -> None:
    """Nothing listening on the endpoint: the program runs and exits at once, status 0."""
    proc, elapsed = _run(child_env, f"http://127.0.0.1:{dead_port}", after="print('done')")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    assert elapsed < 6


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers: the worst collector."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_exit_is_bounded_with_a_hanging_collector(
    child_env: dict[str, str], black_hole: int
) -> None:
    """A collector that never answers delays exit by at most the shutdown bound (3 s)."""
    proc, elapsed = _run(child_env, f"http://127.0.0.1:{black_hole}", after="print('done')")
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 7
