"""End to end: two FastAPI services under `podtrace run`, calling over httpx, into a receiver."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.library.netutil import free_port, wait_ready
from tests.library.otlp_receiver import OtlpReceiver, ReceivedSpan

SERVER, CLIENT = 2, 3  # OTLP span kinds

PRICING = """
from fastapi import FastAPI

app = FastAPI()

@app.get("/price/{item}")
def price(item: str) -> dict:
    return {"item": item, "price": 42}
"""

FRONTEND = """
import os
import httpx
from fastapi import FastAPI

app = FastAPI()

@app.get("/checkout")
def checkout() -> dict:
    answer = httpx.get(os.environ["PRICING_URL"] + "/price/book", timeout=5)
    return {"total": answer.json()["price"]}
"""


def _start(
    app_dir: Path, module: str, port: int, endpoint: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "podtrace._cli", "run", "--endpoint", endpoint, "--",
        sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(app_dir),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def two_services(
    tmp_path: Path, receiver: OtlpReceiver, child_env: dict[str, str]
) -> Iterator[str]:
    """frontend (env-var pod identity) -> pricing (downward-API volume); yields frontend's URL."""
    (tmp_path / "pricing.py").write_text(PRICING)
    (tmp_path / "frontend.py").write_text(FRONTEND)
    podinfo = tmp_path / "podinfo"
    podinfo.mkdir()
    (podinfo / "name").write_text("pricing-7d9f8c6b5-q7rtz")
    (podinfo / "namespace").write_text("shop")
    (podinfo / "labels").write_text(
        'app.kubernetes.io/name="pricing"\napp.kubernetes.io/version="2.1.0"\n'
        'pod-template-hash="7d9f8c6b5"\n'
    )
    pricing_port, frontend_port = free_port(), free_port()
    base = {**child_env, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    pricing_env = {**base, "PODTRACE_PODINFO_DIR": str(podinfo)}
    frontend_env = {
        **base,
        "POD_NAME": "frontend-6d4f5c8b9-x2k4p",
        "POD_NAMESPACE": "shop",
        "K8S_NODE_NAME": "node-1",
        "PRICING_URL": f"http://127.0.0.1:{pricing_port}",
    }
    endpoint = receiver.http_endpoint
    procs = [
        _start(tmp_path, "pricing", pricing_port, endpoint, pricing_env),
        _start(tmp_path, "frontend", frontend_port, endpoint, frontend_env),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{pricing_port}/ready")
        wait_ready(f"http://127.0.0.1:{frontend_port}/ready")
        yield f"http://127.0.0.1:{frontend_port}"
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=15)


def _one(spans: list[ReceivedSpan], service: str, kind: int, route: str) -> ReceivedSpan:
    (found,) = [
        s
        for s in spans
        if s.resource["service.name"] == service and s.kind == kind and route in s.name
    ]
    return found


def test_two_services_parented_across_processes(two_services: str, receiver: OtlpReceiver) -> None:
    """Server and client spans of both services arrive, parented across the process boundary."""
    with urllib.request.urlopen(two_services + "/checkout", timeout=10) as answer:
        assert answer.status == 200
    spans = receiver.wait_for(
        lambda s: (
            any(x.kind == SERVER and "/price" in x.name for x in s)
            and any(x.kind == SERVER and "/checkout" in x.name for x in s)
            and any(x.kind == CLIENT for x in s)
        )
    )
    front = _one(spans, "frontend", SERVER, "/checkout")
    call = _one(spans, "frontend", CLIENT, "GET")
    price = _one(spans, "pricing", SERVER, "/price")
    assert front.trace_id == call.trace_id == price.trace_id
    assert price.parent_span_id == call.span_id
    assert _ancestors(call, spans) >= {front.span_id}
    assert front.parent_span_id == ""
    assert front.resource["k8s.deployment.name"] == "frontend"
    assert front.resource["k8s.replicaset.name"] == "frontend-6d4f5c8b9"
    assert front.resource["k8s.node.name"] == "node-1"
    assert price.resource["k8s.deployment.name"] == "pricing"
    assert price.resource["service.version"] == "2.1.0"
    assert price.resource["k8s.namespace.name"] == "shop"
    assert price.resource["k8s.pod.label.pod-template-hash"] == "7d9f8c6b5"


def _ancestors(span: ReceivedSpan, spans: list[ReceivedSpan]) -> set[str]:
    by_id = {s.span_id: s for s in spans}
    seen: set[str] = set()
    parent = span.parent_span_id
    while parent and parent not in seen:
        seen.add(parent)
        parent = by_id[parent].parent_span_id if parent in by_id else ""
    return seen
