"""Fixtures for the library tests: an isolated environment, fake pods, a real OTLP receiver.

Every test starts with no Kubernetes and no OTEL_* variables, and every detector path pointed at
an empty directory, so the machine the tests run on (which may itself be a pod) never leaks in.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace

from podtrace import _configure, _export, _k8s, _log, _signals
from tests.library.fake_pod_fs import FakePod
from tests.library.netutil import free_port
from tests.library.otlp_receiver import OtlpReceiver

_CLEARED_PREFIXES = ("OTEL_", "PODTRACE_", "KUBERNETES_", "K8S_", "POD_", "NODE_NAME")
_CLEARED = {"CONTAINER_NAME", "NODE_NAME"}


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No Kubernetes, no OTEL_* settings, no global provider; restored afterwards."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED:
            monkeypatch.delenv(name)
    empty = tmp_path / "nothing-here"
    for var in (
        "PODTRACE_PODINFO_DIR",
        "PODTRACE_SERVICEACCOUNT_DIR",
        "PODTRACE_MOUNTINFO_PATH",
        "PODTRACE_CGROUP_PATH",
    ):
        monkeypatch.setenv(var, str(empty))
    monkeypatch.setenv("PODTRACE_HOSTNAME", "host-not-a-pod")
    _reset_globals()
    sigterm = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, sigterm)
    _signals.uninstall_atexit_for_tests()
    provider = _configure.current_provider()
    if provider is not None:
        provider.shutdown()
    _reset_globals()


def _reset_globals() -> None:
    _k8s.clear_cache()
    _log.reset()
    _export.reset_stats()
    _configure.reset_for_tests()
    # The OTel API allows setting the global provider once per process; tests need it again.
    trace._TRACER_PROVIDER_SET_ONCE = trace.Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]


@pytest.fixture
def fake_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePod:
    """An empty fake pod filesystem wired into the detector's path overrides."""
    root = tmp_path / "pod"
    root.mkdir()
    monkeypatch.setenv("PODTRACE_PODINFO_DIR", str(root / "podinfo"))
    monkeypatch.setenv("PODTRACE_SERVICEACCOUNT_DIR", str(root / "serviceaccount"))
    monkeypatch.setenv("PODTRACE_CGROUP_PATH", str(root / "cgroup"))
    monkeypatch.setenv("PODTRACE_MOUNTINFO_PATH", str(root / "mountinfo"))
    return FakePod(root, monkeypatch)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """A running OTLP receiver (gRPC and HTTP) on loopback."""
    with OtlpReceiver() as rx:
        yield rx


@pytest.fixture
def dead_port() -> int:
    """A loopback port with nothing listening."""
    return free_port()


@pytest.fixture
def unused_port() -> int:
    """A loopback port for a server the test starts."""
    return free_port()


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment for a child process: the isolated test environment, venv tools on PATH."""
    env = dict(os.environ)
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env
