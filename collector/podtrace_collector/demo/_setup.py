"""What the demo needs before the shop can run: the gateway, its ports, the shop's code."""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import httpx

from podtrace_collector.demo._cluster import Say, clean_environ, free_port, podtrace_command
from podtrace_collector.demo._procs import Process, Supervisor, http_probe, wait_ready
from podtrace_collector.errors import DemoError

GATEWAY_TIER = 0
STANDARD_PORTS = {"grpc": 4317, "http": 4318, "api": 4320}


def gateway_ports(api_port: int | None) -> dict[str, int]:
    """The gateway's ports: the standard ones where free, else free ones.

    *api_port* sets the API port; 0 asks for free ports throughout (tests, parallel runs).
    """
    taken: set[int] = set()
    if api_port == 0:
        return {name: free_port(taken) for name in STANDARD_PORTS}
    ports = {name: _preferred_port(port, taken) for name, port in STANDARD_PORTS.items()}
    if api_port is not None:
        ports["api"] = api_port
    return ports


def _preferred_port(port: int, taken: set[int]) -> int:
    # The documented port when it is free (so the printed URL is the familiar one), else any.
    # SO_REUSEADDR as the collector binds: a port in TIME_WAIT, from a demo that just ended, is
    # free for it, and must not send this demo to a random port.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port(taken)
    taken.add(port)
    return port


# What the shop needs besides the collector extra: the contrib instrumentations `podtrace run`
# enables.  Without them the shop runs but emits no spans, and the demo would report nothing.
_INSTRUMENTATIONS = {
    "opentelemetry.instrumentation.fastapi": "opentelemetry-instrumentation-fastapi",
    "opentelemetry.instrumentation.httpx": "opentelemetry-instrumentation-httpx",
    "opentelemetry.instrumentation.grpc": "opentelemetry-instrumentation-grpc",
}


def check_instrumentations() -> None:
    """Raise `DemoError` naming the contrib instrumentations the shop needs and lacks."""
    missing = [
        pkg for mod, pkg in _INSTRUMENTATIONS.items() if importlib.util.find_spec(mod) is None
    ]
    if missing:
        raise DemoError(
            "the example shop needs these OpenTelemetry instrumentations: "
            f"{', '.join(missing)}; pip install 'podtrace[demo]' (`make demo` installs them)"
        )


def shop_path() -> Path:
    """The directory holding the ``shop`` package (``examples/`` of a source checkout)."""
    here = Path(__file__).resolve()
    for root in (here.parents[3] / "examples", here.parent / "examples"):
        if (root / "shop" / "__main__.py").is_file():
            return root
    raise DemoError(
        "cannot find the example shop: run the demo from a source checkout (make demo) "
        "or install a wheel that includes it (pip install 'podtrace[demo]')"
    )


async def start_gateway(
    supervisor: Supervisor,
    workdir: Path,
    ports: dict[str, int],
    *,
    trace_timeout_s: float,
    say: Say,
) -> Process:
    """Start the gateway collector (SQLite in *workdir*) and wait until it is ready."""
    say(
        f"starting the podtrace gateway: OTLP gRPC :{ports['grpc']}, OTLP HTTP :{ports['http']}, "
        f"API :{ports['api']}, SQLite {workdir / 'podtrace.db'}"
    )
    command = podtrace_command(
        "collector",
        "--mode=gateway",
        "--bind=127.0.0.1",
        f"--grpc-port={ports['grpc']}",
        f"--http-port={ports['http']}",
        f"--api-port={ports['api']}",
        f"--store=sqlite:///{workdir / 'podtrace.db'}",
        f"--trace-timeout={trace_timeout_s:g}s",
    )
    env = {**clean_environ(os.environ), "PYTHONUNBUFFERED": "1"}
    gateway = supervisor.spawn("gateway", command, env=env, cwd=workdir, tier=GATEWAY_TIER)
    async with httpx.AsyncClient() as client:
        probe = http_probe(client, f"http://127.0.0.1:{ports['api']}/readyz")
        took = await wait_ready(gateway, probe, timeout_s=60.0)
    say(f"gateway ready in {took:.1f}s")
    return gateway
