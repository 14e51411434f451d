"""Enabling every installed contrib instrumentation through the standard entry points."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from podtrace import _instrument

CHILD = textwrap.dedent(
    """
    import json
    from podtrace import _instrument
    print(json.dumps(sorted(_instrument.instrument_all())))
    """
)


def _enabled(child_env: dict[str, str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], env=child_env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.splitlines()[-1]))


def test_instruments_installed_libraries(child_env: dict[str, str]) -> None:
    """Each installed instrumentor in the dev environment is enabled."""
    expected = {"fastapi", "httpx", "requests", "grpc_client", "grpc_server"}
    assert expected <= set(_enabled(child_env))


def test_disabled_instrumentations_are_skipped(child_env: dict[str, str]) -> None:
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS is honoured."""
    child_env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "requests, httpx"
    enabled = set(_enabled(child_env))
    assert "fastapi" in enabled
    assert not enabled & {"requests", "httpx"}


def test_wildcard_disables_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """`*` disables every instrumentation."""
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "*")
    assert _instrument.instrument_all() == []


def test_failing_instrumentor_is_logged_and_skipped(child_env: dict[str, str]) -> None:
    """An instrumentor that raises does not stop the others or the app."""
    code = textwrap.dedent(
        """
        import json
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
        def broken(self, **kwargs):
            raise RuntimeError("boom")
        RequestsInstrumentor._instrument = broken
        from podtrace import _instrument
        print(json.dumps(sorted(_instrument.instrument_all())))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    enabled = proc.stdout.splitlines()[-1]
    assert '"requests"' not in enabled and '"fastapi"' in enabled
    assert "instrumenting requests failed" in proc.stderr
