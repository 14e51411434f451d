"""The standard `opentelemetry-instrument` picks podtrace's distro, configurator and detector."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from podtrace._distro import PodtraceConfigurator, PodtraceDistro
from tests.library.otlp_receiver import OtlpReceiver


def test_entry_points_registered() -> None:
    """Distro and configurator are registered under OpenTelemetry's groups."""
    distros = {e.name: e.load() for e in entry_points(group="opentelemetry_distro")}
    configurators = {e.name: e.load() for e in entry_points(group="opentelemetry_configurator")}
    assert distros["podtrace"] is PodtraceDistro
    assert configurators["podtrace"] is PodtraceConfigurator


def test_opentelemetry_instrument_uses_podtrace(
    receiver: OtlpReceiver, child_env: dict[str, str]
) -> None:
    """opentelemetry-instrument exports with podtrace's resource (Kubernetes attributes)."""
    child_env.update(
        POD_NAME="cart-7d9f8c6b5-x2k4p",
        POD_NAMESPACE="shop",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.http_endpoint + "/v1/traces",
    )
    code = (
        "from opentelemetry import trace\n"
        "with trace.get_tracer('app').start_as_current_span('auto'): pass\n"
    )
    tool = str(Path(sys.executable).parent / "opentelemetry-instrument")
    proc = subprocess.run(
        [tool, sys.executable, "-c", code],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    (span,) = receiver.wait_for(lambda s: len(s) >= 1, timeout_s=5)
    assert span.name == "auto"
    assert span.resource["k8s.deployment.name"] == "cart"
    assert span.resource["service.name"] == "cart"
