"""A simulated cluster on one machine: pods as processes, Services as endpoint files.

A Service's ready pods are listed in ``<workdir>/endpoints/<service>``, which the shop's callers
re-read every half second: adding a pod to the file is a pod becoming Ready, removing it is the
endpoints controller dropping a terminating pod.  A rolling update therefore moves traffic the
way it does in Kubernetes: new pods first, then old pods drained and stopped.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import random
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import httpx

from podtrace_collector.demo._pods import Pod, Revision
from podtrace_collector.demo._procs import (
    Process,
    Supervisor,
    http_probe,
    tcp_probe,
    wait_ready,
)

GRPC_SERVICES = frozenset({"recommendation"})
POD_TIER = 2
SIDECAR_TIER = 1
STARTUP_TIMEOUT_S = 90.0
DRAIN_S = 1.0

# Variables a pod must not inherit from the shell that runs the demo: they would override
# what the simulated pod supplies (explicit OTEL_* always wins in the detector).
_INHERITED_PREFIXES = ("OTEL_", "PODTRACE_", "K8S_", "SHOP_")
_INHERITED_NAMES = frozenset(
    {"POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME", "CONTAINER_NAME"}
)

Say = Callable[[str], None]
"""Prints one progress line."""


class Counters(Protocol):
    """What the shop's load generator counts."""

    requests: int

    def line(self) -> str:
        """A one-line summary."""
        ...


class Users(Protocol):
    """The shop's load generator (``shop.loadgen.LoadGenerator``)."""

    @property
    def counters(self) -> Counters:
        """What the users saw so far."""
        ...

    async def run(self, stop: asyncio.Event) -> None:
        """Shop until *stop* is set."""
        ...


def free_port(taken: set[int]) -> int:
    """A port nobody listens on now (and not already handed out by this demo)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            taken.add(port)
            return port


def podtrace_command(*args: str) -> list[str]:
    """``podtrace <args>`` run with this interpreter, whatever is on PATH."""
    return [sys.executable, "-m", "podtrace", *args]


def clean_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The shell's environment minus anything that would change a simulated pod's identity."""
    return {
        k: v
        for k, v in environ.items()
        if not k.startswith(_INHERITED_PREFIXES) and k not in _INHERITED_NAMES
    }


class Cluster:
    """Starts pods of the shop, tracks which are ready, and rolls Deployments."""

    def __init__(
        self,
        supervisor: Supervisor,
        workdir: Path,
        *,
        gateway_http: str,
        gateway_grpc: str | None = None,
        shop_path: Path,
        rng: random.Random,
    ) -> None:
        self.supervisor = supervisor
        self.shop_path = shop_path
        self.workdir = workdir
        self.gateway_http = gateway_http
        # Sidecars forward over OTLP/gRPC, as they do to a gateway's port 4317 in a cluster.
        self.gateway_forward = gateway_grpc or gateway_http
        self.rng = rng
        self.ports: set[int] = set()
        self.ready: dict[str, list[tuple[Pod, Process]]] = {}
        self.endpoints_dir = workdir / "endpoints"
        self.endpoints_dir.mkdir(parents=True, exist_ok=True)
        self.sidecars: dict[str, tuple[Process, int]] = {}
        self.http = httpx.AsyncClient()
        base = clean_environ(os.environ)
        path = [str(shop_path), *filter(None, base.get("PYTHONPATH", "").split(os.pathsep))]
        self.base_env = {
            **base,
            "PYTHONPATH": os.pathsep.join(path),
            "PYTHONUNBUFFERED": "1",
            "SHOP_ENDPOINTS_DIR": str(self.endpoints_dir),
            "SHOP_CART_DB": str(workdir / "cart.db"),
            "SHOP_QUEUE_DB": str(workdir / "queue.db"),
            # Short batches so that spans reach the collector within a second.
            "OTEL_BSP_SCHEDULE_DELAY": "500",
            "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "healthz",
            "PODTRACE_SHUTDOWN_TIMEOUT_S": "2",
        }

    def pods(self, service: str) -> list[Pod]:
        """The ready pods of *service*."""
        return [pod for pod, _ in self.ready.get(service, [])]

    def users(self, population: int, *, sessions_per_s: float) -> Users:
        """The shop's own load generator, aimed at whichever frontend pods are ready."""
        if str(self.shop_path) not in sys.path:
            sys.path.insert(0, str(self.shop_path))
        loadgen = importlib.import_module("shop.loadgen")
        users: Users = loadgen.LoadGenerator(
            lambda: [pod.address for pod in self.pods("frontend")],
            users=population,
            sessions_per_s=sessions_per_s,
            rng=self.rng,
        )
        return users

    def start_pod(self, revision: Revision, *, sidecar: bool = False) -> tuple[Pod, Process]:
        """Start one pod of *revision* (optionally with a podtrace sidecar); not yet ready."""
        pod = Pod.create(revision, port=free_port(self.ports), rng=self.rng)
        pod_dir = pod.write_files(self.workdir / "pods")
        exporter = self.gateway_http
        if sidecar:
            exporter = self._start_sidecar(pod, pod_dir)
        env = {
            **self.base_env,
            **pod.env(pod_dir, container=revision.deployment),
            "OTEL_EXPORTER_OTLP_ENDPOINT": exporter,
        }
        command = podtrace_command(
            "run", "--", sys.executable, "-m", "shop", revision.deployment, "--port", str(pod.port)
        )
        process = self.supervisor.spawn(pod.name, command, env=env, cwd=pod_dir, tier=POD_TIER)
        return pod, process

    async def wait_ready(self, pod: Pod, process: Process) -> float:
        """Wait for the pod's readiness probe (and its sidecar's); return how long it took."""
        waited = 0.0
        if pod.name in self.sidecars:
            sidecar, port = self.sidecars[pod.name]
            waited = await wait_ready(
                sidecar, tcp_probe("127.0.0.1", port), timeout_s=STARTUP_TIMEOUT_S
            )
        if pod.revision.deployment in GRPC_SERVICES:
            probe = tcp_probe("127.0.0.1", pod.port)
        else:
            probe = http_probe(self.http, f"http://{pod.address}/healthz")
        return waited + await wait_ready(process, probe, timeout_s=STARTUP_TIMEOUT_S)

    def add_endpoint(self, pod: Pod, process: Process) -> None:
        """The pod is Ready: its Service starts sending it traffic."""
        self.ready.setdefault(pod.revision.deployment, []).append((pod, process))
        self._publish(pod.revision.deployment)

    def remove_endpoint(self, pod: Pod) -> Process:
        """The pod is terminating: its Service stops sending it new traffic."""
        service = pod.revision.deployment
        entry = next(e for e in self.ready[service] if e[0] == pod)
        self.ready[service].remove(entry)
        self._publish(service)
        return entry[1]

    def stop_pod(self, pod: Pod, process: Process) -> None:
        """Stop the pod's containers: the app first, then its sidecar (which flushes last)."""
        self.supervisor.stop([process])
        sidecar = self.sidecars.pop(pod.name, None)
        if sidecar is not None:
            self.supervisor.stop([sidecar[0]])

    def _publish(self, service: str) -> None:
        # Written aside and renamed, so a reader never sees half a list.
        target = self.endpoints_dir / service
        scratch = target.with_suffix(".tmp")
        scratch.write_text("".join(f"{pod.address}\n" for pod in self.pods(service)))
        scratch.replace(target)

    def _start_sidecar(self, pod: Pod, pod_dir: Path) -> str:
        grpc_port, http_port, api_port = (free_port(self.ports) for _ in range(3))
        env = {**self.base_env, **pod.env(pod_dir, container="podtrace-sidecar")}
        command = podtrace_command(
            "collector",
            "--mode=sidecar",
            "--bind=127.0.0.1",
            f"--grpc-port={grpc_port}",
            f"--http-port={http_port}",
            f"--api-port={api_port}",
            "--store=memory",
            "--drain-timeout=2s",
            f"--forward={self.gateway_forward}",
        )
        name = f"{pod.name}.podtrace-sidecar"
        process = self.supervisor.spawn(name, command, env=env, cwd=pod_dir, tier=SIDECAR_TIER)
        self.sidecars[pod.name] = (process, http_port)
        return f"http://127.0.0.1:{http_port}"

    async def close(self) -> None:
        """Release the readiness-probe client."""
        await self.http.aclose()
