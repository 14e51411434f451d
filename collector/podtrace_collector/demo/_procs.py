"""The demo's processes: start each in its own process group, log to a file, stop them all.

Every process the demo starts is a session leader, so stopping it signals its whole group (a
``podtrace run`` wrapper and the program it runs alike).  On Linux each child also asks the kernel
to send it SIGTERM if the demo itself dies, so not even ``kill -9`` of the demo leaves pods behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import httpx

from podtrace_collector.errors import DemoError

_PR_SET_PDEATHSIG = 1
# Looked up once here: after fork only an already-resolved function is safe to call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


class Process:
    """One child process with its log file; ``tier`` orders shutdown (highest stops first)."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path, tier: int) -> None:
        self.name = name
        self.popen = popen
        self.log = log
        self.tier = tier
        self.stopping = False

    @property
    def pid(self) -> int:
        """The process id (also its process-group id)."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        """The last *lines* lines of the process's log, for error messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def failure(self, what: str) -> DemoError:
        """A `DemoError` naming the process and showing the end of its log."""
        status = "" if self.alive() else f" (exit code {self.popen.returncode})"
        return DemoError(
            f"{self.name} {what}{status}; last lines of {self.log}:\n{_indent(self.tail())}"
        )


class Supervisor:
    """Starts processes and guarantees they are all stopped."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: list[Process] = []

    def spawn(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, tier: int
    ) -> Process:
        """Start *argv* in a new session with stdout and stderr going to ``<logs>/<name>.log``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if _prctl is not None else None,
            )
        process = Process(name, popen, log, tier)
        self.processes.append(process)
        return process

    def stop(self, processes: Sequence[Process], *, timeout_s: float = 5.0) -> None:
        """SIGTERM each process group, wait up to *timeout_s*, then SIGKILL what is left."""
        for process in processes:
            process.stopping = True
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in processes:
            try:
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.popen.wait()
            # The group may hold children that outlived their leader.
            _signal_group(process, signal.SIGKILL)
        for process in processes:
            if process in self.processes:
                self.processes.remove(process)

    def stop_all(self, *, timeout_s: float = 5.0) -> None:
        """Stop every process, highest tier first (apps before the collectors they export to)."""
        for tier in sorted({p.tier for p in self.processes}, reverse=True):
            self.stop([p for p in self.processes if p.tier == tier], timeout_s=timeout_s)

    def check_alive(self) -> None:
        """Raise `DemoError` for the first process that exited on its own."""
        # A copy: a rolling update may be stopping (and removing) pods in another thread.
        for process in list(self.processes):
            if not process.alive() and not process.stopping:
                raise process.failure("exited unexpectedly")


async def wait_ready(
    process: Process, probe: Callable[[], Awaitable[bool]], *, timeout_s: float
) -> float:
    """Poll *probe* until it succeeds; return the seconds it took.

    Raises:
        DemoError: the process exited, or was not ready within *timeout_s*.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if not process.alive():
            raise process.failure("exited while starting")
        if await probe():
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise process.failure(f"was not ready after {timeout_s:.0f}s")


def http_probe(client: httpx.AsyncClient, url: str) -> Callable[[], Awaitable[bool]]:
    """A probe that succeeds when GET *url* answers 200."""

    async def probe() -> bool:
        try:
            return (await client.get(url, timeout=1.0)).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def tcp_probe(host: str, port: int) -> Callable[[], Awaitable[bool]]:
    """A probe that succeeds when a TCP connection to *host*:*port* opens."""

    async def probe() -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    return probe


def _signal_group(process: Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask for SIGTERM when the demo dies.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
