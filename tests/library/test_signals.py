"""Leaving the process: SIGTERM flushes then chains; exit is prompt with no collector."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from tests.library.otlp_receiver import OtlpReceiver

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


EXIT_CHILD = """
import sys, time
import podtrace
from opentelemetry import trace

podtrace.init("exit", endpoint=sys.argv[1], protocol=sys.argv[2], instrument=False)
for i in range(3):
    with trace.get_tracer("child").start_as_current_span(f"span-{i}"):
        pass
print(time.monotonic(), flush=True)
"""


def _exit_delay_s(child_env: dict[str, str], endpoint: str, protocol: str) -> float:
    """How long the process takes to end after its last statement (monotonic is system-wide)."""
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_CHILD, endpoint, protocol],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    ended = time.monotonic()
    assert proc.returncode == 0, proc.stderr
    return ended - float(proc.stdout.split()[-1])


PROTOCOLS = ["http/protobuf", "grpc"]


# The exporter's own timeout is set long (6 s) so that the guards below tell the two behaviours
# apart by a wide margin on a loaded machine: waiting out retries or the export timeout at exit
# costs the whole 3 s shutdown bound, the exit path costs a fraction of a second (no collector)
# or one exit request timeout, a third of the bound (collector never answers).
LONG_EXPORT_TIMEOUT = {"OTEL_EXPORTER_OTLP_TIMEOUT": "6"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_exit_is_prompt_with_no_collector(
    child_env: dict[str, str], dead_port: int, protocol: str
) -> None:
    """Connection refused at exit: no retry, the process ends about as fast as without podtrace.

    Measured 0.07-0.16 s where the same interpreter needs 0.06-0.12 s without podtrace; it was
    1.2 s at defaults (3 s here) while the exporter waited out retry backoffs.
    """
    child_env.update(LONG_EXPORT_TIMEOUT)
    assert _exit_delay_s(child_env, f"http://127.0.0.1:{dead_port}", protocol) < 1.5


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers: the worst collector."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_exit_is_bounded_with_a_hanging_collector(
    child_env: dict[str, str], black_hole: int, protocol: str
) -> None:
    """A collector that never answers costs one exit request timeout (1 s), not the export one."""
    child_env.update(LONG_EXPORT_TIMEOUT)
    assert _exit_delay_s(child_env, f"http://127.0.0.1:{black_hole}", protocol) < 2.5


def test_sigterm_during_the_exit_flush_waits_for_it(
    receiver: OtlpReceiver, child_env: dict[str, str]
) -> None:
    """SIGTERM arriving while the exit flush runs is held until the spans are out, then kills."""
    receiver.http_delay_s = 0.6
    child_env["PODTRACE_SHUTDOWN_TIMEOUT_S"] = "30"  # a slow answer must not time out here
    after = (
        "import threading\n"
        "timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))\n"
        "timer.daemon = True\n"
        "timer.start()\n"
    )
    proc, elapsed = _run(child_env, receiver.http_endpoint, after=after)
    ended = time.monotonic()
    assert proc.returncode == -15, proc.stderr
    assert elapsed < 10  # over when the flush is, not when the 30 s bound runs out
    assert len(receiver.wait_for(lambda s: len(s) >= 3, timeout_s=2)) == 3
    deadline = time.monotonic() + 2
    while not receiver.http_answered_at and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.http_answered_at[0] < ended  # the process outlived the collector's answer
